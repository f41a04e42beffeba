//! KV events leaving the engine: a bounded ring (`rotor_kv_cache::KvEventLog`) the engine thread
//! appends to after every step, and `KvEventReader`s that consumers pull from.
//!
//! Why a ring and not a channel per subscriber: the engine thread never blocks on or allocates
//! for a slow consumer, any number of readers can follow the same stream, and a reader that fell
//! behind by more than the ring holds learns exactly how many events it missed (the ids are
//! contiguous) and resynchronises, which it would have to do after a dropped channel message
//! anyway. A `tokio::sync::watch` of the next event id lets async readers wait without polling.

use std::sync::{Arc, Mutex, PoisonError};

use rotor_kv_cache::{KvEventBatch, KvEventLog};
use rotor_protocol::KvEvent;
use tokio::sync::watch;

/// Events an engine keeps for readers that fall behind.
pub const KV_EVENT_RING_CAPACITY: usize = 4096;

/// The engine thread's end: appends and wakes readers.
#[derive(Debug)]
pub(crate) struct KvEventFeed {
    log: Arc<Mutex<KvEventLog>>,
    next_id: watch::Sender<u64>,
}

impl KvEventFeed {
    pub fn new(capacity: usize) -> Self {
        Self {
            log: Arc::new(Mutex::new(KvEventLog::new(capacity))),
            next_id: watch::Sender::new(0),
        }
    }

    pub fn publish(&self, events: Vec<KvEvent>) {
        if events.is_empty() {
            return;
        }
        let next = {
            let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
            log.extend(events);
            log.next_id()
        };
        self.next_id.send_replace(next);
    }

    /// A reader starting at event 0 (so its first read reports events already dropped as missed).
    pub fn subscribe(&self) -> KvEventReader {
        KvEventReader {
            log: self.log.clone(),
            next_id: self.next_id.subscribe(),
            cursor: 0,
        }
    }
}

/// A consumer's cursor into an engine's KV event stream. Cloning copies the cursor.
#[derive(Debug, Clone)]
pub struct KvEventReader {
    log: Arc<Mutex<KvEventLog>>,
    next_id: watch::Receiver<u64>,
    cursor: u64,
}

impl KvEventReader {
    /// Id of the next event this reader will return.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Moves the cursor back to event 0.
    pub(crate) fn rewind(&mut self) {
        self.cursor = 0;
    }

    /// Every event published since the last read (without waiting), and how many were dropped
    /// from the ring before this reader got to them (`missed > 0` means: resynchronise).
    pub fn read(&mut self) -> KvEventBatch {
        let batch = self
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .read_from(self.cursor);
        self.cursor = batch.next_cursor;
        batch
    }

    /// Waits until an event at or after the cursor is published. Returns false once the engine
    /// has stopped and no unread event remains.
    pub async fn wait(&mut self) -> bool {
        loop {
            if *self.next_id.borrow_and_update() > self.cursor {
                return true;
            }
            if self.next_id.changed().await.is_err() {
                return *self.next_id.borrow() > self.cursor;
            }
        }
    }
}
