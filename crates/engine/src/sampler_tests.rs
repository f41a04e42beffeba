use super::*;

fn params() -> SamplingParams {
    SamplingParams::default()
}

fn kept_ids(sampler: &Sampler) -> Vec<u32> {
    let mut ids: Vec<u32> = sampler.kept().map(|(id, _)| id).collect();
    ids.sort_unstable();
    ids
}

/// Logits whose softmax is exactly the given probabilities (ln p).
fn logits_for(probs: &[f32]) -> Vec<f32> {
    probs.iter().map(|p| p.ln()).collect()
}

#[test]
fn greedy_is_argmax_with_lowest_id_on_ties() {
    let mut sampler = Sampler::new();
    let mut rng = seeded_rng(Some(1));
    let state = PenaltyState::default();
    let mut logits = vec![0.5, 3.0, -1.0, 3.0, 2.9];
    assert_eq!(
        sampler.sample(&mut logits, &SamplingParams::greedy(), &state, &mut rng),
        1
    );
    let mut logits = vec![-5.0, -4.0, -7.0];
    assert_eq!(
        sampler.sample(&mut logits, &SamplingParams::greedy(), &state, &mut rng),
        1
    );
}

#[test]
fn top_k_one_equals_greedy_for_any_seed() {
    let mut sampler = Sampler::new();
    let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 101) as f32 * 0.1).collect();
    let expected = argmax(&logits);
    let p = SamplingParams {
        top_k: Some(1),
        temperature: 1.5,
        ..params()
    };
    for seed in 0..20 {
        let mut rng = seeded_rng(Some(seed));
        let mut row = logits.clone();
        assert_eq!(
            sampler.sample(&mut row, &p, &PenaltyState::default(), &mut rng),
            expected
        );
    }
}

#[test]
fn same_seed_and_logits_give_same_tokens() {
    let mut sampler = Sampler::new();
    let logits: Vec<f32> = (0..50).map(|i| (i as f32 * 0.7).sin()).collect();
    let p = SamplingParams {
        seed: Some(42),
        ..params()
    };
    let draw = |sampler: &mut Sampler, seed| {
        let mut rng = seeded_rng(Some(seed));
        (0..64)
            .map(|_| sampler.sample(&mut logits.clone(), &p, &PenaltyState::default(), &mut rng))
            .collect::<Vec<u32>>()
    };
    let a = draw(&mut sampler, 42);
    let b = draw(&mut sampler, 42);
    let c = draw(&mut sampler, 43);
    assert_eq!(a, b);
    assert_ne!(
        a, c,
        "a different seed should change a 64-token draw over 50 near-uniform tokens"
    );
    let distinct: HashSet<u32> = a.iter().copied().collect();
    assert!(
        distinct.len() > 5,
        "temperature 1 over a flat distribution must not collapse: {a:?}"
    );
}

#[test]
fn repetition_penalty_divides_positive_and_multiplies_negative() {
    let p = SamplingParams {
        repetition_penalty: 2.0,
        ..params()
    };
    let mut state = PenaltyState::new(&[0, 1], &p);
    state.record(3);
    let mut logits = vec![4.0, -1.5, 1.0, 3.0, -2.0];
    apply_penalties(&mut logits, &p, &state);
    assert_eq!(logits, vec![2.0, -3.0, 1.0, 1.5, -2.0]);
}

#[test]
fn frequency_and_presence_penalties_follow_openai_formula() {
    let p = SamplingParams {
        frequency_penalty: 0.5,
        presence_penalty: 0.25,
        ..params()
    };
    // Prompt tokens do not count for OpenAI penalties.
    let mut state = PenaltyState::new(&[4, 4, 4], &p);
    for t in [1, 1, 1, 2] {
        state.record(t);
    }
    let mut logits = vec![1.0, 1.0, 1.0, 1.0, 1.0];
    apply_penalties(&mut logits, &p, &state);
    // token 1: 1 - (3·0.5 + 0.25) = -0.75; token 2: 1 - (0.5 + 0.25) = 0.25.
    assert_eq!(logits, vec![1.0, -0.75, 0.25, 1.0, 1.0]);
}

#[test]
fn penalties_apply_before_greedy_choice() {
    let p = SamplingParams {
        presence_penalty: 1.0,
        ..SamplingParams::greedy()
    };
    let mut state = PenaltyState::new(&[], &p);
    state.record(0);
    let mut sampler = Sampler::new();
    let mut logits = vec![2.0, 1.5, 0.0];
    assert_eq!(
        sampler.sample(&mut logits, &p, &state, &mut seeded_rng(Some(0))),
        1
    );
}

