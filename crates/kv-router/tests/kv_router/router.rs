//! `KvRouter` end to end: events → route → lifecycle → metrics; approximate mode; replicas.

use std::time::{Duration, Instant};

use rotor_kv_router::{
    Error, IndexMode, KvRouter, KvRouterConfig, ReplicaSync, TieBreak, WorkerLoad,
};

use crate::events::{hashes, prompt, stored, BLOCK};

fn config(weight: f64, index_mode: IndexMode) -> KvRouterConfig {
    KvRouterConfig {
        block_size_tokens: BLOCK,
        kv_overlap_weight: weight,
        queue_weight: 1.0,
        temperature: 0.0,
        tie_break: TieBreak::LeastLoaded,
        index_mode,
        seed: 1,
        tier_weights: Default::default(),
    }
}

fn router(weight: f64, index_mode: IndexMode) -> KvRouter {
    let mut r = KvRouter::new(config(weight, index_mode)).unwrap();
    r.add_worker(1);
    r.add_worker(2);
    r
}

#[test]
fn routes_to_the_cached_prefix_and_tracks_the_request() {
    let now = Instant::now();
    let mut r = router(1.0, IndexMode::Events);
    let a = prompt(0, 8);
    r.apply_event(&stored(2, 0, None, &hashes(&a)[..6]))
        .unwrap();

    // Worker 2: (32 − 24)/4 + (8 − 6) = 4; worker 1: 8 + 8 = 16.
    let routed = r.route("r1", &a, now).unwrap();
    assert_eq!(routed.selection.worker, 2);
    assert_eq!(routed.selection.terms.overlap_blocks, 6);
    assert_eq!(routed.selection.terms.logit, 4.0);
    assert_eq!(routed.decision.hashes, hashes(&a));
    assert_eq!(routed.decision.request_tokens, 32);
    let load = r.load_tracker().load(2);
    assert_eq!((load.prefill_tokens, load.decode_blocks), (8, 0));

    // A prompt cached nowhere goes to the idle worker 1.
    let b = prompt(500, 3);
    assert_eq!(r.route("r2", &b, now).unwrap().selection.worker, 1);
    r.mark_prefill_completed("r1").unwrap();
    // Its 8 blocks, less the 6 worker 2 already held (shared, counted once).
    assert_eq!(r.load_tracker().load(2).decode_blocks, 2);
    assert_eq!(r.mark_finished("r1").unwrap(), 2);
    assert_eq!(r.load_tracker().load(2), Default::default());

    let m = r.metrics();
    assert_eq!((m.decisions, m.requested_blocks, m.hit_blocks), (2, 11, 6));
    // The chosen worker was the best-placed one both times.
    assert_eq!(m.best_overlap_blocks, 6);
    assert_eq!(m.decisions_by_worker.get(&2), Some(&1));
    assert_eq!(m.decisions_by_worker.get(&1), Some(&1));
    assert_eq!(m.hit_rate(), 6.0 / 11.0);
    assert_eq!(m.events_applied, 1);
}

#[test]
fn reported_load_steers_requests_away() {
    let now = Instant::now();
    let mut r = router(1.0, IndexMode::Events);
    r.update_worker_load(
        1,
        WorkerLoad {
            active_blocks: 50,
            total_blocks: 100,
            waiting: 0,
            running: 0,
        },
    );
    assert_eq!(
        r.route("x", &prompt(0, 2), now).unwrap().selection.worker,
        2
    );
}

