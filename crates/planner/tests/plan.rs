//! The plan function: formulas with exact numbers, predictors, and regression tests named after
//! Dynamo planner bugs.

use rotor_planner::{
    plan, Action, DecodePoint, FixedConnector, LatencyObservation, Observation, PerfProfile,
    Planner, PlannerConfig, PlannerState, Predictor, PredictorKind, PrefillPoint, Replicas, Role,
    RoleMap, Sla, Topology, Warning,
};

/// TTFT = 1 ms per prompt token (100..1000); ITL = 5 + 5·batch ms at context 1000 and
/// 10 + 5·batch at 3000; batch up to 16.
fn profile() -> PerfProfile {
    PerfProfile {
        engine: "test".into(),
        max_batch: 16,
        prefill: vec![
            PrefillPoint {
                isl: 1000,
                ttft_ms: 1000.0,
            },
            PrefillPoint {
                isl: 100,
                ttft_ms: 100.0,
            },
        ],
        decode: vec![
            DecodePoint {
                batch: 1,
                context: 1000,
                itl_ms: 10.0,
            },
            DecodePoint {
                batch: 9,
                context: 1000,
                itl_ms: 50.0,
            },
            DecodePoint {
                batch: 1,
                context: 3000,
                itl_ms: 15.0,
            },
            DecodePoint {
                batch: 9,
                context: 3000,
                itl_ms: 55.0,
            },
        ],
    }
    .validated()
    .unwrap()
}

fn config(ttft_ms: f64) -> PlannerConfig {
    let mut cfg = PlannerConfig::new(
        Sla {
            ttft_ms,
            itl_ms: 50.0,
        },
        1,
        8,
    );
    cfg.predictor = PredictorKind::Constant;
    cfg.correction = false;
    cfg
}

/// `requests` over 10 s, prompts of `isl`, outputs of `osl`, with `replicas` aggregated workers.
fn traffic(requests: u64, isl: u64, osl: u64, replicas: usize) -> Observation {
    let r = Replicas {
        desired: replicas,
        ready: replicas,
    };
    Observation {
        interval_s: 10.0,
        requests,
        input_tokens: requests * isl,
        cached_tokens: 0,
        output_tokens: requests * osl,
        replicas: RoleMap {
            aggregated: r,
            prefill: r,
            decode: r,
        },
        ..Observation::default()
    }
}

#[test]
fn profile_interpolates_and_extends() {
    let p = profile();
    assert_eq!(p.ttft_ms(0.0), 0.0);
    assert_eq!(p.ttft_ms(50.0), 100.0); // floor below the first point
    assert_eq!(p.ttft_ms(550.0), 550.0);
    assert_eq!(p.ttft_ms(2000.0), 2000.0); // last segment extended
    assert_eq!(p.itl_ms(5.0, 1000.0), 30.0);
    assert_eq!(p.itl_ms(5.0, 2000.0), 32.5);
    assert_eq!(p.itl_ms(5.0, 500.0), 30.0);
    let cap = p.decode_capacity(50.0, 1000.0);
    assert_eq!((cap.batch, cap.itl_ms, cap.meets_target), (9, 50.0, true));
    assert_eq!(cap.tokens_per_s(), 180.0);
    let cap = p.decode_capacity(1000.0, 1000.0);
    assert_eq!(cap.batch, 16, "never past max_batch");
    let cap = p.decode_capacity(5.0, 1000.0);
    assert_eq!((cap.batch, cap.meets_target), (1, false));
    assert_eq!(p.prefill_tokens_per_s(500.0), 1000.0);
}

#[test]
fn profile_rejects_empty_and_nonpositive_points() {
    let mut p = profile();
    p.prefill.clear();
    assert!(p.validated().is_err());
    let mut p = profile();
    p.decode[0].itl_ms = f64::NAN;
    assert!(p.validated().is_err());
}

