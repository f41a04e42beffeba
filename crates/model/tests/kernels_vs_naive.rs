//! Every matmul kernel against the naive reference on random data.
//!
//! Tolerances, per output `y = Σ_c W[r][c]·x[c]`, judged against `A = Σ_c |W[r][c]·x[c]|`:
//! - fast kernel vs naive on the SAME 8-bit activations: |Δ| ≤ 1e-5·A + 1e-6 (only f32 rounding
//!   and summation order differ; the integer block sums are exact);
//! - fast kernel vs naive on full-precision x: |Δ| ≤ 1.5e-2·A (8-bit activation quantization,
//!   relative error ≤ 1/254 per element, plus f16 rounding of nothing else);
//! - F32/F16/BF16 weights (no activation quantization): |Δ| ≤ 1e-5·A + 1e-6.
//!
//! K-quants (rows of whole 256-blocks) run on their own column set and the batch sizes 1, 3, 16
//! and 17 (a full tile of 4 and a remainder); their activations are Q8_K-like (one scale per 256),
//! whose quantization error stays within the same 1.5e-2·A on this data.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_model::matmul::{naive, ActivationFormat, Activations, Kernel, WeightMatrix};
use rotor_model::quant::{self, GgmlType, QuantFormat, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0};

const COLS: [usize; 4] = [32, 64, 576, 1536];
const BATCHES: [usize; 5] = [1, 3, 6, 8, 17];
const DTYPES: [GgmlType; 8] = [
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::F32,
];
const K_COLS: [usize; 3] = [256, 512, 1536];
const K_BATCHES: [usize; 4] = [1, 3, 16, 17];
const K_DTYPES: [GgmlType; 5] = [
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// A column count that is whole blocks of `dtype` (64, or 256 for the K-quants).
fn small_cols(dtype: GgmlType) -> usize {
    dtype.block_size().max(64)
}

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
fn k_quant_kernels_match_naive_on_every_shape() {
    let mut rng = StdRng::seed_from_u64(8);
    for dtype in K_DTYPES {
        for cols in K_COLS {
            for batch in K_BATCHES {
                run_case(&mut rng, dtype, 13, cols, batch);
            }
        }
    }
}

#[test]
fn odd_row_counts_and_single_rows() {
    let mut rng = StdRng::seed_from_u64(11);
    for dtype in DTYPES.into_iter().chain(K_DTYPES) {
        let cols = small_cols(dtype);
        for rows in [6, 7] {
            run_case(&mut rng, dtype, rows, cols, 2);
            run_case(&mut rng, dtype, rows, cols, 1);
        }
        // A one-row range at the end of the matrix.
        let w =
            WeightMatrix::from_f32("w", dtype, 5, cols, &random(&mut rng, 5 * cols, 1.0)).unwrap();
        let x = random(&mut rng, cols, 1.0);
        let mut acts = Activations::new();
        acts.prepare(&x, 1, cols, dtype);
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
    for dtype in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
        for cols in [1, 7, 13, 35] {
            run_case(&mut rng, dtype, 9, cols, 3);
        }
    }
}

#[test]
fn forced_scalar_fallback_matches_detected_kernel_exactly_in_integers() {
    // Integer block sums are exact in both kernels, so they may differ only by f32 rounding.
    let mut rng = StdRng::seed_from_u64(5);
    for dtype in [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
    ]
    .into_iter()
    .chain(K_DTYPES)
    {
        let (rows, cols, batch) = (20, if dtype.block_size() == 256 { 1536 } else { 576 }, 5);
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
    // Q5_0: d = 0.5, code j at element j: low nibbles as Q4's, the fifth bits in qh (bit j for
    // element j, little-endian), so qh = 0xffff0000.
    let mut b = vec![0u8; 22];
    b[..2].copy_from_slice(&half::f16::from_f32(0.5).to_bits().to_le_bytes());
    b[2..6].copy_from_slice(&0xffff_0000u32.to_le_bytes());
    for j in 0..16 {
        b[6 + j] = (j as u8) | ((j as u8) << 4);
    }
    Q5_0::dequantize_block(&b, &mut out);
    for (j, v) in out.iter().enumerate() {
        assert_eq!(*v, (j as f32 - 16.0) * 0.5, "Q5_0 element {j}");
    }
    // Q5_1: d = 0.25, m = -1, fifth bit on the odd elements only (qh = 0xaaaaaaaa).
    let mut b = vec![0u8; 24];
    b[..2].copy_from_slice(&half::f16::from_f32(0.25).to_bits().to_le_bytes());
    b[2..4].copy_from_slice(&half::f16::from_f32(-1.0).to_bits().to_le_bytes());
    b[4..8].copy_from_slice(&0xaaaa_aaaau32.to_le_bytes());
    for j in 0..16 {
        b[8 + j] = (j as u8) | (((15 - j) as u8) << 4);
    }
    Q5_1::dequantize_block(&b, &mut out);
    for j in 0..16 {
        let high = |e: usize| if e % 2 == 1 { 16.0 } else { 0.0 };
        assert_eq!(
            out[j],
            (j as f32 + high(j)) * 0.25 - 1.0,
            "Q5_1 element {j}"
        );
        let e = 16 + j;
        assert_eq!(
            out[e],
            ((15 - j) as f32 + high(e)) * 0.25 - 1.0,
            "Q5_1 element {e}"
        );
    }
}

#[test]
fn quantize_round_trip_error_is_bounded() {
    let mut rng = StdRng::seed_from_u64(9);
    let x = random(&mut rng, 32 * 64, 3.0);
    for dtype in [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
    ] {
        let bytes = quant::quantize_row(dtype, &x).unwrap();
        let mut back = vec![0.0; x.len()];
        quant::dequantize_row(dtype, &bytes, &mut back).unwrap();
        for (blk, (a, b)) in x.chunks(32).zip(back.chunks(32)).enumerate() {
            let amax = a.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let (lo, hi) = a
                .iter()
                .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            // Half a step (Q4_0/Q5_0: a whole step, as their grids -8..7 / -16..15 clip the
            // side opposite the extreme), plus f16 rounding of the scale and min.
            let bound = match dtype {
                GgmlType::Q8_0 => 0.5 * amax / 127.0,
                GgmlType::Q4_0 => amax / 8.0,
                GgmlType::Q5_0 => amax / 16.0,
                GgmlType::Q5_1 => 0.5 * (hi - lo) / 31.0,
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

#[test]
fn q8k_activations_are_identical_on_every_kernel_and_follow_llama_cpp() {
    let mut rng = StdRng::seed_from_u64(22);
    let (batch, cols) = (3, 512);
    let mut x = random(&mut rng, batch * cols, 4.0);
    // Row 0, block 0: max |x| = 127, so the scale is 1 and x.5 values are exact ties; block 1 is
    // all zero.
    for (i, v) in x[..256].iter_mut().enumerate() {
        *v = if i == 0 {
            -127.0
        } else {
            (i % 64) as f32 - 31.5
        };
    }
    x[256..512].fill(0.0);
    let mut reference = Activations::new();
    reference.prepare_with(Kernel::Scalar, &x, batch, cols, GgmlType::Q4_K);
    assert_eq!(reference.format(), ActivationFormat::Q8K);
    assert_eq!(reference.d_row(0), &[1.0, 0.0]);
    let q0 = reference.q_row(0);
    assert_eq!(q0[0], -127);
    assert_eq!(q0[1], -30, "-30.5 rounds half to even");
    assert_eq!(q0[2], -30, "-29.5 rounds half to even");
    assert!(q0[256..].iter().all(|&v| v == 0));
    for (g, &sum) in reference.bsums_row(0).iter().enumerate() {
        let want: i32 = q0[16 * g..16 * (g + 1)].iter().map(|&v| i32::from(v)).sum();
        assert_eq!(i32::from(sum), want, "code sum {g}");
    }
    // Elsewhere: d = 1 / (127 / max|x|), as llama.cpp stores it.
    let amax = x[cols..cols + 256]
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    assert_eq!(reference.d_row(1)[0], 1.0 / (127.0 / amax));
    for kernel in kernels() {
        let mut a = Activations::new();
        a.prepare_with(kernel, &x, batch, cols, GgmlType::Q6_K);
        for b in 0..batch {
            assert_eq!(a.q_row(b), reference.q_row(b), "{kernel:?} codes, row {b}");
            assert_eq!(a.d_row(b), reference.d_row(b), "{kernel:?} scales, row {b}");
            assert_eq!(
                a.bsums_row(b),
                reference.bsums_row(b),
                "{kernel:?} sums, row {b}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "prepare the activations for it")]
fn k_quant_weights_reject_activations_prepared_for_32_blocks() {
    let w = WeightMatrix::from_f32("w", GgmlType::Q4_K, 2, 256, &[0.5; 512]).unwrap();
    let mut acts = Activations::new();
    acts.prepare(&[1.0; 256], 1, 256, GgmlType::Q8_0);
    let mut out = [0.0f32; 2];
    w.matmul_rows(&acts, 0..2, &mut out);
}

/// Prefill-sized batches run whole groups of eight weight rows on the interleaved layout and
/// the rows around them on the file's: every split of rows and batch remainder matches naive.
#[test]
fn interleaved_prefill_layout_matches_naive() {
    let mut rng = StdRng::seed_from_u64(9);
    for dtype in [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
    ] {
        for (rows, cols, batch) in [(40, 576, 16), (27, 64, 33), (64, 32, 21), (8, 1536, 64)] {
            run_case(&mut rng, dtype, rows, cols, batch);
        }
    }
}

/// The interleaved kernel adds up to eight chunks' products in 16-bit lanes before widening:
/// the largest codes against the largest activations of one sign must not saturate.
#[test]
fn interleaved_sums_do_not_saturate_at_extreme_codes() {
    let (rows, cols, batch) = (16, 256, 16);
    for dtype in [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
    ] {
        for sign in [1.0f32, -1.0] {
            // Every weight at the top of its range, every activation at ±its largest code.
            let w =
                WeightMatrix::from_f32("w", dtype, rows, cols, &vec![1.0; rows * cols]).unwrap();
            let x = vec![sign; batch * cols];
            let mut acts = Activations::new();
            acts.prepare(&x, batch, cols, dtype);
            let mut want = vec![0.0; batch * rows];
            naive::matmul_quantized(&w, &acts, 0..rows, &mut want);
            for kernel in kernels() {
                let mut got = vec![f32::NAN; batch * rows];
                w.matmul_rows_with(kernel, &acts, 0..rows, &mut got);
                for (g, e) in got.iter().zip(&want) {
                    assert!(
                        (g - e).abs() <= 1e-4 * e.abs().max(1.0),
                        "{kernel:?} {dtype:?} sign {sign}: {g} vs {e}"
                    );
                }
                assert!((want[0] - sign * cols as f32).abs() < 0.02 * cols as f32);
            }
        }
    }
}

/// Q4_K and Q6_K run whole groups of eight rows on their interleaved layout at every batch size
/// and the rows past the last group on the file's: row counts that are and are not multiples of
/// eight, ranges that cut a group, and batch sizes around the tile of four all match naive.
#[test]
fn k_quant_interleaved_layout_matches_naive() {
    let mut rng = StdRng::seed_from_u64(12);
    for dtype in [GgmlType::Q4_K, GgmlType::Q6_K] {
        for (rows, cols) in [(8, 256), (29, 512), (40, 1536)] {
            for batch in [1, 2, 3, 5, 17] {
                run_case(&mut rng, dtype, rows, cols, batch);
            }
        }
    }
}

/// Outputs do not depend on batching: each batch row computed alone equals the same row computed
/// in a batch of 17, bit for bit (the interleaved layout serves every batch size).
#[test]
fn k_quant_rows_alone_equal_rows_in_a_batch() {
    let mut rng = StdRng::seed_from_u64(13);
    let (rows, cols, batch) = (27, 768, 17);
    for dtype in [GgmlType::Q4_K, GgmlType::Q6_K] {
        let w = WeightMatrix::from_f32("w", dtype, rows, cols, &random(&mut rng, rows * cols, 1.0))
            .unwrap();
        let x = random(&mut rng, batch * cols, 2.0);
        let mut acts = Activations::new();
        acts.prepare(&x, batch, cols, dtype);
        let mut together = vec![0.0f32; batch * rows];
        w.matmul_rows(&acts, 0..rows, &mut together);
        for b in 0..batch {
            let mut one = Activations::new();
            one.prepare(&x[b * cols..(b + 1) * cols], 1, cols, dtype);
            let mut alone = vec![0.0f32; rows];
            w.matmul_rows(&one, 0..rows, &mut alone);
            assert_eq!(
                alone,
                together[b * rows..(b + 1) * rows],
                "{dtype:?} batch row {b}"
            );
        }
    }
}

/// The interleaved K-quant kernel adds two (Q6_K) or eight (Q4_K) chunks' products in 16-bit
/// lanes before widening: the largest codes against the largest activations of either sign must
/// not saturate.
#[test]
fn k_quant_interleaved_sums_do_not_saturate_at_extreme_codes() {
    let (rows, cols, batch) = (16, 512, 5);
    for dtype in [GgmlType::Q4_K, GgmlType::Q6_K] {
        for (wsign, xsign) in [(1.0f32, 1.0f32), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)] {
            // One zero per 32 columns puts every other weight at the top code of its sub-block
            // (63 for Q6_K, 15 for Q4_K) when the weights are positive.
            let values: Vec<f32> = (0..rows * cols)
                .map(|i| if i % 32 == 0 { 0.0 } else { wsign })
                .collect();
            let w = WeightMatrix::from_f32("w", dtype, rows, cols, &values).unwrap();
            let x = vec![xsign; batch * cols];
            let mut acts = Activations::new();
            acts.prepare(&x, batch, cols, dtype);
            let mut want = vec![0.0; batch * rows];
            naive::matmul_quantized(&w, &acts, 0..rows, &mut want);
            for kernel in kernels() {
                let mut got = vec![f32::NAN; batch * rows];
                w.matmul_rows_with(kernel, &acts, 0..rows, &mut got);
                for (g, e) in got.iter().zip(&want) {
                    assert!(
                        (g - e).abs() <= 1e-4 * e.abs().max(1.0),
                        "{kernel:?} {dtype:?} signs {wsign} {xsign}: {g} vs {e}"
                    );
                }
            }
        }
    }
}