#[test]
fn errors_carry_the_facts() {
    let now = Instant::now();
    let mut r = router(1.0, IndexMode::Events);
    r.route("same", &prompt(0, 2), now).unwrap();
    assert!(matches!(
        r.route("same", &prompt(0, 2), now),
        Err(Error::DuplicateRequest { .. })
    ));
    assert_eq!(
        r.apply_event(&stored(1, 4, None, &[1])).unwrap_err(),
        Error::Gap {
            worker: 1,
            expected: 0,
            got: 4
        }
    );
    assert_eq!(r.workers_needing_resync(), vec![1]);
    assert_eq!(r.metrics().event_gaps, 1);
    r.resync_worker(1, [1, 2], 9).unwrap();
    assert!(r.workers_needing_resync().is_empty());

    let mut empty = KvRouter::new(config(1.0, IndexMode::Events)).unwrap();
    assert_eq!(
        empty.route("r", &prompt(0, 1), now).unwrap_err(),
        Error::NoWorkers
    );

    let bad = KvRouterConfig {
        kv_overlap_weight: -1.0,
        ..config(1.0, IndexMode::Events)
    };
    assert!(matches!(
        KvRouter::new(bad),
        Err(Error::InvalidConfig {
            field: "kv_overlap_weight",
            ..
        })
    ));
    let bad = KvRouterConfig {
        queue_weight: f64::NAN,
        ..config(1.0, IndexMode::Events)
    };
    assert!(matches!(
        KvRouter::new(bad),
        Err(Error::InvalidConfig {
            field: "queue_weight",
            ..
        })
    ));
    let mut approx = router(
        1.0,
        IndexMode::Approximate {
            ttl: Duration::from_secs(1),
        },
    );
    assert_eq!(
        approx.apply_event(&stored(1, 0, None, &[1])).unwrap_err(),
        Error::EventsInApproximateMode { worker: 1 }
    );
}

#[test]
fn approximate_mode_follows_its_own_decisions_until_the_ttl() {
    let t0 = Instant::now();
    let ttl = Duration::from_secs(30);
    let mut r = router(2.0, IndexMode::Approximate { ttl });
    let a = prompt(0, 8);
    // Nothing known: a tie, broken towards the lower id.
    let first = r.route("r1", &a, t0).unwrap();
    assert_eq!(
        (first.selection.worker, first.selection.terms.overlap_blocks),
        (1, 0)
    );
    r.mark_prefill_completed("r1").unwrap();
    // Worker 1 = 2·0 + (8 + 8) = 16; worker 2 = 2·8 + 8 = 24.
    let second = r.route("r2", &a, t0 + Duration::from_secs(10)).unwrap();
    assert_eq!(second.selection.worker, 1);
    assert_eq!(second.selection.terms.overlap_blocks, 8);
    r.mark_finished("r1").unwrap();
    r.mark_finished("r2").unwrap();
    // r2 renewed the prefix until t0+40; at t0+41 it is forgotten.
    assert_eq!(
        r.find_matches(&hashes(&a), t0 + Duration::from_secs(39))
            .get(1),
        8
    );
    assert!(r
        .find_matches(&hashes(&a), t0 + Duration::from_secs(41))
        .is_empty());
}

#[test]
fn replicas_agree_on_load_and_approximate_prefixes() {
    let t0 = Instant::now();
    let mode = IndexMode::Approximate {
        ttl: Duration::from_secs(60),
    };
    let mut first = router(2.0, mode);
    let mut second = router(2.0, mode);
    let a = prompt(0, 5);
    let routed = first.route("r1", &a, t0).unwrap();
    // Travel over the event plane as JSON.
    let wire = |sync: ReplicaSync| -> ReplicaSync {
        serde_json::from_str(&serde_json::to_string(&sync).unwrap()).unwrap()
    };
    second
        .apply_replica_sync(&wire(ReplicaSync::Routed(routed.decision.clone())), t0)
        .unwrap();
    let w = routed.selection.worker;
    assert_eq!(second.load_tracker().load(w), first.load_tracker().load(w));
    assert_eq!(second.load_tracker().load(w).prefill_tokens, 20);
    assert_eq!(second.find_matches(&hashes(&a), t0).get(w), 5);
    assert_eq!(second.metrics().remote_decisions, 1);
    assert_eq!(second.metrics().decisions, 0);

    let done = wire(ReplicaSync::PrefillCompleted {
        request_id: "r1".into(),
    });
    second.apply_replica_sync(&done, t0).unwrap();
    first.mark_prefill_completed("r1").unwrap();
    assert_eq!(second.load_tracker().load(w).decode_blocks, 5);
    assert_eq!(second.load_tracker().load(w).prefill_tokens, 0);

    // The second replica now sends the same prompt where the first did:
    // 2·0 + (5 + 0) = 5 there (its 5 blocks are already held) against 2·5 + 5 = 15 on the
    // other worker.
    let again = second.route("r2", &a, t0).unwrap();
    assert_eq!(
        (again.selection.worker, again.selection.terms.logit),
        (w, 5.0)
    );
    let finished = wire(ReplicaSync::Finished {
        request_id: "r1".into(),
    });
    second.apply_replica_sync(&finished, t0).unwrap();
    assert_eq!(second.load_tracker().worker_of("r1"), None);
    assert_eq!(second.load_tracker().active_requests(), 1);
}

