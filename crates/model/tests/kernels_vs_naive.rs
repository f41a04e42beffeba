//! Every matmul kernel against the naive reference on random data.
//!
//! Tolerances, per output `y = Σ_c W[r][c]·x[c]`, judged against `A = Σ_c |W[r][c]·x[c]|`:
//! - fast kernel vs naive on the SAME 8-bit activations: |Δ| ≤ 1e-5·A + 1e-6 (only f32 rounding
//!   and summation order differ; the integer block sums are exact);
//! - fast kernel vs naive on full-precision x: |Δ| ≤ 1.5e-2·A (8-bit activation quantization,
//!   relative error ≤ 1/254 per element, plus f16 rounding of nothing else);
//! - F32/F16 weights (no activation quantization): |Δ| ≤ 1e-5·A + 1e-6.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_model::matmul::{naive, Activations, Kernel, WeightMatrix};
use rotor_model::quant::{self, GgmlType, QuantFormat, Q4_0, Q4_1, Q8_0};

const COLS: [usize; 4] = [32, 64, 576, 1536];
const BATCHES: [usize; 5] = [1, 3, 6, 8, 17];
const DTYPES: [GgmlType; 5] = [
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::F16,
    GgmlType::F32,
];

fn random(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| rng.random_range(-1.0f32..1.0) * scale)
        .collect()
}

fn kernels() -> Vec<Kernel> {
    let mut k = vec![Kernel::Scalar];
    if Kernel::Avx2.is_available() {
        k.push(Kernel::Avx2);
    }
    k
}

fn check_close(label: &str, got: &[f32], want: &[f32], scale: &[f32], rel: f32, abs: f32) {
    assert_eq!(got.len(), want.len());
    for (i, ((&g, &w), &a)) in got.iter().zip(want).zip(scale).enumerate() {
        let tol = rel * a + abs;
        assert!(
            (g - w).abs() <= tol,
            "{label}: output {i}: got {g}, want {w}, |Δ| {} > tol {tol} (Σ|w·x| = {a})",
            (g - w).abs()
        );
    }
}

fn run_case(rng: &mut StdRng, dtype: GgmlType, rows: usize, cols: usize, batch: usize) {
    let values = random(rng, rows * cols, 0.5);
    let w = WeightMatrix::from_f32("w", dtype, rows, cols, &values).unwrap();
    let x = random(rng, batch * cols, 2.0);
    let mut acts = Activations::new();
    acts.prepare(&x, batch, cols, dtype);
    // Row ranges: all rows, and one not starting at 0.
    for range in [0..rows, 3..rows - 2] {
        let n = range.len();
        let scale = naive::abs_dot(&w, &x, batch, range.clone());
        let mut want_f32 = vec![0.0; batch * n];
        naive::matmul_f32(&w, &x, batch, range.clone(), &mut want_f32);
        let mut want_q = vec![0.0; batch * n];
        if acts.is_quantized() {
            naive::matmul_quantized(&w, &acts, range.clone(), &mut want_q);
        }
        for kernel in kernels() {
            let label = format!("{kernel:?} {dtype:?} rows {range:?} cols {cols} batch {batch}");
            let mut got = vec![f32::NAN; batch * n];
            w.matmul_rows_with(kernel, &acts, range.clone(), &mut got);
            if acts.is_quantized() {
                check_close(&label, &got, &want_q, &scale, 1e-5, 1e-6);
                check_close(&label, &got, &want_f32, &scale, 1.5e-2, 1e-6);
            } else {
                check_close(&label, &got, &want_f32, &scale, 1e-5, 1e-6);
            }
        }
    }
}

#[test]
fn all_kernels_match_naive_on_every_shape() {
    let mut rng = StdRng::seed_from_u64(7);
    for dtype in DTYPES {
        for cols in COLS {
            for batch in BATCHES {
                run_case(&mut rng, dtype, 13, cols, batch);
            }
        }
    }
}

