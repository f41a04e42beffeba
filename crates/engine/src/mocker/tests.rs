//! Unit tests of the mocker: timing formulas, step shapes, the fit, timing files, logits and
//! the output-token palette.

use std::time::Duration;

use rotor_protocol::TokenizerSpec;

use super::*;
use crate::config::EngineConfig;
use crate::runner::{ModelRunner, ScheduledChunk};

const EPS: f64 = 1e-9;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= EPS * b.abs().max(1.0)
}

fn shape(prefill_tokens: usize, decode_seqs: usize, kv_blocks: usize, blocks: usize) -> StepShape {
    StepShape {
        prefill_tokens,
        decode_seqs,
        total_tokens: prefill_tokens + decode_seqs,
        logit_rows: decode_seqs,
        attention_pairs: 0,
        kv_blocks_in_use: kv_blocks,
        num_blocks: blocks,
    }
}

#[test]
fn dynamo_prefill_polynomial_at_chosen_token_counts() {
    assert_eq!(dynamo_vllm_prefill_ms(0), 0.0);
    // 4.209989e-7·100² + 1.518344e-2·100 + 16.50142
    assert!(close(dynamo_vllm_prefill_ms(100), 18.023973989));
    // 4.209989e-7·1000² + 1.518344e-2·1000 + 16.50142
    assert!(close(dynamo_vllm_prefill_ms(1000), 32.1058589));
}

#[test]
fn dynamo_decode_polynomial_at_chosen_usages() {
    assert!(close(dynamo_vllm_decode_ms(0.0), 5.74));
    // −25.74·0.25 + 54.01·0.5 + 5.74
    assert!(close(dynamo_vllm_decode_ms(0.5), 26.31));
    assert!(close(dynamo_vllm_decode_ms(1.0), 34.01));
}

#[test]
fn dynamo_step_prices_prefill_only_decode_only_and_mixed_steps() {
    let t = MockerTiming::DynamoVllm;
    // Prefill only: no decode term even though blocks are in use.
    assert!(close(t.step_ms(&shape(100, 0, 50, 100)), 18.023973989));
    // Decode only at u = 50/100.
    assert!(close(t.step_ms(&shape(0, 3, 50, 100)), 26.31));
    // Mixed: the sum.
    assert!(close(
        t.step_ms(&shape(100, 3, 50, 100)),
        18.023973989 + 26.31
    ));
    // Nothing to run costs nothing.
    assert_eq!(t.step_ms(&shape(0, 0, 50, 100)), 0.0);
}

#[test]
fn speedup_divides_the_modelled_duration() {
    let t = MockerTiming::DynamoVllm;
    let s = shape(100, 3, 50, 100);
    let ms = 18.023973989 + 26.31;
    let at_1 = t.step_duration(&s, 1.0);
    let at_4 = t.step_duration(&s, 4.0);
    assert!(close(at_1.as_secs_f64(), ms / 1000.0));
    assert!(close(at_4.as_secs_f64(), ms / 4000.0));
}

#[test]
fn fitted_model_is_linear_in_tokens_rows_and_attention() {
    let c = FittedCoefficients {
        base_ms: 4.0,
        per_token_ms: 3.0,
        per_logit_row_ms: 0.5,
        per_kilo_attention_pair_ms: 0.02,
    };
    let s = StepShape {
        prefill_tokens: 10,
        decode_seqs: 2,
        total_tokens: 12,
        logit_rows: 3,
        attention_pairs: 5000,
        kv_blocks_in_use: 7,
        num_blocks: 100,
    };
    // 4 + 3·12 + 0.5·3 + 0.02·5
    assert!(close(MockerTiming::Fitted(c).step_ms(&s), 41.6));
    assert!(close(
        MockerTiming::Fitted(c).step_duration(&s, 2.0).as_secs_f64(),
        0.0208
    ));
}