#[test]
fn cache_given_up_for_load_is_counted() {
    let now = Instant::now();
    let mut r = router(0.0, IndexMode::Events);
    let a = prompt(0, 8);
    r.apply_event(&stored(2, 0, None, &hashes(&a)[..6]))
        .unwrap();
    // Worker 2 holds 6 of the 8 blocks but is busy; weight 0 routes by load alone.
    r.update_worker_load(
        2,
        WorkerLoad {
            active_blocks: 100,
            total_blocks: 1000,
            waiting: 0,
            running: 3,
        },
    );
    let routed = r.route("r1", &a, now).unwrap();
    assert_eq!(routed.selection.worker, 1);
    let m = r.metrics();
    assert_eq!((m.hit_blocks, m.best_overlap_blocks), (0, 6));
}

#[test]
fn queue_weight_keeps_a_prefix_on_its_worker_behind_a_queue() {
    // Worker 2 holds 6 of the 8 blocks of prompt `a` but has a 64-token prompt waiting for
    // prefill; worker 1 holds nothing and reports 2 blocks in use. Weight 4.
    let route_a = |queue_weight: f64| {
        let now = Instant::now();
        let mut r = KvRouter::new(KvRouterConfig {
            queue_weight,
            ..config(4.0, IndexMode::Events)
        })
        .unwrap();
        r.add_worker(1);
        r.add_worker(2);
        r.update_worker_load(
            1,
            WorkerLoad {
                active_blocks: 2,
                total_blocks: 100,
                waiting: 0,
                running: 1,
            },
        );
        // A 16-block prompt cached nowhere: worker 1 = 4·16 + 18 = 82, worker 2 = 4·16 + 16 = 80.
        let filler = r.route("filler", &prompt(500, 16), now).unwrap();
        assert_eq!(filler.selection.worker, 2);
        assert_eq!(r.load_tracker().load(2).prefill_tokens, 64);
        let a = prompt(0, 8);
        r.apply_event(&stored(2, 0, None, &hashes(&a)[..6]))
            .unwrap();
        r.route("a", &a, now).unwrap().selection
    };
    // q = 1: worker 2 = 4·(8 + 64)/4 + 2 = 74 against worker 1 = 4·8 + (2 + 8) = 42: the queue
    // (16 blocks) outweighs the 6 cached blocks, and `a` is recomputed on worker 1.
    let greedy = route_a(1.0);
    assert_eq!((greedy.worker, greedy.terms.logit), (1, 42.0));
    // q = 0.25: worker 2 = 4·(8 + 16)/4 + 2 = 26 < 42: `a` waits behind the queue, with its cache.
    let sticky = route_a(0.25);
    assert_eq!((sticky.worker, sticky.terms.logit), (2, 26.0));
    assert_eq!(sticky.terms.overlap_blocks, 6);
}