#[test]
fn aggregated_replicas_from_profile_load_and_sla() {
    let cfg = config(2000.0).validate().unwrap();
    let state = PlannerState::new(&cfg);
    // 2 req/s, ISL 500, OSL 100: s = 0.5 s; ctx 550 → b* = 9 at 50 ms → d = 100·50/9000 s.
    let (d, _) = plan(&cfg, &profile(), &state, &traffic(20, 500, 100, 1));
    let r = d.roles[0];
    assert_eq!(r.role, Role::Aggregated);
    let w = 0.5 + 100.0 * 50.0 / 9000.0;
    assert!((r.work_per_request_s - w).abs() < 1e-12);
    assert!((r.required_workers - 2.0 * w).abs() < 1e-12);
    // k = (2 − 0.5)/0.5 = 3 → M/D/1 cap 6/7 > 0.8: the cap is 0.8; ceil(2.111/0.8) = 3.
    assert_eq!(r.utilization_cap, 0.8);
    assert_eq!((r.wanted, r.target, r.action), (3, 3, Action::ScaleUp));
}

#[test]
fn tight_ttft_lowers_the_utilization_cap() {
    let cfg = config(1000.0).validate().unwrap();
    let state = PlannerState::new(&cfg);
    // k = (1 − 0.5)/0.5 = 1 → cap 2/3; ceil(2.111 / 0.667) = ceil(3.17) = 4.
    let (d, _) = plan(&cfg, &profile(), &state, &traffic(20, 500, 100, 1));
    assert!((d.roles[0].utilization_cap - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(d.roles[0].target, 4);
}

#[test]
fn disaggregated_pools_are_planned_separately() {
    let mut cfg = config(2000.0);
    cfg.topology = Topology::Disaggregated;
    let cfg = cfg.validate().unwrap();
    let (d, _) = plan(
        &cfg,
        &profile(),
        &PlannerState::new(&cfg),
        &traffic(20, 500, 100, 1),
    );
    // prefill R = 2·0.5 = 1 → ceil(1/0.8) = 2; decode R = 2·0.5556 → ceil(1.389) = 2.
    assert_eq!(d.target(Role::Prefill), Some(2));
    assert_eq!(d.target(Role::Decode), Some(2));
    assert_eq!(d.target(Role::Aggregated), None);
}

#[test]
fn budget_is_shared_in_proportion_above_the_minimums() {
    let mut cfg = config(2000.0);
    cfg.topology = Topology::Disaggregated;
    cfg.budget_workers = 4;
    let cfg = cfg.validate().unwrap();
    // 8 req/s, ISL 550: prefill R = 8·0.55 = 4.4 → 6; decode R = 8·0.5556 = 4.44 → 6 …
    // use a long prompt and short output so prefill wants 6 and decode 2.
    let (d, _) = plan(
        &cfg,
        &profile(),
        &PlannerState::new(&cfg),
        &traffic(40, 1000, 20, 1),
    );
    let (p, dec) = (
        d.target(Role::Prefill).unwrap(),
        d.target(Role::Decode).unwrap(),
    );
    let wanted: Vec<usize> = d.roles.iter().map(|r| r.wanted).collect();
    assert_eq!(wanted, vec![6, 1]);
    // min 1 each, spare 2 shared 5:0 → prefill 3, decode 1.
    assert_eq!((p, dec), (3, 1));
    assert!(d.warnings.iter().any(|w| matches!(
        w,
        Warning::BudgetExhausted {
            role: Role::Prefill,
            wanted: 6,
            target: 3
        }
    )));
}

#[test]
fn predictors_exact_numbers() {
    let run = |kind, xs: &[f64]| {
        let mut p = Predictor::new(kind);
        for &x in xs {
            p.observe(x);
        }
        p.predict()
    };
    assert_eq!(run(PredictorKind::Constant, &[]), 0.0);
    assert_eq!(run(PredictorKind::Constant, &[3.0, 7.0]), 7.0);
    assert_eq!(
        run(PredictorKind::MovingAverage { window: 2 }, &[1.0, 3.0, 7.0]),
        5.0
    );
    let holt = PredictorKind::Holt {
        alpha: 0.5,
        beta: 0.5,
    };
    assert_eq!(run(holt, &[10.0]), 10.0);
    assert_eq!(run(holt, &[10.0, 20.0]), 17.5);
    assert_eq!(run(holt, &[10.0, 20.0, 30.0]), 29.375);
    assert_eq!(
        run(holt, &[30.0, 0.0, 0.0, 0.0]),
        0.0,
        "a falling trend is clamped at 0"
    );
    let kalman = PredictorKind::Kalman { q: 1.0, r: 1.0 };
    assert!((run(kalman, &[10.0, 20.0]) - (10.0 + 20.0 / 3.0)).abs() < 1e-12);
    assert_eq!(
        run(kalman, &[10.0, f64::NAN]),
        10.0,
        "non-finite input is ignored"
    );
}

#[test]
fn dynamo_6985_zero_traffic_scales_to_the_minimum_without_nan() {
    let mut cfg = config(2000.0);
    cfg.predictor = PredictorKind::parse("holt").unwrap();
    cfg.correction = true;
    let mut planner = Planner::new(cfg, profile(), FixedConnector::new(4, 8)).unwrap();
    let mut targets = Vec::new();
    for _ in 0..10 {
        let mut obs = traffic(0, 0, 0, 0);
        obs.ttft = LatencyObservation {
            count: 0,
            mean_ms: f64::NAN,
        };
        let d = planner.step(obs);
        let l = d.load;
        assert!([
            l.rate_per_s,
            l.isl,
            l.osl,
            l.hit_rate,
            d.ttft_correction,
            d.itl_correction
        ]
        .iter()
        .all(|v| v.is_finite()));
        assert!(d.roles[0].required_workers.is_finite());
        targets.push(d.roles[0].target);
    }
    assert_eq!(targets, vec![4, 4, 1, 1, 1, 1, 1, 1, 1, 1]);
    assert_eq!(planner.connector().desired.aggregated, 1);
    assert_eq!(planner.metrics().scale_downs, 1);
}

/// A closed loop: the true work per request is 1.2× the profile's; observed TTFT is the true
/// prefill plus an M/M/1 wait at the true utilization (burstier than the planner's M/D/1, so
/// the observed/expected ratio, and with it the correction, depends on the replica count), ITL
/// 1.2× the profile's.
fn closed_loop_interval(rate: f64, workers: usize) -> Observation {
    let requests = (rate * 10.0).round() as u64;
    let mut obs = traffic(requests, 500, 100, workers);
    let (s, d) = (0.6, 1.2 * 100.0 * 50.0 / 9000.0);
    let rho = rate * (s + d) / workers as f64;
    let ttft_ms = if rho < 1.0 {
        1000.0 * (s + rho * s / (1.0 - rho))
    } else {
        60_000.0
    };
    obs.ttft = LatencyObservation {
        count: requests,
        mean_ms: ttft_ms,
    };
    obs.itl = LatencyObservation {
        count: requests * 100,
        mean_ms: 60.0,
    };
    obs
}

/// Replica changes after a 20-interval warm-up over 200 intervals of a flat load, per rate.
fn changes_on_flat_load(cfg: &PlannerConfig) -> Vec<(f64, usize)> {
    let mut out = Vec::new();
    for tenths in 2..=40 {
        let rate = f64::from(tenths) / 10.0;
        let mut planner = Planner::new(cfg.clone(), profile(), FixedConnector::new(1, 8)).unwrap();
        let mut changes_after_warmup = 0;
        for i in 0..200 {
            let n = planner.connector().desired.aggregated;
            let d = planner.step(closed_loop_interval(rate, n));
            if i >= 20 && d.scales() {
                changes_after_warmup += 1;
            }
        }
        out.push((rate, changes_after_warmup));
    }
    out
}

#[test]
fn dynamo_9294_no_oscillation_on_a_long_flat_load() {
    let mut cfg = config(2000.0);
    cfg.correction = true;
    cfg.predictor = PredictorKind::parse("kalman").unwrap();
    let flapping: Vec<_> = changes_on_flat_load(&cfg)
        .into_iter()
        .filter(|c| c.1 > 0)
        .collect();
    assert!(
        flapping.is_empty(),
        "replicas kept changing on a flat load: {flapping:?}"
    );
    // The same loop without the survivors' margin (scale down as soon as ceil(R/ρ) is lower)
    // does flap somewhere: the test can tell.
    cfg.scale_down_utilization = cfg.scale_up_utilization;
    cfg.scale_down_intervals = 1;
    let flapping: Vec<_> = changes_on_flat_load(&cfg)
        .into_iter()
        .filter(|c| c.1 > 0)
        .collect();
    assert!(!flapping.is_empty());
}

#[test]
fn dynamo_14251_unfulfillable_scale_up_neither_wedges_nor_blocks_scale_down() {
    let mut planner = Planner::new(config(2000.0), profile(), FixedConnector::new(1, 2)).unwrap();
    let mut warned = false;
    for _ in 0..6 {
        let c = planner.connector().clone();
        let d = planner.step(traffic(30, 500, 100, c.desired.aggregated.min(2)));
        assert_eq!(
            d.roles[0].target, 4,
            "asks once for what the load needs, not more"
        );
        warned |= d.warnings.iter().any(|w| {
            matches!(
                w,
                Warning::ScaleUpUnfulfilled {
                    desired: 4,
                    ready: 2,
                    ..
                }
            )
        });
    }
    assert!(warned);
    assert!(planner.metrics().unfulfilled_scale_ups >= 1);
    assert_eq!(planner.metrics().scale_ups, 1);
    for _ in 0..4 {
        planner.step(traffic(0, 0, 0, 2));
    }
    assert_eq!(
        planner.connector().desired.aggregated,
        1,
        "scale-down still happens"
    );
    // Both decisions went through the connector, and /metrics says so.
    assert_eq!(planner.connector().sets, 2);
    let text = planner.metrics().render();
    for line in [
        r#"rotor_planner_connector_requests_total{connector="fixed",op="set_target",outcome="ok"} 2"#,
        r#"rotor_planner_connector_requests_total{connector="fixed",op="set_target",outcome="error"} 0"#,
        r#"rotor_planner_connector_requests_total{connector="fixed",op="read",outcome="ok"} 10"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
}

#[test]
fn dynamo_6145_unreachable_sla_stops_at_the_budget_with_a_warning() {
    let mut cfg = config(2000.0);
    cfg.correction = true;
    cfg.budget_workers = 6;
    let mut planner = Planner::new(cfg, profile(), FixedConnector::new(1, 8)).unwrap();
    for i in 0..50 {
        let n = planner.connector().desired.aggregated;
        // 5000-token prompts: TTFT 5 s alone > 2 s target; latency stays terrible.
        let mut obs = traffic(50 + 10 * i, 5000, 100, n);
        obs.ttft = LatencyObservation {
            count: 100,
            mean_ms: 60_000.0,
        };
        obs.itl = LatencyObservation {
            count: 1000,
            mean_ms: 500.0,
        };
        let d = planner.step(obs);
        assert!(d.roles[0].target <= 6);
        assert!(d.ttft_correction <= 3.0 && d.itl_correction <= 3.0);
        assert!(d
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::TtftUnreachable { .. })));
        if i > 0 {
            assert!(d
                .warnings
                .iter()
                .any(|w| matches!(w, Warning::BudgetExhausted { target: 6, .. })));
        }
    }
    assert_eq!(planner.connector().desired.aggregated, 6);
}

#[test]
fn manual_change_is_observed_not_overwritten() {
    let mut planner = Planner::new(config(2000.0), profile(), FixedConnector::new(1, 8)).unwrap();
    let d = planner.step(traffic(10, 500, 100, 1));
    assert_eq!(d.roles[0].target, 2);
    planner.connector_mut().desired.aggregated = 5; // by hand
    let d = planner.step(traffic(10, 500, 100, 5));
    assert!(d.warnings.contains(&Warning::ManualChangeObserved {
        role: Role::Aggregated,
        expected: 2,
        observed: 5
    }));
    assert_eq!(
        (d.roles[0].current, d.roles[0].target, d.roles[0].action),
        (5, 5, Action::WaitToScaleDown)
    );
    assert_eq!(planner.metrics().manual_changes, 1);
    let targets: Vec<usize> = (0..3)
        .map(|_| planner.step(traffic(10, 500, 100, 5)).roles[0].target)
        .collect();
    assert_eq!(
        targets,
        vec![5, 2, 2],
        "then scaled down like any other excess, after its intervals"
    );
}

#[test]
fn metrics_render_counters_and_per_role_gauges() {
    let mut planner = Planner::new(config(2000.0), profile(), FixedConnector::new(1, 8)).unwrap();
    planner.step(traffic(20, 500, 100, 1));
    let text = planner.metrics().render();
    assert!(text.contains("rotor_planner_decisions_total 1"));
    assert!(text.contains("rotor_planner_scale_ups_total 1"));
    assert!(text.contains("rotor_planner_target_replicas{role=\"aggregated\"} 3"));
    assert!(text.contains("rotor_planner_predicted_request_rate 2"));
}

#[test]
fn config_errors_are_named() {
    let mut cfg = config(2000.0);
    cfg.scale_down_utilization = 0.9;
    assert!(cfg
        .validate()
        .unwrap_err()
        .to_string()
        .contains("scale_down_utilization"));
    let mut cfg = config(2000.0);
    cfg.bounds.aggregated.min = 9;
    assert!(cfg.validate().unwrap_err().to_string().contains("bounds"));
    assert!(PredictorKind::parse("arima").is_err());
}

#[test]
fn backlog_is_drained_within_the_next_interval() {
    let cfg = config(2000.0).validate().unwrap();
    let mut obs = traffic(20, 500, 100, 1);
    obs.inflight_requests = 20;
    let (d, _) = plan(&cfg, &profile(), &PlannerState::new(&cfg), &obs);
    // R = 2·w + 20·w/10 = 4·w = 4.222 → ceil(4.222/0.8) = 6.
    let w = 0.5 + 100.0 * 50.0 / 9000.0;
    assert!((d.roles[0].required_workers - 4.0 * w).abs() < 1e-12);
    assert_eq!(d.roles[0].target, 6);
}

#[test]
fn scale_down_waits_for_the_worker_start_up_time() {
    let mut cfg = config(2000.0);
    cfg.worker_startup_s = 45.0; // 10 s intervals: 5 intervals, more than the 3 by default
    let mut planner = Planner::new(cfg, profile(), FixedConnector::new(4, 8)).unwrap();
    let targets: Vec<usize> = (0..6)
        .map(|_| planner.step(traffic(0, 0, 0, 4)).roles[0].target)
        .collect();
    assert_eq!(targets, vec![4, 4, 4, 4, 1, 1]);
}

#[test]
fn a_dip_does_not_cancel_a_scale_up_still_needed_in_part() {
    let mut planner = Planner::new(config(2000.0), profile(), FixedConnector::new(1, 8)).unwrap();
    // 4 desired, 1 ready (3 starting); the load now needs 2: hold, do not cancel the starts.
    planner.connector_mut().desired.aggregated = 4;
    planner.connector_mut().capacity.aggregated = 1;
    for _ in 0..5 {
        let mut obs = traffic(7, 500, 100, 4);
        obs.replicas.aggregated.ready = 1;
        let d = planner.step(obs);
        assert_eq!(d.roles[0].target, 4);
    }
    // The load needs no more than the ready worker: the starts are cancelled.
    for _ in 0..3 {
        planner.step(traffic(0, 0, 0, 4));
    }
    assert_eq!(planner.connector().desired.aggregated, 1);
}
