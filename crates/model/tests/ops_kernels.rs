//! Row-wise ops against their naive references and hand-computed values.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_model::ops::{
    add_assign, axpy, dot, rmsnorm, rmsnorm_naive, rope_naive, silu_mul, silu_mul_naive, softmax,
    softmax_naive, RopeTable,
};

fn random(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Max |a - b| / max(1, |b|).
fn max_rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0, f32::max)
}

#[test]
fn dot_and_axpy_match_f64_for_all_tail_lengths() {
    let mut rng = StdRng::seed_from_u64(1);
    for n in [0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 576] {
        let a = random(&mut rng, n, 2.0);
        let b = random(&mut rng, n, 2.0);
        let exact: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        assert!(
            (dot(&a, &b) as f64 - exact).abs() < 1e-4 * (n as f64).max(1.0),
            "n={n}"
        );
        let mut y = b.clone();
        axpy(0.5, &a, &mut y);
        for i in 0..n {
            assert!((y[i] - (b[i] + 0.5 * a[i])).abs() < 1e-6, "n={n} i={i}");
        }
    }
}

#[test]
fn rmsnorm_matches_reference_and_a_hand_value() {
    let mut rng = StdRng::seed_from_u64(2);
    for n in [4, 64, 576, 1000] {
        let x = random(&mut rng, n, 3.0);
        let w = random(&mut rng, n, 1.5);
        let (mut fast, mut naive) = (vec![0.0; n], vec![0.0; n]);
        rmsnorm(&x, &w, 1e-5, &mut fast);
        rmsnorm_naive(&x, &w, 1e-5, &mut naive);
        assert!(max_rel_err(&fast, &naive) < 1e-5, "n={n}");
    }
    // x = [3, 4]: mean square 12.5, eps 0 → scale 1/sqrt(12.5).
    let mut out = [0.0; 2];
    rmsnorm(&[3.0, 4.0], &[1.0, 2.0], 0.0, &mut out);
    let s = 1.0 / 12.5f32.sqrt();
    assert!((out[0] - 3.0 * s).abs() < 1e-6 && (out[1] - 8.0 * s).abs() < 1e-6);
}

#[test]
fn rope_rotates_adjacent_pairs_by_position_times_frequency() {
    // head_dim 4, rope_dim 4, base 10000: pair 0 turns by pos rad, pair 1 by pos * 0.01 rad.
    let table = RopeTable::new(4, 10_000.0, 8);
    let mut x = [1.0, 0.0, 0.0, 1.0];
    table.apply(&mut x, 4, 3);
    let expected = [3f32.cos(), 3f32.sin(), -(0.03f32.sin()), 0.03f32.cos()];
    for i in 0..4 {
        assert!((x[i] - expected[i]).abs() < 1e-6, "{x:?} vs {expected:?}");
    }
    // Position 0 is the identity.
    let mut y = [0.3, -0.2, 0.7, 0.1];
    table.apply(&mut y, 4, 0);
    assert_eq!(y, [0.3, -0.2, 0.7, 0.1]);
}

#[test]
fn rope_table_matches_reference_and_leaves_dims_past_rope_dim_alone() {
    let mut rng = StdRng::seed_from_u64(3);
    let (heads, head_dim, rope_dim, base) = (3, 64, 48, 10_000.0);
    let table = RopeTable::new(rope_dim, base, 2048);
    for pos in [0, 1, 17, 100, 2047, 5000] {
        let x = random(&mut rng, heads * head_dim, 1.0);
        let (mut fast, mut naive) = (x.clone(), x.clone());
        table.apply(&mut fast, head_dim, pos);
        rope_naive(&mut naive, head_dim, rope_dim, base, pos);
        assert!(max_rel_err(&fast, &naive) < 2e-6, "pos {pos}");
        for h in 0..heads {
            let tail = h * head_dim + rope_dim..(h + 1) * head_dim;
            assert_eq!(&fast[tail.clone()], &x[tail], "pos {pos} head {h}");
        }
    }
}

#[test]
fn silu_mul_matches_reference_and_hand_values() {
    let mut rng = StdRng::seed_from_u64(4);
    let g = random(&mut rng, 1536, 8.0);
    let u = random(&mut rng, 1536, 2.0);
    let (mut fast, mut naive) = (g.clone(), g.clone());
    silu_mul(&mut fast, &u);
    silu_mul_naive(&mut naive, &u);
    assert!(max_rel_err(&fast, &naive) < 1e-6);
    let mut h = [0.0, 1.0, -1.0];
    silu_mul(&mut h, &[5.0, 2.0, 1.0]);
    assert_eq!(h[0], 0.0);
    assert!((h[1] - 2.0 * 0.731_058_6).abs() < 1e-6);
    assert!((h[2] + 0.268_941_4).abs() < 1e-6);
}

#[test]
fn softmax_matches_reference_and_is_stable_for_large_inputs() {
    let mut rng = StdRng::seed_from_u64(5);
    for n in [1, 2, 10, 1000] {
        let x = random(&mut rng, n, 20.0);
        let (mut fast, mut naive) = (x.clone(), x.clone());
        softmax(&mut fast);
        softmax_naive(&mut naive);
        assert!(max_rel_err(&fast, &naive) < 1e-5, "n={n}");
        assert!((fast.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    let mut big = [1000.0, 1001.0];
    softmax(&mut big);
    let e = 1.0 / (1.0 + 1f32.exp());
    assert!((big[0] - e).abs() < 1e-6 && (big[1] - (1.0 - e)).abs() < 1e-6);
}

#[test]
fn add_assign_adds_elementwise() {
    let mut x = [1.0, 2.0, 3.0];
    add_assign(&mut x, &[0.5, -2.0, 10.0]);
    assert_eq!(x, [1.5, 0.0, 13.0]);
}