#[test]
fn top_k_keeps_the_k_largest() {
    let mut sampler = Sampler::new();
    let logits = vec![0.1, 5.0, 2.0, 4.0, -1.0, 3.0];
    sampler.truncate(
        &logits,
        &SamplingParams {
            top_k: Some(3),
            ..params()
        },
    );
    assert_eq!(kept_ids(&sampler), vec![1, 3, 5]);
    let total: f32 = sampler.kept().map(|(_, p)| p).sum();
    assert!((total - 1.0).abs() < 1e-6);
}

#[test]
fn top_p_keeps_shortest_prefix_reaching_mass() {
    let mut sampler = Sampler::new();
    let logits = logits_for(&[0.1, 0.5, 0.05, 0.3, 0.05]);
    sampler.truncate(
        &logits,
        &SamplingParams {
            top_p: 0.75,
            ..params()
        },
    );
    assert_eq!(kept_ids(&sampler), vec![1, 3]);
    let probs: Vec<(u32, f32)> = sampler.kept().collect();
    assert_eq!(probs[0].0, 1);
    assert!((probs[0].1 - 0.625).abs() < 1e-5, "{probs:?}");
    sampler.truncate(
        &logits,
        &SamplingParams {
            top_p: 0.85,
            ..params()
        },
    );
    assert_eq!(kept_ids(&sampler), vec![0, 1, 3]);
    sampler.truncate(
        &logits,
        &SamplingParams {
            top_p: 0.01,
            ..params()
        },
    );
    assert_eq!(kept_ids(&sampler), vec![1]);
}

#[test]
fn min_p_keeps_tokens_above_fraction_of_top() {
    let mut sampler = Sampler::new();
    let logits = logits_for(&[0.1, 0.5, 0.05, 0.3, 0.05]);
    // threshold = 0.3 × 0.5 = 0.15 → keeps 0.5 and 0.3.
    sampler.truncate(
        &logits,
        &SamplingParams {
            min_p: 0.3,
            ..params()
        },
    );
    assert_eq!(kept_ids(&sampler), vec![1, 3]);
    // threshold = 0.15 × 0.5 = 0.075 → also keeps 0.1.
    sampler.truncate(
        &logits,
        &SamplingParams {
            min_p: 0.15,
            ..params()
        },
    );
    assert_eq!(kept_ids(&sampler), vec![0, 1, 3]);
}

#[test]
fn truncation_applies_in_order_top_k_then_top_p_then_min_p() {
    let mut sampler = Sampler::new();
    let logits = logits_for(&[0.4, 0.3, 0.2, 0.1]);
    // top-k 3 renormalises to 4/9, 3/9, 2/9; top-p 0.7 then keeps 4/9 + 3/9 (≈ 0.78);
    // min-p 0.8 over 4/7, 3/7 keeps only those ≥ 0.457 → token 0.
    let p = SamplingParams {
        top_k: Some(3),
        top_p: 0.7,
        min_p: 0.8,
        ..params()
    };
    sampler.truncate(&logits, &p);
    assert_eq!(kept_ids(&sampler), vec![0]);
    let p = SamplingParams {
        top_k: Some(3),
        top_p: 0.7,
        min_p: 0.7,
        ..params()
    };
    sampler.truncate(&logits, &p);
    assert_eq!(kept_ids(&sampler), vec![0, 1]);
}

#[test]
fn temperature_sharpens_distribution() {
    let mut sampler = Sampler::new();
    let logits = vec![1.0, 0.0];
    sampler.truncate(
        &logits,
        &SamplingParams {
            temperature: 0.5,
            ..params()
        },
    );
    let p0 = sampler
        .kept()
        .find(|(id, _)| *id == 0)
        .map(|(_, p)| p)
        .unwrap_or(0.0);
    // softmax([2, 0])[0] = 1 / (1 + e^-2)
    assert!((p0 - 1.0 / (1.0 + (-2.0f32).exp())).abs() < 1e-6, "{p0}");
}

#[test]
fn sampling_only_returns_kept_tokens() {
    let mut sampler = Sampler::new();
    let logits = logits_for(&[0.1, 0.5, 0.05, 0.3, 0.05]);
    let p = SamplingParams {
        top_p: 0.75,
        ..params()
    };
    let mut rng = seeded_rng(Some(9));
    let mut seen = HashSet::new();
    for _ in 0..200 {
        seen.insert(sampler.sample(&mut logits.clone(), &p, &PenaltyState::default(), &mut rng));
    }
    assert_eq!(seen, HashSet::from([1, 3]));
}
