//! `BlockAllocator`: the free list of KV block ids the scheduler hands to sequences.
//!
//! Kept behind this small struct so the prefix-caching pool of the future `kv-cache` crate
//! (ref counts, eviction, events) can replace it without touching the scheduler's logic.

/// Free list over block ids `0..num_blocks`. Blocks are handed out lowest id first on a fresh
/// pool and reused last-freed-first afterwards.
#[derive(Debug)]
pub struct BlockAllocator {
    free: Vec<u32>,
    in_use: Vec<bool>,
}

impl BlockAllocator {
    pub fn new(num_blocks: usize) -> Self {
        let free = (0..num_blocks as u32).rev().collect();
        Self {
            free,
            in_use: vec![false; num_blocks],
        }
    }

    pub fn num_total(&self) -> usize {
        self.in_use.len()
    }

    pub fn num_free(&self) -> usize {
        self.free.len()
    }

    pub fn num_used(&self) -> usize {
        self.num_total() - self.num_free()
    }

    /// Appends `n` blocks to `table`, or changes nothing and returns false if fewer are free.
    pub fn allocate_into(&mut self, n: usize, table: &mut Vec<u32>) -> bool {
        if n > self.free.len() {
            return false;
        }
        for _ in 0..n {
            let block = self.free.pop().expect("invariant: length checked above");
            self.in_use[block as usize] = true;
            table.push(block);
        }
        true
    }

    /// Returns every block of `table` to the free list and empties it.
    pub fn release(&mut self, table: &mut Vec<u32>) {
        for block in table.drain(..) {
            let slot = &mut self.in_use[block as usize];
            debug_assert!(*slot, "invariant: block {block} released twice");
            *slot = false;
            self.free.push(block);
        }
    }

    /// Whether `block` is currently handed out (for invariant checks in tests).
    pub fn is_in_use(&self, block: u32) -> bool {
        self.in_use.get(block as usize).copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_lowest_first_and_reuses_last_freed() {
        let mut alloc = BlockAllocator::new(4);
        let mut a = Vec::new();
        assert!(alloc.allocate_into(2, &mut a));
        assert_eq!(a, vec![0, 1]);
        let mut b = Vec::new();
        assert!(!alloc.allocate_into(3, &mut b));
        assert!(b.is_empty());
        assert_eq!(alloc.num_free(), 2);
        alloc.release(&mut a);
        assert!(a.is_empty());
        assert!(alloc.allocate_into(3, &mut b));
        assert_eq!(b, vec![1, 0, 2]);
        assert_eq!(
            (alloc.num_used(), alloc.num_free(), alloc.num_total()),
            (3, 1, 4)
        );
    }
}