#[test]
fn shape_counts_decodes_prefill_tokens_distinct_blocks_and_attention() {
    let mut counter = ShapeCounter::new(10, 4, 100, 64);
    let (a_tokens, b_tokens, c_tokens) = ([7u32], [1u32, 2, 3, 4, 5], [9u32]);
    let chunks = [
        // decode at position 8 (context 8): blocks 0, 1, 2
        ScheduledChunk {
            tokens: &a_tokens,
            start_pos: 8,
            block_table: &[0, 1, 2],
            want_logits: true,
        },
        // prefill of positions 3..8, sharing block 0 with the first sequence
        ScheduledChunk {
            tokens: &b_tokens,
            start_pos: 3,
            block_table: &[0, 5],
            want_logits: false,
        },
        // a one-token chunk that does not sample is a prefill chunk
        ScheduledChunk {
            tokens: &c_tokens,
            start_pos: 0,
            block_table: &[6],
            want_logits: false,
        },
    ];
    let s = counter.measure(&chunks).expect("valid batch");
    assert_eq!(
        s,
        StepShape {
            prefill_tokens: 6,
            decode_seqs: 1,
            total_tokens: 7,
            logit_rows: 1,
            // 1·8 + 1 ; 5·3 + 15 ; 0 + 1
            attention_pairs: 9 + 30 + 1,
            kv_blocks_in_use: 5,
            num_blocks: 10,
        }
    );
    assert!(close(s.kv_usage(), 0.5));
    // The next step counts afresh.
    let s = counter.measure(&chunks[..1]).expect("valid batch");
    assert_eq!(s.kv_blocks_in_use, 3);
}

#[test]
fn shape_rejects_blocks_outside_the_pool_and_short_tables() {
    let mut counter = ShapeCounter::new(4, 4, 100, 64);
    let tokens = [1u32, 2];
    let outside = [ScheduledChunk {
        tokens: &tokens,
        start_pos: 0,
        block_table: &[4],
        want_logits: true,
    }];
    assert!(counter.measure(&outside).is_err());
    let short = [ScheduledChunk {
        tokens: &tokens,
        start_pos: 3,
        block_table: &[0],
        want_logits: true,
    }];
    assert!(counter.measure(&short).is_err());
}

/// Samples on the profiler's grid shape, timed by `truth` and scaled per sample by `noise(i)`.
fn synthetic(truth: FittedCoefficients, noise: impl Fn(usize) -> f64) -> Vec<ProfileSample> {
    let mut points = Vec::new();
    for (start, len) in [
        (0, 16),
        (0, 64),
        (0, 256),
        (0, 512),
        (512, 128),
        (1536, 512),
    ] {
        points.push((len, 1, chunk_attention_pairs(start, len)));
    }
    for (batch, ctx) in [
        (1, 128),
        (1, 2048),
        (8, 128),
        (16, 512),
        (64, 128),
        (64, 512),
    ] {
        points.push((batch, batch, batch as u64 * chunk_attention_pairs(ctx, 1)));
    }
    points
        .into_iter()
        .enumerate()
        .map(|(i, (tokens, rows, pairs))| ProfileSample {
            label: format!("point {i}"),
            total_tokens: tokens,
            logit_rows: rows,
            attention_pairs: pairs,
            measured_ms: truth.predict_ms(tokens, rows, pairs) * noise(i),
        })
        .collect()
}

const TRUTH: FittedCoefficients = FittedCoefficients {
    base_ms: 4.5,
    per_token_ms: 3.2,
    per_logit_row_ms: 0.9,
    per_kilo_attention_pair_ms: 0.5,
};

#[test]
fn fit_recovers_known_coefficients_from_exact_samples() {
    let samples = synthetic(TRUTH, |_| 1.0);
    let c = fit_coefficients(&samples).expect("fit");
    for (got, want) in c.to_array().into_iter().zip(TRUTH.to_array()) {
        assert!(
            (got - want).abs() <= 1e-6 * want,
            "{got} vs {want} (rel 1e-6)"
        );
    }
    assert!(max_relative_error(&c, &samples) < 1e-9);
}

