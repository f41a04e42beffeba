//! KV tiers in the index and the cost: runs across tiers, tier weights, G2 blocks shared by
//! the workers of one host pool, removal per tier, and events from publishers before tiers.

use std::time::Instant;

use rotor_kv_router::{
    Error, IndexMode, KvRouter, KvRouterConfig, PrefixIndex, TierWeights, DEFAULT_TIER_WEIGHTS,
};
use rotor_protocol::{CacheTier, KvEvent, KvEventData, RouterEvent, StoredBlock, WorkerId};

use crate::events::{cleared, hashes, prompt, stored, BLOCK};

fn tier_event(worker: WorkerId, id: u64, tier: CacheTier, stored: bool, hs: &[u64]) -> RouterEvent {
    let data = if stored {
        KvEventData::Stored {
            parent_hash: None,
            blocks: hs
                .iter()
                .map(|h| StoredBlock {
                    block_hash: *h,
                    tokens_hash: 0,
                })
                .collect(),
            tier,
        }
    } else {
        KvEventData::Removed {
            block_hashes: hs.to_vec(),
            tier,
        }
    };
    RouterEvent {
        worker_id: worker,
        event: KvEvent { event_id: id, data },
    }
}

fn weights() -> TierWeights {
    DEFAULT_TIER_WEIGHTS
}

#[test]
fn a_run_continues_from_device_into_host_and_disk_weighted_by_tier() {
    let h = hashes(&prompt(0, 6));
    let mut index = PrefixIndex::new();
    index.apply(&stored(1, 0, None, &h[..2])).unwrap();
    index
        .apply(&tier_event(1, 1, CacheTier::Host, true, &h[2..4]))
        .unwrap();
    index
        .apply(&tier_event(1, 2, CacheTier::Disk, true, &h[4..5]))
        .unwrap();
    let o = index.find_matches_weighted(&h, &weights()).overlap(1);
    assert_eq!((o.blocks, o.by_tier), (5, [2, 2, 1, 0]));
    assert!((o.weighted_blocks - (2.0 + 2.0 * 0.8 + 0.6)).abs() < 1e-9);
    // The device-only walk stops where G1 does.
    assert_eq!(index.find_matches(&h).get(1), 2);
    // A device weight below 1 applies even with no lower tier in the index.
    let mut device_only = PrefixIndex::new();
    device_only.apply(&stored(1, 0, None, &h[..2])).unwrap();
    let half = TierWeights::parse("device=0.5").unwrap();
    let o = device_only.find_matches_weighted(&h, &half).overlap(1);
    assert_eq!((o.blocks, o.weighted_blocks), (2, 1.0));
    // A block in two tiers counts in the better one.
    index
        .apply(&tier_event(1, 3, CacheTier::Disk, true, &h[2..3]))
        .unwrap();
    let o = index.find_matches_weighted(&h, &weights()).overlap(1);
    assert_eq!(o.by_tier, [2, 2, 1, 0]);
    let disk_first = TierWeights::parse("host=0.1,disk=0.9").unwrap();
    let o = index.find_matches_weighted(&h, &disk_first).overlap(1);
    assert_eq!(
        o.by_tier,
        [2, 1, 2, 0],
        "weights decide which tier a block counts in"
    );
}

#[test]
fn a_device_eviction_leaves_the_host_copy_indexed_and_removals_touch_one_tier() {
    let h = hashes(&prompt(0, 3));
    let mut index = PrefixIndex::new();
    index.apply(&stored(1, 0, None, &h)).unwrap();
    index
        .apply(&tier_event(1, 1, CacheTier::Host, true, &h))
        .unwrap();
    index
        .apply(&tier_event(1, 2, CacheTier::Device, false, &h))
        .unwrap();
    let o = index.find_matches_weighted(&h, &weights()).overlap(1);
    assert_eq!((o.blocks, o.by_tier), (3, [0, 3, 0, 0]));
    assert_eq!(index.tier_block_count(CacheTier::Device), 0);
    assert_eq!(index.tier_block_count(CacheTier::Host), 3);
    // A disk removal of a block never on disk changes nothing; a host removal cuts the run.
    index
        .apply(&tier_event(1, 3, CacheTier::Disk, false, &h[1..2]))
        .unwrap();
    assert_eq!(index.find_matches_weighted(&h, &weights()).get(1), 3);
    index
        .apply(&tier_event(1, 4, CacheTier::Host, false, &h[1..2]))
        .unwrap();
    assert_eq!(index.find_matches_weighted(&h, &weights()).get(1), 1);
    // `Cleared` is the engine pool's: the host copy stays.
    index.apply(&stored(1, 5, None, &h[..1])).unwrap();
    index.apply(&cleared(1, 6)).unwrap();
    let o = index.find_matches_weighted(&h, &weights()).overlap(1);
    assert_eq!(o.by_tier, [0, 1, 0, 0]);
}

