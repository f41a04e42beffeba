//! Row-wise ops against their naive references and hand-computed values.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_model::ops::{
    add_assign, axpy, dot, gelu_tanh_mul, gelu_tanh_mul_naive, gelu_tanh_mul_portable, rmsnorm,
    rmsnorm_add, rmsnorm_add_naive, rmsnorm_heads, rmsnorm_heads_naive, rmsnorm_naive, rope_naive,
    silu_mul, silu_mul_naive, silu_mul_portable, softcap, softcap_naive, softmax, softmax_naive,
    Activation, RopeSpec, RopeStyle, RopeTable,
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
    let table = RopeTable::new(RopeSpec::normal(4, 10_000.0), 8);
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
    let table = RopeTable::new(RopeSpec::normal(rope_dim, base), 2048);
    for pos in [0, 1, 17, 100, 2047, 5000] {
        let x = random(&mut rng, heads * head_dim, 1.0);
        let (mut fast, mut naive) = (x.clone(), x.clone());
        table.apply(&mut fast, head_dim, pos);
        rope_naive(&mut naive, head_dim, table.spec(), pos);
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

#[test]
fn neox_rope_rotates_the_two_halves_and_scales_positions() {
    // head_dim 6, rope_dim 4: pairs (0, 2) and (1, 3); dims 4 and 5 untouched.
    let spec = RopeSpec {
        dim: 4,
        base: 10_000.0,
        freq_scale: 0.5,
        style: RopeStyle::Neox,
    };
    let table = RopeTable::new(spec, 8);
    let mut x = [1.0, 0.0, 0.0, 1.0, 7.0, 8.0];
    table.apply(&mut x, 6, 6); // angles 6 × 0.5 × (1, 0.01) = (3, 0.03)
    let expected = [
        3f32.cos(),
        -(0.03f32.sin()),
        3f32.sin(),
        0.03f32.cos(),
        7.0,
        8.0,
    ];
    for i in 0..6 {
        assert!((x[i] - expected[i]).abs() < 1e-6, "{x:?} vs {expected:?}");
    }
    let mut rng = StdRng::seed_from_u64(9);
    let spec = RopeSpec {
        dim: 48,
        base: 1e6,
        freq_scale: 0.125,
        style: RopeStyle::Neox,
    };
    let table = RopeTable::new(spec, 512);
    for pos in [0, 3, 511, 4000] {
        let x = random(&mut rng, 2 * 64, 1.0);
        let (mut fast, mut naive) = (x.clone(), x.clone());
        table.apply(&mut fast, 64, pos);
        rope_naive(&mut naive, 64, &spec, pos);
        assert!(max_rel_err(&fast, &naive) < 2e-6, "pos {pos}");
    }
}

#[test]
fn per_head_and_post_norms_match_reference() {
    let mut rng = StdRng::seed_from_u64(10);
    let w = random(&mut rng, 32, 2.0);
    let x = random(&mut rng, 4 * 32, 3.0);
    let (mut fast, mut naive) = (x.clone(), x.clone());
    rmsnorm_heads(&mut fast, &w, 1e-6);
    rmsnorm_heads_naive(&mut naive, &w, 1e-6);
    assert!(max_rel_err(&fast, &naive) < 1e-5);
    // Each head is normalised on its own: head 1 equals rmsnorm of x[32..64].
    let mut head1 = vec![0.0; 32];
    rmsnorm_naive(&x[32..64], &w, 1e-6, &mut head1);
    assert!(max_rel_err(&naive[32..64], &head1) < 1e-7);
    let (w, y) = (random(&mut rng, 96, 2.0), random(&mut rng, 96, 5.0));
    let r = random(&mut rng, 96, 1.0);
    let (mut fast, mut naive) = (r.clone(), r.clone());
    rmsnorm_add(&mut fast, &y, &w, 1e-6);
    rmsnorm_add_naive(&mut naive, &y, &w, 1e-6);
    assert!(max_rel_err(&fast, &naive) < 1e-5);
    let mut normed = vec![0.0; 96];
    rmsnorm(&y, &w, 1e-6, &mut normed);
    for i in 0..96 {
        assert!((naive[i] - (r[i] + normed[i])).abs() < 1e-5);
    }
}

/// The vectorised activations (the AVX2 copy where the CPU has it, and the portable one) over
/// a wide range, extremes included: within 2e-6 relative of the f64 references (or 1e-8
/// absolute, where the true value is below f32's normal range and the clamped exp leaves a
/// value of that order), finite, and the two paths within the same bound of each other.
#[test]
fn activations_match_the_reference_on_both_paths_and_at_the_extremes() {
    let mut g: Vec<f32> = (0..4001).map(|i| -100.0 + i as f32 * 0.05).collect();
    g.extend([1e30, -1e30, 1e-30, -1e-30, 0.0, 89.0, -89.0]);
    let u: Vec<f32> = (0..g.len()).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
    for act in [Activation::Silu, Activation::GeluTanh] {
        let (mut fast, mut portable, mut naive) = (g.clone(), g.clone(), g.clone());
        act.gated(&mut fast, &u);
        match act {
            Activation::Silu => silu_mul_portable(&mut portable, &u),
            Activation::GeluTanh => gelu_tanh_mul_portable(&mut portable, &u),
        }
        act.gated_naive(&mut naive, &u);
        for i in 0..g.len() {
            let (f, p, n) = (fast[i], portable[i], naive[i]);
            assert!(
                f.is_finite() && p.is_finite(),
                "{act:?}({}) = {f} / {p}",
                g[i]
            );
            let tol = 2e-6 * n.abs() + 1e-8;
            assert!((f - n).abs() <= tol, "{act:?}({}): {f} vs {n}", g[i]);
            assert!((f - p).abs() <= tol, "{act:?}({}): paths {f} vs {p}", g[i]);
        }
    }
}

#[test]
fn gelu_gating_and_softcap_match_reference_and_hand_values() {
    let mut rng = StdRng::seed_from_u64(11);
    let g = random(&mut rng, 1536, 8.0);
    let u = random(&mut rng, 1536, 2.0);
    let (mut fast, mut naive) = (g.clone(), g.clone());
    Activation::GeluTanh.gated(&mut fast, &u);
    Activation::GeluTanh.gated_naive(&mut naive, &u);
    assert!(max_rel_err(&fast, &naive) < 1e-5);
    // gelu(0) = 0, gelu(1) = 0.841192 (tanh form), gelu(-3) = -0.003637.
    let mut h = [0.0, 1.0, -3.0];
    gelu_tanh_mul(&mut h, &[5.0, 2.0, 1.0]);
    assert_eq!(h[0], 0.0);
    assert!((h[1] - 2.0 * 0.841_192).abs() < 1e-5, "{h:?}");
    assert!((h[2] + 0.003_637_4).abs() < 1e-6, "{h:?}");
    let mut n = [1.0, -3.0];
    gelu_tanh_mul_naive(&mut n, &[2.0, 1.0]);
    assert!((n[0] - h[1]).abs() < 1e-6 && (n[1] - h[2]).abs() < 1e-7);
    let x = random(&mut rng, 100, 100.0);
    let (mut fast, mut naive) = (x.clone(), x.clone());
    softcap(&mut fast, 30.0);
    softcap_naive(&mut naive, 30.0);
    assert!(max_rel_err(&fast, &naive) < 1e-6);
    assert!(fast.iter().all(|v| v.abs() < 30.0));
    let mut small = [0.3];
    softcap(&mut small, 30.0);
    assert!((small[0] - 0.3).abs() < 1e-5);
}