#[test]
fn fit_under_1_percent_noise_is_within_10_percent_per_coefficient_and_2_percent_per_sample() {
    // Deterministic ±1 % multiplicative noise. The attention term is the least determined
    // (it is a small part of every sample): it lands about 8 % off; the others within 1 %.
    let samples = synthetic(TRUTH, |i| if i % 2 == 0 { 1.01 } else { 0.99 });
    let c = fit_coefficients(&samples).expect("fit");
    for (got, want) in c.to_array().into_iter().zip(TRUTH.to_array()) {
        assert!(
            (got - want).abs() <= 0.10 * want,
            "{got} vs {want} (rel 10%)"
        );
    }
    assert!(max_relative_error(&c, &samples) <= 0.02);
}

#[test]
fn fit_never_returns_negative_coefficients() {
    let truth = FittedCoefficients {
        per_kilo_attention_pair_ms: -0.05,
        ..TRUTH
    };
    let c = fit_coefficients(&synthetic(truth, |_| 1.0)).expect("fit");
    assert_eq!(c.per_kilo_attention_pair_ms, 0.0);
    assert!(c.to_array().iter().all(|&x| x >= 0.0), "{c:?}");
}

#[test]
fn fit_refuses_too_few_or_degenerate_samples() {
    let samples = synthetic(TRUTH, |_| 1.0);
    assert!(matches!(
        fit_coefficients(&samples[..3]),
        Err(MockerError::Fit { samples: 3, .. })
    ));
    let same = vec![samples[0].clone(); 6];
    assert!(matches!(
        fit_coefficients(&same),
        Err(MockerError::Fit { samples: 6, .. })
    ));
}

#[test]
fn the_embedded_fitted_profile_parses_with_usable_coefficients() {
    let profile: FittedProfile =
        serde_json::from_str(DEFAULT_FITTED_PROFILE_JSON).expect("embedded profile parses");
    assert!(profile.coefficients.to_array().iter().all(|&c| c >= 0.0));
    assert!(profile.coefficients.base_ms > 0.0 && profile.coefficients.per_token_ms > 0.0);
    assert_eq!(
        MockerTiming::default_fitted(),
        MockerTiming::Fitted(profile.coefficients)
    );
}