#[test]
fn host_blocks_count_for_every_worker_of_the_same_pool_and_no_other() {
    let h = hashes(&prompt(0, 4));
    let mut index = PrefixIndex::new();
    index.set_host_pool(1, Some("host-a/g2".into()));
    index.set_host_pool(2, Some("host-a/g2".into()));
    index.set_host_pool(3, Some("host-b/g2".into()));
    // Worker 4 names no pool: a G2 of its own.
    index.apply(&stored(4, 0, None, &[])).unwrap();
    index
        .apply(&tier_event(1, 0, CacheTier::Host, true, &h))
        .unwrap();
    index
        .apply(&tier_event(4, 1, CacheTier::Host, true, &h[..1]))
        .unwrap();
    let scores = index.find_matches_weighted(&h, &weights());
    assert_eq!((scores.get(1), scores.get(2)), (4, 4));
    assert_eq!((scores.get(3), scores.get(4)), (0, 1));
    // Worker 2's write evicted h3 (worker 1 wrote it): gone for both.
    index
        .apply(&tier_event(2, 0, CacheTier::Host, false, &h[3..]))
        .unwrap();
    let scores = index.find_matches_weighted(&h, &weights());
    assert_eq!((scores.get(1), scores.get(2)), (3, 3));
    // The pool outlives the worker that wrote its blocks while another worker uses it.
    assert!(index.remove_worker(1));
    assert_eq!(index.find_matches_weighted(&h, &weights()).get(2), 3);
    assert!(index.remove_worker(2));
    assert_eq!(
        index.tier_block_count(CacheTier::Host),
        1,
        "only worker 4's own pool is left"
    );
}

#[test]
fn a_worker_that_names_its_pool_late_keeps_what_it_reported() {
    let h = hashes(&prompt(0, 2));
    let mut index = PrefixIndex::new();
    index
        .apply(&tier_event(1, 0, CacheTier::Host, true, &h))
        .unwrap();
    index.set_host_pool(1, Some("host-a/g2".into()));
    index.set_host_pool(2, Some("host-a/g2".into()));
    assert_eq!(index.find_matches_weighted(&h, &weights()).get(2), 2);
}

#[test]
fn disk_and_remote_blocks_are_the_reporting_worker_s_only() {
    let h = hashes(&prompt(0, 2));
    let mut index = PrefixIndex::new();
    index.set_host_pool(1, Some("host-a/g2".into()));
    index.set_host_pool(2, Some("host-a/g2".into()));
    index
        .apply(&tier_event(1, 0, CacheTier::Disk, true, &h[..1]))
        .unwrap();
    index
        .apply(&tier_event(1, 1, CacheTier::Remote, true, &h[1..]))
        .unwrap();
    let scores = index.find_matches_weighted(&h, &weights());
    assert_eq!(scores.overlap(1).by_tier, [0, 0, 1, 1]);
    assert_eq!(scores.get(2), 0);
    assert_eq!(index.tier_block_count(CacheTier::Remote), 1);
}

#[test]
fn events_of_publishers_before_tiers_index_as_device() {
    let h = hashes(&prompt(0, 1));
    let json = format!(
        r#"{{"worker_id":1,"event":{{"event_id":0,"data":{{"type":"stored","parent_hash":null,"blocks":[{{"block_hash":{},"tokens_hash":5}}]}}}}}}"#,
        h[0]
    );
    let event: RouterEvent = serde_json::from_str(&json).unwrap();
    let mut index = PrefixIndex::new();
    index.apply(&event).unwrap();
    assert_eq!(index.find_matches(&h).get(1), 1);
    assert_eq!(index.tier_block_count(CacheTier::Device), 1);
    let json = format!(
        r#"{{"worker_id":1,"event":{{"event_id":1,"data":{{"type":"removed","block_hashes":[{}]}}}}}}"#,
        h[0]
    );
    index.apply(&serde_json::from_str(&json).unwrap()).unwrap();
    assert_eq!(index.tier_block_count(CacheTier::Device), 0);
}

