//! From an engine's KV events to Rotor's: Rotor's block hashes recomputed from each stored
//! block's `token_ids` (so the router's index is engine-neutral and its prompt hashes match),
//! engine hash → Rotor hash kept per block, contiguous Rotor event ids, and a snapshot
//! consistent with them for routers that lost events.
//!
//! Nothing is dropped silently: every event that cannot be indexed is counted by reason in
//! [`ExternalStats`] and logged — a block size other than the card's, a token count that does
//! not match, a parent block never seen stored (its events were lost), a medium the router has
//! no tier for. Removals of blocks never seen stored are tolerated (counted): vLLM's
//! publisher drops everything while no subscriber is connected.
//!
//! Sequence gaps in the ZMQ stream are replayed from the engine's replay socket when one is
//! configured; otherwise (or when the replay fails) the index is cleared (a `Cleared` event)
//! and rebuilt from later events, which under-states the cache rather than over-stating it.
//!
//! Media (vLLM's `medium`, case-insensitive) map to tiers: none or `GPU`/`CUDA` → `device`, `CPU`
//! → `host`, `DISK` → `disk`, `REMOTE` → `remote`; each tier has its own engine-hash map, a
//! stored block's parent is looked up in its tier, then on the device. An engine's CPU tier is
//! its own (no `kv_host_pool` on its card), so the router credits it to this worker only.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rotor_protocol::{CacheTier, KvEvent, KvEventData, KvSnapshot, StoredBlock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::vllm_events::{decode_batch, EngineEvent, EngineHash};
use super::zmtp::{EventMessage, EventSource};
use super::ExternalStats;

/// Rotor events buffered for the host's publisher before they are dropped (and the router
/// resyncs from the snapshot).
const PUBLISH_BUFFER: usize = 4096;

/// How long a replay may take.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(2);

/// One tier's blocks as the engine named them.
#[derive(Default)]
struct TierBlocks {
    /// Engine block hash → Rotor sequence hash.
    blocks: HashMap<EngineHash, u64>,
    /// Rotor sequence hash → how many engine blocks map to it.
    held: HashMap<u64, u32>,
}

struct State {
    next_id: u64,
    /// Per tier (`CacheTier::index`).
    tiers: [TierBlocks; 4],
}

/// The tier of an engine's storage medium (see the module docs); `None`: no tier for it.
pub fn medium_tier(medium: Option<&str>) -> Option<CacheTier> {
    let Some(medium) = medium else {
        return Some(CacheTier::Device);
    };
    match medium.to_ascii_lowercase().as_str() {
        "gpu" | "cuda" | "device" => Some(CacheTier::Device),
        "cpu" | "host" => Some(CacheTier::Host),
        "disk" => Some(CacheTier::Disk),
        "remote" => Some(CacheTier::Remote),
        _ => None,
    }
}

/// Translates engine events and numbers the resulting Rotor events.
pub struct KvBridge {
    block_size: usize,
    state: Mutex<State>,
    tx: mpsc::Sender<KvEvent>,
    stats: Arc<ExternalStats>,
}

impl KvBridge {
    /// A bridge for blocks of `block_size` tokens (the card's) and the receiver of its events.
    pub fn new(block_size: usize, stats: Arc<ExternalStats>) -> (Self, mpsc::Receiver<KvEvent>) {
        let (tx, rx) = mpsc::channel(PUBLISH_BUFFER);
        let bridge = Self {
            block_size,
            state: Mutex::new(State {
                next_id: 0,
                tiers: Default::default(),
            }),
            tx,
            stats,
        };
        (bridge, rx)
    }

    fn emit(&self, state: &mut State, data: KvEventData) {
        let event = KvEvent {
            event_id: state.next_id,
            data,
        };
        state.next_id += 1;
        match self.tx.try_send(event) {
            Ok(()) => {
                self.stats
                    .kv_events_published
                    .fetch_add(1, Ordering::Relaxed);
            }
            // The id is spent: routers see the gap and resync from the snapshot.
            Err(_) => {
                self.stats
                    .drop_events("publish_backlog", 1, "the event plane is not keeping up")
            }
        }
    }