#[test]
fn odd_row_counts_and_single_rows() {
    let mut rng = StdRng::seed_from_u64(11);
    for dtype in DTYPES {
        for rows in [6, 7] {
            run_case(&mut rng, dtype, rows, 64, 2);
            run_case(&mut rng, dtype, rows, 64, 1);
        }
        // A one-row range at the end of the matrix.
        let w = WeightMatrix::from_f32("w", dtype, 5, 64, &random(&mut rng, 5 * 64, 1.0)).unwrap();
        let x = random(&mut rng, 64, 1.0);
        let mut acts = Activations::new();
        acts.prepare(&x, 1, 64, dtype);
        let mut want = [0.0f32];
        naive::matmul_f32(&w, &x, 1, 4..5, &mut want);
        for kernel in kernels() {
            let mut got = [f32::NAN];
            w.matmul_rows_with(kernel, &acts, 4..5, &mut got);
            let scale = naive::abs_dot(&w, &x, 1, 4..5);
            check_close(
                &format!("{kernel:?} {dtype:?} last row"),
                &got,
                &want,
                &scale,
                1.5e-2,
                1e-6,
            );
        }
    }
}

#[test]
fn float_weights_with_ragged_columns() {
    let mut rng = StdRng::seed_from_u64(3);
    for dtype in [GgmlType::F32, GgmlType::F16] {
        for cols in [1, 7, 13, 35] {
            run_case(&mut rng, dtype, 9, cols, 3);
        }
    }
}

#[test]
fn forced_scalar_fallback_matches_detected_kernel_exactly_in_integers() {
    // Integer block sums are exact in both kernels, so they may differ only by f32 rounding.
    let mut rng = StdRng::seed_from_u64(5);
    for dtype in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
        let (rows, cols, batch) = (20, 576, 5);
        let w = WeightMatrix::from_f32("w", dtype, rows, cols, &random(&mut rng, rows * cols, 1.0))
            .unwrap();
        let x = random(&mut rng, batch * cols, 1.0);
        let mut acts = Activations::new();
        acts.prepare(&x, batch, cols, dtype);
        let mut scalar = vec![0.0; batch * rows];
        w.matmul_rows_with(Kernel::Scalar, &acts, 0..rows, &mut scalar);
        let mut best = vec![0.0; batch * rows];
        w.matmul_rows(&acts, 0..rows, &mut best);
        let scale = naive::abs_dot(&w, &x, batch, 0..rows);
        check_close(
            &format!("{dtype:?} scalar vs detected"),
            &scalar,
            &best,
            &scale,
            1e-5,
            1e-6,
        );
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
    {
        assert_eq!(Kernel::detect(), Kernel::Avx2);
    }
}

#[test]
fn ggml_layouts_dequantize_exactly() {
    // Q4_0: d = 0.5, nibbles 0..16 low then high.
    let mut b = vec![0u8; 18];
    b[..2].copy_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
    for j in 0..16 {
        b[2 + j] = (j as u8) | (((15 - j) as u8) << 4);
    }
    let mut out = [0.0f32; 32];
    Q4_0::dequantize_block(&b, &mut out);
    for j in 0..16 {
        assert_eq!(out[j], (j as f32 - 8.0) * 0.5);
        assert_eq!(out[16 + j], ((15 - j) as f32 - 8.0) * 0.5);
    }
    // Q4_1: d = 0.25, m = -1.
    let mut b = vec![0u8; 20];
    b[..2].copy_from_slice(&half::f16::from_f32(0.25).to_bits().to_le_bytes());
    b[2..4].copy_from_slice(&half::f16::from_f32(-1.0).to_bits().to_le_bytes());
    for j in 0..16 {
        b[4 + j] = (j as u8) | (((j + 3) as u8 & 15) << 4);
    }
    Q4_1::dequantize_block(&b, &mut out);
    for j in 0..16 {
        assert_eq!(out[j], j as f32 * 0.25 - 1.0);
        assert_eq!(out[16 + j], ((j + 3) & 15) as f32 * 0.25 - 1.0);
    }
    // Q8_0: d = 2, q = -16..16.
    let mut b = vec![0u8; 34];
    b[..2].copy_from_slice(&half::f16::from_f32(2.0).to_bits().to_le_bytes());
    for j in 0..32 {
        b[2 + j] = (j as i8 - 16) as u8;
    }
    Q8_0::dequantize_block(&b, &mut out);
    for (j, v) in out.iter().enumerate() {
        assert_eq!(*v, (j as f32 - 16.0) * 2.0);
    }
}

