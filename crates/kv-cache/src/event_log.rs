//! `KvEventLog`: a bounded ring of the most recent KV events that consumers read at their own
//! pace, detecting what they missed.
//!
//! A consumer keeps a cursor, the id of the next event it wants (0 at first). `read_from` returns
//! every retained event from the cursor on and how many events were dropped (overwritten by newer
//! ones) between the cursor and the first returned event. A consumer that missed events must
//! resynchronise (for a router: forget this worker's blocks and rebuild from what follows).
//! Writers never block and memory stays bounded whatever the consumers do.

use std::collections::VecDeque;

use rotor_protocol::KvEvent;

/// What one read returned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KvEventBatch {
    /// Events with ids `next_cursor - events.len() .. next_cursor`, in order.
    pub events: Vec<KvEvent>,
    /// Events between the cursor and the first returned one that are no longer retained.
    pub missed: u64,
    /// The cursor for the next read.
    pub next_cursor: u64,
}

/// The last `capacity` events, ids contiguous.
#[derive(Debug)]
pub struct KvEventLog {
    capacity: usize,
    events: VecDeque<KvEvent>,
    /// Id the next pushed event must have.
    next_id: u64,
}

impl KvEventLog {
    /// A log keeping the last `capacity` events (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            events: VecDeque::with_capacity(capacity),
            next_id: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Id the next appended event will carry (= number of events ever appended).
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Appends events drained from a `BlockPool`, whose ids continue this log's.
    ///
    /// Events whose id does not continue the log are a caller bug; in release builds they are
    /// appended anyway (consumers see a jump and resync), in debug builds this panics.
    pub fn extend(&mut self, events: impl IntoIterator<Item = KvEvent>) {
        for event in events {
            debug_assert_eq!(event.event_id, self.next_id, "invariant: contiguous ids");
            self.next_id = event.event_id + 1;
            if self.events.len() == self.capacity {
                self.events.pop_front();
            }
            self.events.push_back(event);
        }
    }

    /// Every retained event with id `>= cursor`, and how many before them were dropped.
    pub fn read_from(&self, cursor: u64) -> KvEventBatch {
        let oldest = self.next_id - self.events.len() as u64;
        let start = cursor.max(oldest);
        let skip = usize::try_from(start - oldest).unwrap_or(usize::MAX);
        KvEventBatch {
            events: self.events.iter().skip(skip).cloned().collect(),
            missed: start - cursor.min(start),
            next_cursor: self.next_id.max(cursor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotor_protocol::KvEventData;

    fn cleared(id: u64) -> KvEvent {
        KvEvent {
            event_id: id,
            data: KvEventData::Cleared,
        }
    }

    fn ids(batch: &KvEventBatch) -> Vec<u64> {
        batch.events.iter().map(|e| e.event_id).collect()
    }

    #[test]
    fn readers_see_what_they_missed_after_the_ring_wraps() {
        let mut log = KvEventLog::new(3);
        let empty = log.read_from(0);
        assert_eq!(
            (ids(&empty), empty.missed, empty.next_cursor),
            (vec![], 0, 0)
        );
        log.extend((0..2).map(cleared));
        let first = log.read_from(0);
        assert_eq!(
            (ids(&first), first.missed, first.next_cursor),
            (vec![0, 1], 0, 2)
        );
        log.extend((2..7).map(cleared));
        // Retained: 4, 5, 6. A reader at 2 missed 2 and 3.
        let late = log.read_from(first.next_cursor);
        assert_eq!(
            (ids(&late), late.missed, late.next_cursor),
            (vec![4, 5, 6], 2, 7)
        );
        let caught_up = log.read_from(7);
        assert_eq!(
            (ids(&caught_up), caught_up.missed, caught_up.next_cursor),
            (vec![], 0, 7)
        );
        let mid = log.read_from(5);
        assert_eq!((ids(&mid), mid.missed), (vec![5, 6], 0));
        assert_eq!(log.next_id(), 7);
    }
}