#[test]
fn timing_parses_presets_and_files() {
    assert_eq!(
        MockerTiming::parse("dynamo-vllm").expect("preset"),
        MockerTiming::DynamoVllm
    );
    assert_eq!(
        MockerTiming::parse("fitted").expect("preset"),
        MockerTiming::default_fitted()
    );
    let dir = std::env::temp_dir().join(format!("rotor-mocker-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut profile: FittedProfile =
        serde_json::from_str(DEFAULT_FITTED_PROFILE_JSON).expect("embedded profile parses");
    profile.coefficients = TRUTH;
    let good = dir.join("good.json");
    std::fs::write(&good, serde_json::to_string(&profile).expect("serialise")).expect("write");
    assert_eq!(
        MockerTiming::parse(good.to_str().expect("utf-8 path")).expect("file"),
        MockerTiming::Fitted(TRUTH)
    );
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{\"coefficients\": 3}").expect("write");
    assert!(matches!(
        MockerTiming::parse(bad.to_str().expect("utf-8 path")),
        Err(MockerError::ParseTiming { .. })
    ));
    assert!(matches!(
        MockerTiming::parse("no-such-preset"),
        Err(MockerError::ReadTiming { spec, .. }) if spec == "no-such-preset"
    ));
    std::fs::remove_dir_all(&dir).expect("clean up");
}

fn mocker(palette: Vec<u32>) -> MockerRunner {
    let engine = EngineConfig {
        num_blocks: 8,
        block_size_tokens: 4,
        ..EngineConfig::default()
    };
    let mut cfg = MockerConfig::new(MockerTiming::DynamoVllm, &engine, 50, 64);
    cfg.speedup = 1e6;
    cfg.output_token_ids = palette;
    MockerRunner::new(cfg).expect("valid config")
}

#[test]
fn logits_have_one_finite_entry_at_the_palette_token_of_the_next_position() {
    let mut runner = mocker(vec![11, 22, 33]);
    let (a, b) = ([1u32, 2, 3], [4u32]);
    let chunks = [
        ScheduledChunk {
            tokens: &a,
            start_pos: 0,
            block_table: &[0],
            want_logits: true,
        },
        ScheduledChunk {
            tokens: &b,
            start_pos: 3,
            block_table: &[0, 1],
            want_logits: false,
        },
        ScheduledChunk {
            tokens: &b,
            start_pos: 7,
            block_table: &[2, 3],
            want_logits: true,
        },
    ];
    let mut logits = vec![1.0; 7];
    runner.step(&chunks, &mut logits).expect("step");
    assert_eq!(logits.len(), 2 * 50);
    let finite: Vec<(usize, f32)> = logits
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .map(|(i, &l)| (i, l))
        .collect();
    // Row 0 predicts position 3 → palette[0]; row 1 predicts position 8 → palette[2].
    assert_eq!(finite, vec![(11, 0.0), (50 + 33, 0.0)]);
    assert_eq!(runner.output_token(3), 11);
    assert_eq!(runner.output_token(8), 33);
    let (s, d) = runner.last_step();
    assert_eq!(
        (s.prefill_tokens, s.decode_seqs, s.kv_blocks_in_use),
        (4, 1, 4)
    );
    assert!(d < Duration::from_micros(1));
    // The logit-free hook gives the same tokens.
    let mut tokens = vec![5; 9];
    assert!(runner.step_tokens(&chunks, &mut tokens).expect("step"));
    assert_eq!(tokens, vec![11, 33]);
}

#[test]
fn config_refuses_bad_speedup_and_tokens_outside_the_vocabulary() {
    let engine = EngineConfig::default();
    let mut cfg = MockerConfig::new(MockerTiming::DynamoVllm, &engine, 50, 64);
    assert!(cfg.validate().is_ok());
    cfg.speedup = 0.0;
    assert!(matches!(
        MockerRunner::new(cfg.clone()),
        Err(MockerError::InvalidConfig {
            field: "speedup",
            ..
        })
    ));
    cfg.speedup = 1.0;
    cfg.output_token_ids = vec![3, 50];
    assert!(matches!(
        MockerRunner::new(cfg.clone()),
        Err(MockerError::InvalidConfig {
            field: "output_token_ids",
            ..
        })
    ));
    cfg.output_token_ids.clear();
    assert!(cfg.validate().is_err());
}

#[test]
fn ordinary_tokens_are_normal_lowercase_words_and_never_stop_tokens() {
    let tokens = [
        "<|endoftext|>",
        "<|im_start|>",
        "Ġthe",
        "ĠThe",
        "abc",
        "Ġcat",
        "Ġa",
        "Ġdog",
        "Ġends",
        "▁sun",
    ];
    let spec = TokenizerSpec {
        model: "gpt2".into(),
        pre: None,
        tokens: tokens.iter().map(|t| t.to_string()).collect(),
        // "Ġdog" (7) is control, "Ġends" (8) is the eot id.
        token_types: vec![3, 3, 1, 1, 1, 1, 1, 3, 1, 1],
        merges: Vec::new(),
        scores: Vec::new(),
        bos_token_id: Some(1),
        eos_token_id: Some(0),
        eot_token_ids: vec![8],
        add_bos_token: false,
        add_space_prefix: false,
    };
    assert_eq!(ordinary_token_ids(&spec, 10), vec![2, 5, 9]);
    assert_eq!(ordinary_token_ids(&spec, 2), vec![2, 5]);
    assert_eq!(default_output_token_ids(49152), vec![24576]);
}