#[test]
fn quantize_round_trip_error_is_bounded() {
    let mut rng = StdRng::seed_from_u64(9);
    let x = random(&mut rng, 32 * 64, 3.0);
    for dtype in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_1] {
        let bytes = quant::quantize_row(dtype, &x).unwrap();
        let mut back = vec![0.0; x.len()];
        quant::dequantize_row(dtype, &bytes, &mut back).unwrap();
        for (blk, (a, b)) in x.chunks(32).zip(back.chunks(32)).enumerate() {
            let amax = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let (lo, hi) = a
                .iter()
                .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            // Half a step (Q4_0: a whole step, as its grid -8..7 clips the side opposite the
            // extreme), plus f16 rounding of the scale and min.
            let bound = match dtype {
                GgmlType::Q8_0 => 0.5 * amax / 127.0,
                GgmlType::Q4_0 => amax / 8.0,
                _ => 0.5 * (hi - lo) / 15.0,
            };
            let tol = bound * 1.01 + amax * 2.0f32.powi(-9);
            for (u, v) in a.iter().zip(b) {
                assert!(
                    (u - v).abs() <= tol,
                    "{dtype:?} block {blk}: {u} vs {v}, tol {tol}"
                );
            }
        }
    }
}

#[test]
fn activation_quantization_is_identical_on_every_kernel() {
    let mut rng = StdRng::seed_from_u64(21);
    let (batch, cols) = (5, 576);
    let mut x = random(&mut rng, batch * cols, 4.0);
    // Exact ties after scaling (q = ±0.5, ±1.5 … with d = 1) and an all-zero block.
    x[..32]
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = if i == 0 { 127.0 } else { i as f32 - 15.5 });
    x[32..64].iter_mut().for_each(|v| *v = 0.0);
    let mut reference = Activations::new();
    reference.prepare_with(Kernel::Scalar, &x, batch, cols, GgmlType::Q4_1);
    assert_eq!(reference.q_row(0)[1], -14, "-14.5 rounds half to even");
    assert_eq!(reference.q_row(0)[2], -14, "-13.5 rounds half to even");
    assert_eq!(reference.d_row(0)[1], 0.0);
    for kernel in kernels() {
        let mut a = Activations::new();
        a.prepare_with(kernel, &x, batch, cols, GgmlType::Q4_1);
        for b in 0..batch {
            assert_eq!(a.q_row(b), reference.q_row(b), "{kernel:?} codes, row {b}");
            assert_eq!(a.d_row(b), reference.d_row(b), "{kernel:?} scales, row {b}");
            assert_eq!(a.s_row(b), reference.s_row(b), "{kernel:?} sums, row {b}");
        }
    }
}

#[test]
fn q8_0_weights_of_minus_128_are_exact() {
    // ggml files may hold -128 codes, which our quantizer never emits; |−128| must not overflow.
    let (rows, cols) = (3, 64);
    let mut bytes = Vec::new();
    for r in 0..rows {
        for blk in 0..cols / 32 {
            bytes.extend_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
            for j in 0..32 {
                bytes.push(if (j + blk + r) % 3 == 0 {
                    0x80
                } else {
                    (j as i8 - 16) as u8
                });
            }
        }
    }
    let file = rotor_model::gguf::write::GgufBuilder::new()
        .tensor("w", &[cols as u64, rows as u64], GgmlType::Q8_0, bytes)
        .to_bytes();
    let file = rotor_model::GgufFile::from_bytes(file).unwrap();
    let w = WeightMatrix::from_tensor(file.tensor("w").unwrap()).unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let x = random(&mut rng, 2 * cols, 1.0);
    let mut acts = Activations::new();
    acts.prepare(&x, 2, cols, GgmlType::Q8_0);
    let mut want = vec![0.0; 2 * rows];
    naive::matmul_quantized(&w, &acts, 0..rows, &mut want);
    let scale = naive::abs_dot(&w, &x, 2, 0..rows);
    for kernel in kernels() {
        let mut got = vec![f32::NAN; 2 * rows];
        w.matmul_rows_with(kernel, &acts, 0..rows, &mut got);
        check_close(&format!("{kernel:?} -128"), &got, &want, &scale, 1e-5, 1e-6);
    }
}