fn router() -> KvRouter {
    let mut r = KvRouter::new(KvRouterConfig {
        block_size_tokens: BLOCK,
        kv_overlap_weight: 1.0,
        queue_weight: 1.0,
        index_mode: IndexMode::Events,
        ..KvRouterConfig::default()
    })
    .unwrap();
    r.add_worker(1);
    r.add_worker(2);
    r.add_worker(3);
    r
}

#[test]
fn the_router_takes_host_credit_over_recompute_and_device_over_host() {
    let now = Instant::now();
    let a = prompt(0, 8);
    let h = hashes(&a);
    let mut r = router();
    r.set_host_pool(1, Some("host-a/g2".into()));
    r.set_host_pool(2, Some("host-a/g2".into()));
    // Worker 1 offloaded the conversation to the host pool it shares with worker 2; worker 1
    // is busier than worker 2, worker 3 (another host) is idle.
    r.apply_event(&tier_event(1, 0, CacheTier::Host, true, &h))
        .unwrap();
    r.update_worker_load(
        1,
        rotor_kv_router::WorkerLoad {
            active_blocks: 4,
            total_blocks: 100,
            ..Default::default()
        },
    );
    let routed = r.route("r1", &a, now).unwrap();
    assert_eq!(
        routed.selection.worker, 2,
        "host credit on the idle worker of the pool"
    );
    let t = routed.selection.terms;
    assert_eq!((t.overlap_blocks, t.device_overlap_blocks), (8, 0));
    assert!((t.weighted_overlap_blocks - 6.4).abs() < 1e-9);
    // Prefill left: 32 − 6.4·4 = 6.4 tokens; all 8 blocks are new in G1.
    assert!((t.prefill_blocks - 1.6).abs() < 1e-9);
    assert_eq!(t.decode_blocks, 8.0);
    assert_eq!(routed.decision.device_overlap_blocks, Some(0));
    assert_eq!(routed.decision.prefill_tokens, Some(6));
    assert_eq!(r.metrics().overlap_blocks_by_tier, [0, 8, 0, 0]);
    r.mark_finished("r1").unwrap();

    // Worker 3 now holds it on its device: it beats the host copy.
    r.apply_event(&stored(3, 0, None, &h)).unwrap();
    let routed = r.route("r2", &a, now).unwrap();
    assert_eq!(routed.selection.worker, 3);
    assert_eq!(r.metrics().overlap_blocks_by_tier, [8, 8, 0, 0]);
    assert_eq!(r.indexed_blocks(CacheTier::Host), 8);
    assert_eq!(r.indexed_blocks(CacheTier::Device), 8);
}

#[test]
fn tier_weights_parse_with_defaults_and_refuse_bad_input_by_name() {
    let w = TierWeights::parse("host=0.5, remote=0").unwrap();
    assert_eq!((w.device, w.host, w.disk, w.remote), (1.0, 0.5, 0.6, 0.0));
    for (bad, says) in [
        ("host=1.5", "host weight 1.5 is not in [0, 1]"),
        ("gpu=0.5", "unknown KV tier \"gpu\""),
        ("host", "\"host\" is not TIER=WEIGHT"),
        ("disk=x", "disk weight \"x\" is not a number"),
    ] {
        let err = TierWeights::parse(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidTierWeights { .. }));
        assert!(err.to_string().contains(says), "{bad}: {err}");
    }
    let bad = KvRouterConfig {
        tier_weights: TierWeights {
            disk: f64::NAN,
            ..DEFAULT_TIER_WEIGHTS
        },
        ..KvRouterConfig::default()
    };
    assert!(matches!(
        KvRouter::new(bad),
        Err(Error::InvalidTierWeights { .. })
    ));
}
