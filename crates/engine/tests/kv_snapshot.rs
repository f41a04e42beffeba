//! `EngineHandle::kv_snapshot` against the KV event stream: replaying every event from 0 gives
//! exactly the snapshot's block set, and the snapshot's `next_event_id` is the number of events
//! published, also when taken while requests run and evict.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use rotor_engine::{
    Engine, EngineConfig, EngineHandle, KvEventReader, OutputStream, ScriptedRunner,
};
use rotor_protocol::{
    ErrorKind, FinishReason, GenerateRequest, KvEvent, KvEventData, KvSnapshot, SamplingParams,
    StopConditions,
};

const VOCAB: usize = 500;
const CTX: usize = 2048;
const BS: usize = 4;

fn config(num_blocks: usize, enable_prefix_caching: bool) -> EngineConfig {
    EngineConfig {
        max_num_seqs: 4,
        max_num_batched_tokens: 32,
        max_prefill_chunk_tokens: 32,
        block_size_tokens: BS,
        num_blocks,
        enable_prefix_caching,
    }
}

fn start(cfg: EngineConfig, step_delay: Duration) -> EngineHandle {
    let runner = ScriptedRunner::for_config(&cfg, VOCAB, CTX).with_step_delay(step_delay);
    Engine::start(Box::new(runner), cfg).expect("engine starts")
}

/// A prompt of `len` tokens: `prefix` shared tokens of group `group`, then tokens unique to `id`.
fn request(id: u32, group: u32, prefix: usize, len: usize, max_tokens: u32) -> GenerateRequest {
    let token_ids = (0..len as u32)
        .map(|i| {
            let salt = if (i as usize) < prefix {
                group
            } else {
                1000 + id
            };
            (salt * 37 + i * 11) % VOCAB as u32
        })
        .collect();
    GenerateRequest {
        task: Default::default(),
        id: format!("r{id}"),
        token_ids,
        sampling: SamplingParams::greedy(),
        stop: StopConditions {
            max_tokens,
            ..StopConditions::default()
        },
    }
}

fn finish(rx: &mut OutputStream) -> Option<FinishReason> {
    let mut finish = None;
    while let Some(item) = rx.blocking_recv() {
        finish = item.expect("no error expected").finish_reason;
    }
    finish
}

fn snapshot(engine: &EngineHandle) -> Result<KvSnapshot, rotor_protocol::WireError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(engine.kv_snapshot())
}

/// What a router rebuilds from the events alone, and how many of each kind it saw.
#[derive(Default)]
struct Replay {
    blocks: BTreeSet<u64>,
    /// Events applied (= the id of the next one to apply).
    events: u64,
    removed: u64,
    /// Events read from the ring but not applied yet.
    unapplied: VecDeque<KvEvent>,
}

impl Replay {
    /// Applies the events with ids below `end`, reading the ring as needed; panics on a gap
    /// (the ring must hold the whole test) or if an event before `end` is not published yet.
    fn apply_up_to(&mut self, reader: &mut KvEventReader, end: u64) {
        let batch = reader.read();
        assert_eq!(batch.missed, 0, "the test must not overflow the event ring");
        self.unapplied.extend(batch.events);
        while self.events < end {
            let Some(event) = self.unapplied.pop_front() else {
                panic!(
                    "event {} precedes the snapshot but is not published",
                    self.events
                );
            };
            assert_eq!(event.event_id, self.events, "contiguous ids");
            self.events += 1;
            match event.data {
                KvEventData::Stored { blocks, .. } => {
                    for b in blocks {
                        assert!(self.blocks.insert(b.block_hash), "stored twice");
                    }
                }
                KvEventData::Removed { block_hashes, .. } => {
                    self.removed += 1;
                    for h in block_hashes {
                        assert!(self.blocks.remove(&h), "removed an unknown hash");
                    }
                }
                KvEventData::Cleared => self.blocks.clear(),
            }
        }
    }

    fn assert_matches(&self, snap: &KvSnapshot) {
        assert!(
            snap.block_hashes.windows(2).all(|w| w[0] < w[1]),
            "snapshot hashes ascending and distinct"
        );
        assert_eq!(snap.next_event_id, self.events);
        let snap_set: BTreeSet<u64> = snap.block_hashes.iter().copied().collect();
        assert_eq!(snap_set, self.blocks);
    }
}

