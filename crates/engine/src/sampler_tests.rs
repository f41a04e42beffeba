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

/// The sampler as it was before the nucleus shortcut (full sort of the vocabulary for top-p),
/// kept verbatim as the reference the fast path must match draw for draw.
#[derive(Default)]
struct NaiveSampler {
    candidates: Vec<Candidate>,
}

impl NaiveSampler {
    fn sample(&mut self, logits: &mut [f32], params: &SamplingParams, rng: &mut StdRng) -> u32 {
        if params.temperature < GREEDY_TEMPERATURE {
            return argmax(logits);
        }
        self.truncate(logits, params);
        let total: f32 = self.candidates.iter().map(|c| c.value).sum();
        if !(total.is_finite() && total > 0.0) {
            return argmax(logits);
        }
        let u: f32 = rng.random();
        let mut remaining = u * total;
        for c in &self.candidates {
            remaining -= c.value;
            if remaining < 0.0 {
                return c.id;
            }
        }
        self.candidates
            .last()
            .map_or_else(|| argmax(logits), |c| c.id)
    }

    fn truncate(&mut self, logits: &[f32], params: &SamplingParams) {
        let inv_t = 1.0 / params.temperature.max(GREEDY_TEMPERATURE);
        self.candidates.clear();
        self.candidates
            .extend(logits.iter().enumerate().map(|(i, &l)| Candidate {
                id: i as u32,
                value: l * inv_t,
            }));
        let k = params.top_k.map_or(0, |k| k as usize);
        if k > 0 && k < self.candidates.len() {
            self.candidates.select_nth_unstable_by(k - 1, by_value_desc);
            self.candidates.truncate(k);
        }
        let needs_order = params.top_p < 1.0;
        if needs_order {
            self.candidates.sort_unstable_by(by_value_desc);
        }
        let max = self
            .candidates
            .iter()
            .map(|c| c.value)
            .fold(f32::NEG_INFINITY, f32::max);
        for c in &mut self.candidates {
            c.value = (c.value - max).exp();
        }
        self.renormalise();
        if needs_order {
            let mut mass = 0.0f32;
            let mut keep = self.candidates.len();
            for (i, c) in self.candidates.iter().enumerate() {
                mass += c.value;
                if mass >= params.top_p {
                    keep = i + 1;
                    break;
                }
            }
            self.candidates.truncate(keep);
            self.renormalise();
        }
        if params.min_p > 0.0 {
            let top = self
                .candidates
                .iter()
                .map(|c| c.value)
                .fold(0.0f32, f32::max);
            let threshold = params.min_p * top;
            self.candidates.retain(|c| c.value >= threshold);
            self.renormalise();
        }
    }

    fn renormalise(&mut self) {
        let sum: f32 = self.candidates.iter().map(|c| c.value).sum();
        if sum > 0.0 {
            for c in &mut self.candidates {
                c.value /= sum;
            }
        }
    }
}

/// Kept tokens as (id, probability bits), in the sampler's order.
type KeptBits = Vec<(u32, u32)>;

/// Kept (id, probability bits) of both samplers after `truncate`, in their order.
fn kept_bits(fast: &Sampler, naive: &NaiveSampler) -> (KeptBits, KeptBits) {
    (
        fast.kept().map(|(id, p)| (id, p.to_bits())).collect(),
        naive
            .candidates
            .iter()
            .map(|c| (c.id, c.value.to_bits()))
            .collect(),
    )
}

/// Asserts the fast sampler keeps the same tokens with bit-identical probabilities (when top-p
/// orders them) and draws the same 16 tokens as the naive twin for the same seed.
fn assert_same_as_naive(logits: &[f32], p: &SamplingParams, seed: u64) {
    let (mut fast, mut naive) = (Sampler::new(), NaiveSampler::default());
    if p.temperature >= GREEDY_TEMPERATURE {
        fast.truncate(logits, p);
        naive.truncate(logits, p);
        let (a, b) = kept_bits(&fast, &naive);
        assert_eq!(a, b, "kept tokens differ for {p:?}");
    }
    let (mut rng_fast, mut rng_naive) = (seeded_rng(Some(seed)), seeded_rng(Some(seed)));
    let state = PenaltyState::default();
    for draw in 0..16 {
        let got = fast.sample(&mut logits.to_vec(), p, &state, &mut rng_fast);
        let want = naive.sample(&mut logits.to_vec(), p, &mut rng_naive);
        assert_eq!(got, want, "draw {draw} differs for {p:?}, seed {seed}");
    }
}

/// Logits like a language model's: a broad body, a few strong candidates, optional ties.
fn lm_like_logits(rng: &mut StdRng, vocab: usize, spread: f32, ties: bool) -> Vec<f32> {
    let mut logits: Vec<f32> = (0..vocab)
        .map(|_| {
            let x: f32 = rng.random::<f32>() + rng.random::<f32>() + rng.random::<f32>() - 1.5;
            x * spread
        })
        .collect();
    for _ in 0..rng.random_range(0..6) {
        let i = rng.random_range(0..vocab);
        logits[i] = spread * 2.0 + rng.random::<f32>() * 8.0;
    }
    if ties {
        for l in &mut logits {
            *l = (*l * 2.0).round() / 2.0;
        }
    }
    logits
}

const TOP_PS: [f32; 8] = [0.0, 0.1, 0.5, 0.9, 0.95, 0.999, 0.999_999_94, 1.0];