    /// Decodes one message's payload and applies its events.
    pub fn apply_payload(&self, payload: &[u8]) {
        match decode_batch(payload) {
            Err(why) => self.stats.drop_events("undecodable_batch", 1, &why),
            Ok(batch) => {
                for (i, why) in &batch.failed {
                    self.stats
                        .drop_events("undecodable_event", 1, &format!("event {i}: {why}"));
                }
                self.stats
                    .kv_events_decoded
                    .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
                self.apply(&batch.events);
            }
        }
    }

    /// Applies decoded engine events.
    pub fn apply(&self, events: &[EngineEvent]) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            match event {
                EngineEvent::Stored {
                    block_hashes,
                    parent,
                    token_ids,
                    block_size,
                    medium,
                } => self.stored(
                    &mut state,
                    block_hashes,
                    *parent,
                    token_ids,
                    *block_size,
                    medium.as_deref(),
                ),
                EngineEvent::Removed {
                    block_hashes,
                    medium,
                } => {
                    let Some(tier) = medium_tier(medium.as_deref()) else {
                        self.stats.drop_events(
                            "other_medium",
                            1,
                            "a removal from a medium with no KV tier",
                        );
                        continue;
                    };
                    let mut removed = Vec::new();
                    let t = &mut state.tiers[tier.index()];
                    for h in block_hashes {
                        match t.blocks.remove(h) {
                            Some(rotor) => {
                                let count = t.held.get_mut(&rotor).expect("held tracks blocks");
                                *count -= 1;
                                if *count == 0 {
                                    t.held.remove(&rotor);
                                    removed.push(rotor);
                                }
                            }
                            None => {
                                self.stats
                                    .kv_unknown_removals
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    if !removed.is_empty() {
                        let data = KvEventData::Removed {
                            block_hashes: removed,
                            tier,
                        };
                        self.emit(&mut state, data);
                    }
                }
                EngineEvent::Cleared => self.clear_locked(&mut state),
            }
        }
    }

    fn stored(
        &self,
        state: &mut State,
        hashes: &[EngineHash],
        parent: Option<EngineHash>,
        token_ids: &[u32],
        block_size: usize,
        medium: Option<&str>,
    ) {
        let n = hashes.len() as u64;
        let Some(tier) = medium_tier(medium) else {
            self.stats.drop_events(
                "other_medium",
                n,
                "blocks stored in a medium with no KV tier",
            );
            return;
        };
        if block_size != self.block_size {
            self.stats.drop_events(
                "block_size_mismatch",
                n,
                &format!(
                    "the engine stores blocks of {block_size} tokens but the card says {}; \
                     start the worker with the engine's block size",
                    self.block_size
                ),
            );
            return;
        }
        if token_ids.len() != hashes.len() * block_size {
            self.stats.drop_events(
                "token_count_mismatch",
                n,
                &format!("{} blocks with {} token ids", hashes.len(), token_ids.len()),
            );
            return;
        }
        let device = CacheTier::Device.index();
        let mut rotor_parent = match parent {
            None => None,
            Some(p) => match state.tiers[tier.index()]
                .blocks
                .get(&p)
                .or_else(|| state.tiers[device].blocks.get(&p))
            {
                Some(&r) => Some(r),
                None => {
                    self.stats.drop_events(
                        "unknown_parent",
                        n,
                        "the parent block's event was lost (before the subscriber connected?)",
                    );
                    return;
                }
            },
        };
        let first_parent = rotor_parent;
        let mut blocks = Vec::with_capacity(hashes.len());
        let t = &mut state.tiers[tier.index()];
        for (h, tokens) in hashes.iter().zip(token_ids.chunks_exact(block_size)) {
            let local = rotor_tokens::local_block_hash(tokens);
            let seq = rotor_tokens::chain_hash(rotor_parent, local);
            rotor_parent = Some(seq);
            if let Some(old) = t.blocks.insert(*h, seq) {
                // The engine re-stored a block it holds: keep the count right.
                if let Some(c) = t.held.get_mut(&old) {
                    *c -= 1;
                    if *c == 0 {
                        t.held.remove(&old);
                    }
                }
            }
            *t.held.entry(seq).or_default() += 1;
            blocks.push(StoredBlock {
                block_hash: seq,
                tokens_hash: local,
            });
        }
        let data = KvEventData::Stored {
            parent_hash: first_parent,
            blocks,
            tier,
        };
        self.emit(state, data);
    }

    /// Forgets every tier: the lower tiers' blocks are reported removed (`Cleared` is the
    /// device's), then `Cleared`.
    fn clear_locked(&self, state: &mut State) {
        for tier in [CacheTier::Host, CacheTier::Disk, CacheTier::Remote] {
            let t = std::mem::take(&mut state.tiers[tier.index()]);
            let mut block_hashes: Vec<u64> = t.held.into_keys().collect();
            if !block_hashes.is_empty() {
                block_hashes.sort_unstable();
                self.emit(state, KvEventData::Removed { block_hashes, tier });
            }
        }
        state.tiers[CacheTier::Device.index()] = TierBlocks::default();
        self.emit(state, KvEventData::Cleared);
    }

    /// Forgets every block (after an unrecoverable gap) and tells routers so.
    pub fn clear(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.clear_locked(&mut state);
    }

    /// Every Rotor block hash held now, and the id of the next event.
    pub fn snapshot(&self) -> KvSnapshot {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut block_hashes: Vec<u64> = state.tiers[CacheTier::Device.index()]
            .held
            .keys()
            .copied()
            .collect();
        block_hashes.sort_unstable();
        KvSnapshot {
            block_hashes,
            next_event_id: state.next_id,
        }
    }

    /// Blocks indexed now on the device.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tiers[CacheTier::Device.index()]
        .held
        .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Follows the engine's stream until `stop`: sequence checks, replay or resync on gaps.
pub async fn run(mut source: EventSource, bridge: Arc<KvBridge>, stop: CancellationToken) {
    let mut sequencer = Sequencer::default();
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            m = source.next() => m,
        };
        match message {
            Ok(message) => sequencer.handle(&source, &bridge, message).await,
            Err(error) => {
                tracing::warn!(%error, "KV events: the engine's publisher connection failed");
            }
        }
    }
}