#[test]
fn snapshot_equals_the_replay_of_every_event_after_evictions() {
    // 16 blocks of 4 tokens: the prompts below need far more, so cached blocks get evicted.
    let engine = start(config(16, true), Duration::ZERO);
    let mut reader = engine.subscribe_kv_events();
    for id in 0..24 {
        let len = 9 + (id as usize * 5) % 20;
        let mut rx = engine
            .submit(request(id, id % 3, 8, len, 3))
            .expect("valid");
        assert_eq!(finish(&mut rx), Some(FinishReason::Length));
    }
    let snap = snapshot(&engine).expect("engine running");
    let mut replay = Replay::default();
    replay.apply_up_to(&mut reader, snap.next_event_id);
    // Idle engine: the snapshot's next id is the number of events ever published.
    assert!(replay.unapplied.is_empty() && reader.read().events.is_empty());
    assert_eq!(reader.cursor(), snap.next_event_id);
    assert!(replay.removed > 0, "the workload must evict");
    assert!(!snap.block_hashes.is_empty());
    replay.assert_matches(&snap);
    // Nothing changes while idle: a second snapshot is the same.
    assert_eq!(snapshot(&engine).expect("engine running"), snap);
    engine.shutdown();
    engine.join();
}

#[test]
fn snapshots_taken_while_requests_run_are_consistent_with_the_stream() {
    // A slow step, and more demand than 24 blocks hold: evictions and preemptions while the
    // snapshots are taken.
    let engine = start(config(24, true), Duration::from_millis(2));
    let mut reader = engine.subscribe_kv_events();
    let mut streams: Vec<OutputStream> = (0..12)
        .map(|id| {
            let req = request(id, id % 2, 12, 14 + id as usize % 9, 6);
            engine.submit(req).expect("valid")
        })
        .collect();
    let mut replay = Replay::default();
    for _ in 0..20 {
        let snap = snapshot(&engine).expect("engine running");
        // Events after the snapshot may already be in the ring too (the engine keeps
        // stepping): apply exactly those before it.
        replay.apply_up_to(&mut reader, snap.next_event_id);
        replay.assert_matches(&snap);
        std::thread::sleep(Duration::from_millis(3));
    }
    for rx in &mut streams {
        assert_eq!(finish(rx), Some(FinishReason::Length));
    }
    let snap = snapshot(&engine).expect("engine running");
    replay.apply_up_to(&mut reader, snap.next_event_id);
    replay.assert_matches(&snap);
    assert!(replay.unapplied.is_empty() && reader.read().events.is_empty());
    assert!(replay.removed > 0, "the workload must evict");
    engine.shutdown();
    engine.join();
}

#[test]
fn without_prefix_caching_the_snapshot_is_empty() {
    let engine = start(config(16, false), Duration::ZERO);
    for id in 0..4 {
        let mut rx = engine.submit(request(id, 0, 8, 20, 3)).expect("valid");
        assert_eq!(finish(&mut rx), Some(FinishReason::Length));
    }
    let snap = snapshot(&engine).expect("engine running");
    assert_eq!(
        snap,
        KvSnapshot {
            block_hashes: vec![],
            next_event_id: 0
        }
    );
    assert!(engine.subscribe_kv_events().read().events.is_empty());
    engine.shutdown();
    engine.join();
}

#[test]
fn a_stopped_engine_answers_engine_stopped() {
    let engine = start(config(16, true), Duration::ZERO);
    // Created before the stop, awaited after: the request is already in the inbox.
    let pending = engine.kv_snapshot();
    engine.shutdown();
    engine.join();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let late = rt.block_on(engine.kv_snapshot()).map_err(|e| e.kind);
    assert_eq!(late, Err(ErrorKind::EngineStopped));
    // The earlier request was either answered before the stop or dropped with the inbox.
    match rt.block_on(pending) {
        Ok(snap) => assert_eq!(snap.next_event_id, 0),
        Err(e) => assert_eq!(e.kind, ErrorKind::EngineStopped),
    }
}