#[test]
fn nucleus_shortcut_draws_like_the_full_sort_on_a_full_vocabulary() {
    let mut rng = seeded_rng(Some(2024));
    for (row, &temperature) in [0.2f32, 0.7, 1.0, 1.3].iter().enumerate() {
        let logits = lm_like_logits(&mut rng, 49_152, 3.0, row % 2 == 1);
        for top_p in [0.9, 0.95, 0.5] {
            let p = SamplingParams {
                temperature,
                top_p,
                ..params()
            };
            assert_same_as_naive(&logits, &p, row as u64);
        }
    }
}

#[test]
fn nan_and_infinite_logits_fall_back_to_the_full_path() {
    let mut logits = vec![1.0, f32::NAN, 0.5, -2.0];
    let p = SamplingParams {
        temperature: 0.7,
        top_p: 0.9,
        ..params()
    };
    assert_same_as_naive(&logits, &p, 1);
    logits[1] = f32::INFINITY;
    assert_same_as_naive(&logits, &p, 2);
    assert_same_as_naive(&[f32::NEG_INFINITY; 5], &p, 3);
    assert_same_as_naive(&[f32::NEG_INFINITY, 3.0, f32::NEG_INFINITY], &p, 4);
}

#[test]
fn tokens_far_below_the_top_are_not_candidates_of_the_nucleus() {
    // Token 0 leads by 20 at temperature 1: the tokens at -20 have e^-20 < 2^-24 of its weight
    // and change no f32 sum, token 7 (e^-16 ≈ 1.1e-7) does and is needed to reach top_p.
    let mut logits = vec![-20.0f32; 1000];
    logits[0] = 0.0;
    logits[7] = -16.0;
    let p = SamplingParams {
        top_p: 0.999_999_94,
        ..params()
    };
    let mut sampler = Sampler::new();
    sampler.truncate(&logits, &p);
    let kept: Vec<u32> = sampler.kept().map(|(id, _)| id).collect();
    assert_eq!(kept, vec![0, 7]);
    assert_same_as_naive(&logits, &p, 5);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    #[test]
    fn fast_sampler_equals_naive_twin(
        seed in 0u64..1_000_000,
        vocab in 1usize..3000,
        spread in proptest::sample::select(vec![0.05f32, 1.0, 3.0, 12.0]),
        ties in proptest::bool::ANY,
        temperature in proptest::sample::select(vec![0.0f32, 0.05, 0.2, 0.7, 1.0, 1.5, 4.0]),
        top_p in proptest::sample::select(TOP_PS.to_vec()),
        top_k in proptest::sample::select(vec![None, Some(0u32), Some(1), Some(5), Some(50), Some(5000)]),
        min_p in proptest::sample::select(vec![0.0f32, 0.05, 0.3]),
    ) {
        let mut rng = seeded_rng(Some(seed));
        let logits = lm_like_logits(&mut rng, vocab, spread, ties);
        let p = SamplingParams { temperature, top_p, top_k, min_p, ..params() };
        assert_same_as_naive(&logits, &p, seed);
    }
}

#[test]
fn logit_bias_is_added_and_clamped() {
    let mut logits = vec![0.0f32, 1.0, 2.0, 3.0];
    apply_logit_bias(&mut logits, &[(0, 5.0), (1, -1e9), (3, 250.0), (99, 1.0)]);
    assert_eq!(
        logits,
        vec![5.0, 1.0 - MAX_LOGIT_BIAS, 2.0, 3.0 + MAX_LOGIT_BIAS]
    );
}

#[test]
fn logprobs_are_log_softmax_with_sorted_alternatives() {
    let probs = [0.1f32, 0.6, 0.3];
    let logits: Vec<f32> = logits_for(&probs).iter().map(|l| l + 7.0).collect();
    let lp = token_logprob(&logits, 2, 2);
    assert_eq!(lp.token_id, 2);
    assert!((lp.logprob - 0.3f32.ln()).abs() < 1e-5, "{}", lp.logprob);
    assert_eq!(lp.top.len(), 2);
    assert_eq!(lp.top[0].0, 1);
    assert!((lp.top[0].1 - 0.6f32.ln()).abs() < 1e-5);
    assert_eq!(lp.top[1].0, 2);
    // Zero alternatives: only the chosen token.
    assert!(token_logprob(&logits, 0, 0).top.is_empty());
    // Ties: lower id first.
    let lp = token_logprob(&[1.0, 2.0, 2.0, 0.5], 1, 3);
    assert_eq!(
        lp.top.iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![1, 2, 0]
    );
}

#[test]
fn masked_tokens_are_never_drawn_nor_listed() {
    // A constraint mask sets forbidden logits to -inf before the draw.
    let mut sampler = Sampler::new();
    let mut logits = vec![5.0f32, f32::NEG_INFINITY, 1.0, f32::NEG_INFINITY];
    let lp = token_logprob(&logits, 2, 4);
    assert_eq!(lp.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![0, 2]);
    let mass: f32 = lp.top.iter().map(|t| t.1.exp()).sum();
    assert!((mass - 1.0).abs() < 1e-5);
    for seed in 0..200 {
        let mut rng = seeded_rng(Some(seed));
        let p = SamplingParams {
            temperature: 3.0,
            ..params()
        };
        let t = sampler.sample(&mut logits, &p, &PenaltyState::default(), &mut rng);
        assert!(t == 0 || t == 2, "drew masked token {t}");
    }
    // A chosen token at -inf still reports a finite (JSON-safe) logprob.
    assert_eq!(token_logprob(&logits, 1, 0).logprob, f32::MIN);
}