/// Tracks the publisher's sequence numbers.
#[derive(Debug, Default)]
pub struct Sequencer {
    expected: Option<u64>,
}

impl Sequencer {
    /// Applies one message, first recovering any messages missed before it.
    pub async fn handle(&mut self, source: &EventSource, bridge: &KvBridge, message: EventMessage) {
        let stats = &bridge.stats;
        stats.kv_messages.fetch_add(1, Ordering::Relaxed);
        let Some(seq) = message.seq else {
            stats.drop_events("bad_frames", 1, "a message without [topic, seq, payload]");
            return;
        };
        match self.expected {
            None if seq > 0 => stats.drop_events(
                "before_subscribe",
                seq,
                "messages published before the worker subscribed",
            ),
            Some(expected) if seq > expected => {
                stats.kv_gaps.fetch_add(1, Ordering::Relaxed);
                let recovered = if source.has_replay() {
                    match source.replay(expected, REPLAY_TIMEOUT).await {
                        Ok(messages) => {
                            let missed: Vec<_> = messages
                                .into_iter()
                                .filter(|m| m.seq.is_some_and(|s| s >= expected && s < seq))
                                .collect();
                            let complete = missed.len() as u64 == seq - expected
                                && missed.iter().zip(expected..).all(|(m, s)| m.seq == Some(s));
                            if complete {
                                for m in &missed {
                                    bridge.apply_payload(&m.payload);
                                }
                                stats
                                    .kv_replayed
                                    .fetch_add(missed.len() as u64, Ordering::Relaxed);
                                tracing::info!(
                                    from = expected,
                                    to = seq,
                                    "KV events: gap replayed"
                                );
                            } else {
                                tracing::warn!(
                                    from = expected,
                                    to = seq,
                                    got = missed.len(),
                                    "KV events: the replay no longer holds the gap"
                                );
                            }
                            complete
                        }
                        Err(error) => {
                            tracing::warn!(%error, "KV events: replay failed");
                            false
                        }
                    }
                } else {
                    false
                };
                if !recovered {
                    stats.kv_resyncs.fetch_add(1, Ordering::Relaxed);
                    stats.drop_events(
                        "gap",
                        seq - expected,
                        "messages lost; the index is cleared and rebuilt",
                    );
                    bridge.clear();
                }
            }
            Some(expected) if seq < expected => {
                // The publisher restarted (its sequence starts again at 0): its cache is new.
                stats.kv_resyncs.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    seq,
                    expected,
                    "KV events: the publisher restarted; clearing"
                );
                bridge.clear();
            }
            _ => {}
        }
        self.expected = Some(seq + 1);
        bridge.apply_payload(&message.payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bridge(block_size: usize) -> (KvBridge, mpsc::Receiver<KvEvent>, Arc<ExternalStats>) {
        let stats = Arc::new(ExternalStats::default());
        let (b, rx) = KvBridge::new(block_size, Arc::clone(&stats));
        (b, rx, stats)
    }

    fn stored(
        hashes: &[u64],
        parent: Option<u64>,
        tokens: std::ops::Range<u32>,
        bs: usize,
    ) -> EngineEvent {
        EngineEvent::Stored {
            block_hashes: hashes.to_vec(),
            parent,
            token_ids: tokens.collect(),
            block_size: bs,
            medium: Some("GPU".into()),
        }
    }

    #[test]
    fn rotor_hashes_match_the_routers_prompt_hashes() {
        let (b, mut rx, stats) = bridge(4);
        // One event with two blocks, then a child event chained on the engine's parent hash.
        b.apply(&[
            stored(&[100, 101], None, 0..8, 4),
            stored(&[102], Some(101), 8..12, 4),
        ]);
        let prompt: Vec<u32> = (0..12).collect();
        let want = rotor_tokens::sequence_hashes(&prompt, 4);
        let first = rx.try_recv().unwrap();
        let second = rx.try_recv().unwrap();
        assert_eq!((first.event_id, second.event_id), (0, 1));
        let KvEventData::Stored {
            parent_hash,
            blocks,
            ..
        } = &first.data
        else {
            panic!()
        };
        assert_eq!(*parent_hash, None);
        assert_eq!(
            blocks.iter().map(|b| b.block_hash).collect::<Vec<_>>(),
            want[..2]
        );
        let KvEventData::Stored {
            parent_hash,
            blocks,
            ..
        } = &second.data
        else {
            panic!()
        };
        assert_eq!(*parent_hash, Some(want[1]));
        assert_eq!(blocks[0].block_hash, want[2]);
        let mut snap = want.clone();
        snap.sort_unstable();
        assert_eq!(
            b.snapshot(),
            KvSnapshot {
                block_hashes: snap,
                next_event_id: 2
            }
        );
        assert_eq!(stats.kv_events_published.load(Ordering::Relaxed), 2);

        // Removal of a known block and of an unknown one.
        b.apply(&[EngineEvent::Removed {
            block_hashes: vec![102, 999],
            medium: None,
        }]);
        assert_eq!(
            rx.try_recv().unwrap().data,
            KvEventData::removed(vec![want[2]])
        );
        assert_eq!(stats.kv_unknown_removals.load(Ordering::Relaxed), 1);
        b.apply(&[EngineEvent::Cleared]);
        assert_eq!(rx.try_recv().unwrap().data, KvEventData::Cleared);
        assert!(b.is_empty());
    }

    #[test]
    fn unindexable_events_are_counted_by_reason() {
        let (b, mut rx, stats) = bridge(32);
        b.apply(&[
            stored(&[1], None, 0..16, 16),     // block size mismatch
            stored(&[2, 3], None, 0..32, 32),  // token count mismatch
            stored(&[4], Some(77), 0..32, 32), // parent never seen
            EngineEvent::Stored {
                block_hashes: vec![5],
                parent: None,
                token_ids: (0..32).collect(),
                block_size: 32,
                medium: Some("TAPE".into()),
            },
        ]);
        assert!(rx.try_recv().is_err(), "nothing indexable");
        let dropped = stats.dropped();
        assert_eq!(dropped.get("block_size_mismatch"), Some(&1));
        assert_eq!(dropped.get("token_count_mismatch"), Some(&2));
        assert_eq!(dropped.get("unknown_parent"), Some(&1));
        assert_eq!(dropped.get("other_medium"), Some(&1));
        b.apply_payload(b"\xc1");
        assert_eq!(stats.dropped().get("undecodable_batch"), Some(&1));
    }

    #[test]
    fn shared_rotor_hashes_are_reference_counted() {
        let (b, mut rx, _) = bridge(2);
        // Two engine blocks with the same tokens (e.g. different LoRA keys): one Rotor hash.
        b.apply(&[stored(&[10], None, 0..2, 2), stored(&[11], None, 0..2, 2)]);
        let _ = (rx.try_recv().unwrap(), rx.try_recv().unwrap());
        b.apply(&[EngineEvent::Removed {
            block_hashes: vec![10],
            medium: None,
        }]);
        assert!(rx.try_recv().is_err(), "still held through block 11");
        assert_eq!(b.len(), 1);
        b.apply(&[EngineEvent::Removed {
            block_hashes: vec![11],
            medium: None,
        }]);
        assert!(matches!(
            rx.try_recv().unwrap().data,
            KvEventData::Removed { .. }
        ));
    }

    #[test]
    fn cpu_blocks_are_host_tier_events_and_their_removal_leaves_the_gpu_copy() {
        let (b, mut rx, stats) = bridge(2);
        b.apply(&[stored(&[10, 11], None, 0..4, 2)]);
        let gpu = rx.try_recv().unwrap();
        let KvEventData::Stored { blocks, tier, .. } = gpu.data else {
            panic!("a stored event")
        };
        assert_eq!(tier, CacheTier::Device);
        let want: Vec<u64> = blocks.iter().map(|b| b.block_hash).collect();
        // vLLM's CPU offload stores the same blocks under the same engine hashes; the child's
        // parent is found on the device.
        b.apply(&[
            EngineEvent::Stored {
                block_hashes: vec![10],
                parent: None,
                token_ids: (0..2).collect(),
                block_size: 2,
                medium: Some("CPU".into()),
            },
            EngineEvent::Stored {
                block_hashes: vec![11],
                parent: Some(10),
                token_ids: (2..4).collect(),
                block_size: 2,
                medium: Some("cpu".into()),
            },
            EngineEvent::Removed {
                block_hashes: vec![10, 11],
                medium: Some("GPU".into()),
            },
        ]);
        let tiers: Vec<(CacheTier, Vec<u64>)> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| match e.data {
                KvEventData::Stored { blocks, tier, .. } => {
                    (tier, blocks.iter().map(|b| b.block_hash).collect())
                }
                KvEventData::Removed { block_hashes, tier } => (tier, block_hashes),
                KvEventData::Cleared => panic!("no clear"),
            })
            .collect();
        assert_eq!(
            tiers,
            vec![
                (CacheTier::Host, vec![want[0]]),
                (CacheTier::Host, vec![want[1]]),
                (CacheTier::Device, want.clone()),
            ]
        );
        assert!(b.is_empty(), "nothing left on the device");
        assert_eq!(b.snapshot().block_hashes, Vec::<u64>::new());
        assert!(stats.dropped().is_empty());
        assert_eq!(medium_tier(Some("DISK")), Some(CacheTier::Disk));
        assert_eq!(medium_tier(Some("remote")), Some(CacheTier::Remote));
        assert_eq!(medium_tier(Some("TAPE")), None);
    }
}
