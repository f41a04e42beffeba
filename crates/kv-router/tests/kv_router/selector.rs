//! Worker selection: argmin, tie-breaks and softmax sampling.

use rand::rngs::StdRng;
use rand::SeedableRng;
use rotor_kv_router::{
    ActiveLoad, Candidate, CostFunction, Error, Overlap, TieBreak, WorkerSelector,
};

fn selector(weight: f64, temperature: f64, tie_break: TieBreak) -> WorkerSelector {
    WorkerSelector {
        cost: CostFunction {
            block_size_tokens: 4,
            kv_overlap_weight: weight,
            queue_weight: 1.0,
        },
        temperature,
        tie_break,
    }
}

fn candidate(worker: u64, overlap_blocks: usize, decode_blocks: u64) -> Candidate {
    Candidate {
        worker,
        overlap: Overlap::device(overlap_blocks),
        load: ActiveLoad {
            prefill_tokens: 0,
            decode_blocks,
            waiting: 0,
        },
    }
}

/// 32 tokens (8 blocks). Worker 1 caches 6 blocks but runs 16 decode blocks; worker 2 caches
/// nothing and runs 2. On worker 1 the request adds 2 blocks, on worker 2 all 8.
fn cache_vs_load() -> Vec<Candidate> {
    vec![candidate(1, 6, 16), candidate(2, 0, 2)]
}

#[test]
fn overlap_wins_when_its_weight_is_high() {
    let mut rng = StdRng::seed_from_u64(0);
    // weight 2: worker 1 = 2·2 + 18 = 22, worker 2 = 2·8 + 10 = 26.
    let s = selector(2.0, 0.0, TieBreak::LeastLoaded)
        .select(32, &cache_vs_load(), &mut rng)
        .unwrap();
    assert_eq!(s.worker, 1);
    assert_eq!(s.request_blocks, 8);
    assert_eq!(s.terms.overlap_blocks, 6);
    assert_eq!((s.terms.prefill_blocks, s.terms.decode_blocks), (2.0, 18.0));
    assert_eq!(s.terms.logit, 22.0);
}

#[test]
fn load_wins_when_weight_is_low_or_zero() {
    let mut rng = StdRng::seed_from_u64(0);
    // weight 1: worker 1 = 2 + 18 = 20, worker 2 = 8 + 10 = 18.
    let s = selector(1.0, 0.0, TieBreak::LeastLoaded)
        .select(32, &cache_vs_load(), &mut rng)
        .unwrap();
    assert_eq!((s.worker, s.terms.logit), (2, 18.0));
    // weight 0: 18 against 10.
    let s = selector(0.0, 0.0, TieBreak::LeastLoaded)
        .select(32, &cache_vs_load(), &mut rng)
        .unwrap();
    assert_eq!(
        (s.worker, s.terms.logit, s.terms.overlap_blocks),
        (2, 10.0, 0)
    );
}

#[test]
fn ties_go_to_the_least_loaded_then_the_lowest_id() {
    let mut rng = StdRng::seed_from_u64(0);
    let sel = selector(1.0, 0.0, TieBreak::LeastLoaded);
    // 16 tokens: worker 5 = 4 + (2 + 4) = 10; worker 3 = 2 + (6 + 2) = 10. Worker 5 runs less.
    let tied = [candidate(3, 2, 6), candidate(5, 0, 2)];
    assert_eq!(sel.select(16, &tied, &mut rng).unwrap().worker, 5);
    // Identical candidates: lowest id, whatever the order.
    let same = [candidate(9, 0, 1), candidate(4, 0, 1), candidate(7, 0, 1)];
    assert_eq!(sel.select(16, &same, &mut rng).unwrap().worker, 4);
    assert_eq!(sel.select(16, &[], &mut rng).unwrap_err(), Error::NoWorkers);
}

#[test]
fn random_tie_break_is_seeded_and_stays_among_the_tied() {
    let sel = selector(1.0, 0.0, TieBreak::Random);
    // Workers 1-3 tie at 16; worker 4 costs more.
    let cands = [
        candidate(1, 0, 0),
        candidate(2, 0, 0),
        candidate(3, 0, 0),
        candidate(4, 0, 1),
    ];
    let draw = |seed| -> Vec<u64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..300)
            .map(|_| sel.select(16, &cands, &mut rng).unwrap().worker)
            .collect()
    };
    let first = draw(42);
    assert_eq!(first, draw(42));
    for w in 1..=3 {
        let n = first.iter().filter(|x| **x == w).count();
        assert!((60..=140).contains(&n), "worker {w} drawn {n} of 300");
    }
    assert!(!first.contains(&4));
}

#[test]
fn softmax_probabilities_are_exact_after_normalising() {
    let sel = selector(1.0, 0.5, TieBreak::LeastLoaded);
    // Normalised logits 0, 0.5, 1 → weights 1, e^-1, e^-2.
    let p = sel.probabilities(&[10.0, 15.0, 20.0]);
    let z = 1.0 + (-1.0f64).exp() + (-2.0f64).exp();
    let expected = [1.0 / z, (-1.0f64).exp() / z, (-2.0f64).exp() / z];
    for (got, want) in p.iter().zip(expected) {
        assert!((got - want).abs() < 1e-12, "{p:?}");
    }
    // Equal logits: uniform.
    assert_eq!(sel.probabilities(&[3.0, 3.0]), vec![0.5, 0.5]);
}

#[test]
fn temperature_sampling_is_reproducible_and_matches_softmax() {
    let sel = selector(1.0, 0.5, TieBreak::LeastLoaded);
    // 16 tokens, no overlap: logits 4 + (d + 4) = 8, 10, 12 for decode 0, 2, 4.
    let cands = [candidate(1, 0, 0), candidate(2, 0, 2), candidate(3, 0, 4)];
    let expected = sel.probabilities(&[8.0, 10.0, 12.0]);
    let draws = 20_000;
    let sample = |seed| -> Vec<u64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..draws)
            .map(|_| sel.select(16, &cands, &mut rng).unwrap().worker)
            .collect()
    };
    let picks = sample(7);
    assert_eq!(picks[..100], sample(7)[..100]);
    for (i, want) in expected.iter().enumerate() {
        let freq = picks.iter().filter(|w| **w == i as u64 + 1).count() as f64 / draws as f64;
        assert!(
            (freq - want).abs() < 0.015,
            "worker {}: {freq} vs {want}",
            i + 1
        );
    }
}
