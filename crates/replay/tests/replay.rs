//! Replay on the simulated clock: determinism, scaling against static provisioning, start-up
//! delay, and the mocker profile's exact numbers.

use std::time::Duration;

use rotor_engine::mocker::MockerTiming;
use rotor_engine::EngineConfig;
use rotor_planner::{PlannerConfig, PredictorKind, Sla};
use rotor_replay::{
    profile_mocker, replay, EngineSpec, Policy, ProfileGrid, ReplayConfig, ReplayRequest,
};

fn spec() -> EngineSpec {
    EngineSpec {
        timing: MockerTiming::default_fitted(),
        engine: EngineConfig {
            num_blocks: 2048,
            max_num_seqs: 32,
            ..EngineConfig::default()
        },
        vocab_size: 49152,
        context_length: 4096,
    }
}

fn grid() -> ProfileGrid {
    ProfileGrid {
        isl: vec![32, 128, 512],
        batch: vec![1, 4, 16, 32],
        context: vec![128, 512],
        decode_steps: 4,
    }
}

/// 40 s at 0.5 req/s, 60 s at 4 req/s, 80 s at 0.25 req/s; prompts 128, outputs 16 tokens.
fn bursty_trace() -> Vec<ReplayRequest> {
    let mut out = Vec::new();
    let mut t = 0.0;
    for (rate, until) in [(0.5, 40.0), (4.0, 100.0), (0.25, 180.0)] {
        while t < until {
            out.push(ReplayRequest {
                arrival: Duration::from_secs_f64(t),
                input_tokens: 128,
                output_tokens: 16,
                hash_ids: Vec::new(),
            });
            t += 1.0 / rate;
        }
    }
    out
}

fn config(policy: Policy, startup_s: f64) -> ReplayConfig {
    ReplayConfig {
        engine: spec(),
        policy,
        sla: sla(),
        initial_workers: 1,
        startup_delay: Duration::from_secs_f64(startup_s),
        interval: Duration::from_secs(5),
        seed: 7,
        block_size_tokens: 16,
    }
}

fn sla() -> Sla {
    Sla {
        ttft_ms: 2000.0,
        itl_ms: 150.0,
    }
}

fn planner_policy() -> Policy {
    let mut cfg = PlannerConfig::new(sla(), 1, 6);
    cfg.predictor = PredictorKind::parse("holt").unwrap();
    Policy::Planner {
        config: cfg,
        profile: profile_mocker(&spec(), &grid()).unwrap(),
    }
}

#[test]
fn mocker_profile_matches_the_timing_model() {
    let p = profile_mocker(&spec(), &grid()).unwrap();
    let MockerTiming::Fitted(c) = MockerTiming::default_fitted() else {
        unreachable!()
    };
    // A 512-token prompt is one step (512-token budget): 512 tokens, 1 logit row, and
    // 512·513/2 attention pairs.
    let ttft = p.ttft_ms(512.0);
    let expected = c.predict_ms(512, 1, 512 * 513 / 2);
    assert!((ttft - expected).abs() < 1e-6, "{ttft} vs {expected}");
    // Batch 1 at context 128: decodes at positions 128..=131 (pairs = position + 1).
    let itl = p.itl_ms(1.0, 128.0);
    let mean_pairs = (129 + 130 + 131 + 132) / 4;
    let expected =
        c.predict_ms(1, 1, 0) + c.per_kilo_attention_pair_ms * (mean_pairs as f64 + 0.5) / 1000.0;
    assert!((itl - expected).abs() < 1e-6, "{itl} vs {expected}");
    assert_eq!(p.max_batch, 32);
    assert_eq!(p.decode.len(), 8);
}

#[test]
fn same_seed_gives_identical_decision_logs() {
    let trace = bursty_trace();
    let a = replay(&config(planner_policy(), 10.0), &trace).unwrap();
    let b = replay(&config(planner_policy(), 10.0), &trace).unwrap();
    let log = |r: &rotor_replay::ReplayReport| serde_json::to_string(&r.decisions).unwrap();
    assert!(!a.decisions.is_empty());
    assert_eq!(log(&a), log(&b));
    assert_eq!(a.scaling_events, b.scaling_events);
    assert_eq!(a.ttft_ms, b.ttft_ms);
}

#[test]
fn planner_scales_up_for_the_burst_and_back_down() {
    let trace = bursty_trace();
    let r = replay(&config(planner_policy(), 0.0), &trace).unwrap();
    assert_eq!(r.failed, 0);
    assert_eq!(r.completed, trace.len());
    assert!(r.peak_workers >= 2, "{r:?}");
    let last = r.scaling_events.last().unwrap();
    assert_eq!(
        last.to, 1,
        "back to the minimum after the burst: {:?}",
        r.scaling_events
    );
    let one = replay(&config(Policy::Static { workers: 1 }, 0.0), &trace).unwrap();
    let peak = replay(
        &config(
            Policy::Static {
                workers: r.peak_workers,
            },
            0.0,
        ),
        &trace,
    )
    .unwrap();
    assert!(
        r.sla_attainment > one.sla_attainment,
        "planner {} vs one worker {}",
        r.sla_attainment,
        one.sla_attainment
    );
    assert!(r.worker_seconds < peak.worker_seconds);
    // Static: worker-seconds are exactly workers × the replay's duration.
    assert!((peak.worker_seconds - r.peak_workers as f64 * peak.duration_s).abs() < 1e-6);
    assert!(peak.scaling_events.is_empty());
}

#[test]
fn a_slow_start_up_costs_latency() {
    let trace = bursty_trace();
    let fast = replay(&config(planner_policy(), 0.0), &trace).unwrap();
    let slow = replay(&config(planner_policy(), 60.0), &trace).unwrap();
    assert!(
        slow.ttft_ms.p99 > fast.ttft_ms.p99,
        "{:?} vs {:?}",
        slow.ttft_ms,
        fast.ttft_ms
    );
    assert!(slow.sla_attainment < fast.sla_attainment);
}

#[test]
fn dynamo_rule_baseline_runs_and_scales() {
    let Policy::Planner { config: c, profile } = planner_policy() else {
        unreachable!()
    };
    let r = replay(
        &config(Policy::DynamoRule { config: c, profile }, 0.0),
        &bursty_trace(),
    )
    .unwrap();
    assert_eq!(r.failed, 0);
    assert!(r.decisions.iter().all(|d| d.decision.is_none()));
    assert!(!r.scaling_events.is_empty());
}

#[test]
fn empty_trace_and_zero_interval_are_errors() {
    assert!(replay(&config(Policy::Static { workers: 1 }, 0.0), &[]).is_err());
    let mut cfg = config(Policy::Static { workers: 1 }, 0.0);
    cfg.interval = Duration::ZERO;
    assert!(replay(&cfg, &bursty_trace()).is_err());
}
