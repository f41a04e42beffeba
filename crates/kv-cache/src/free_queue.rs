//! `FreeQueue`: the eviction order of free blocks, as an intrusive doubly linked list over block
//! ids, so taking the head, appending, prepending and removing any block are all O(1).
//!
//! The head is the next block to hand out (and to evict, if it still holds a cached hash).

use crate::BlockId;

#[derive(Debug, Clone, Copy, Default)]
struct Links {
    prev: Option<BlockId>,
    next: Option<BlockId>,
    queued: bool,
}

/// Doubly linked queue of block ids `0..num_blocks`; each id is in it at most once.
#[derive(Debug)]
pub(crate) struct FreeQueue {
    links: Vec<Links>,
    head: Option<BlockId>,
    tail: Option<BlockId>,
    len: usize,
}

impl FreeQueue {
    /// A queue holding every block, lowest id at the head.
    pub fn full(num_blocks: usize) -> Self {
        let mut q = Self {
            links: vec![Links::default(); num_blocks],
            head: None,
            tail: None,
            len: 0,
        };
        for id in 0..num_blocks as BlockId {
            q.push_back(id);
        }
        q
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn contains(&self, id: BlockId) -> bool {
        self.links[id as usize].queued
    }

    pub fn push_back(&mut self, id: BlockId) {
        debug_assert!(!self.contains(id), "invariant: block {id} queued twice");
        self.links[id as usize] = Links {
            prev: self.tail,
            next: None,
            queued: true,
        };
        match self.tail {
            Some(t) => self.links[t as usize].next = Some(id),
            None => self.head = Some(id),
        }
        self.tail = Some(id);
        self.len += 1;
    }

    pub fn push_front(&mut self, id: BlockId) {
        debug_assert!(!self.contains(id), "invariant: block {id} queued twice");
        self.links[id as usize] = Links {
            prev: None,
            next: self.head,
            queued: true,
        };
        match self.head {
            Some(h) => self.links[h as usize].prev = Some(id),
            None => self.tail = Some(id),
        }
        self.head = Some(id);
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<BlockId> {
        let id = self.head?;
        self.remove(id);
        Some(id)
    }

    /// Unlinks `id`; does nothing if it is not queued.
    pub fn remove(&mut self, id: BlockId) {
        let Links { prev, next, queued } = self.links[id as usize];
        if !queued {
            return;
        }
        match prev {
            Some(p) => self.links[p as usize].next = next,
            None => self.head = next,
        }
        match next {
            Some(n) => self.links[n as usize].prev = prev,
            None => self.tail = prev,
        }
        self.links[id as usize] = Links::default();
        self.len -= 1;
    }

    /// Block ids from head (next out) to tail.
    pub fn iter(&self) -> impl Iterator<Item = BlockId> + '_ {
        std::iter::successors(self.head, |&id| self.links[id as usize].next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_pop_and_remove_keep_the_order() {
        let mut q = FreeQueue::full(5);
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        q.remove(2);
        q.remove(0);
        q.remove(4);
        q.remove(4);
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![1, 3]);
        q.push_back(0);
        q.push_front(4);
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![4, 1, 3, 0]);
        assert_eq!(q.pop_front(), Some(4));
        assert_eq!(q.pop_front(), Some(1));
        assert_eq!((q.len(), q.contains(3), q.contains(1)), (2, true, false));
        assert_eq!(q.pop_front(), Some(3));
        assert_eq!(q.pop_front(), Some(0));
        assert_eq!(q.pop_front(), None);
        q.push_front(2);
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![2]);
    }
}
