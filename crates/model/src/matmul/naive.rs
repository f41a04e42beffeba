//! Reference matmuls: dequantize each weight row to f32 and take a plain dot product, accumulated
//! in f64. Slow and obviously correct; the oracle for the fast kernels.

use std::ops::Range;

use super::{Activations, WeightMatrix};
use crate::quant::GgmlType;

/// Reference against full-precision `x` (row-major `[batch, cols]`).
pub fn matmul_f32(w: &WeightMatrix, x: &[f32], batch: usize, rows: Range<usize>, out: &mut [f32]) {
    let cols = w.cols();
    assert_eq!(x.len(), batch * cols);
    let xs: Vec<&[f32]> = x.chunks_exact(cols.max(1)).take(batch).collect();
    run(w, &xs, rows, out);
}

/// Reference against exactly the 8-bit activations the integer kernels use.
pub fn matmul_quantized(w: &WeightMatrix, x: &Activations, rows: Range<usize>, out: &mut [f32]) {
    let rows_x: Vec<Vec<f32>> = (0..x.batch()).map(|b| x.dequantized_row(b)).collect();
    let xs: Vec<&[f32]> = rows_x.iter().map(Vec::as_slice).collect();
    run(w, &xs, rows.clone(), out);
    if matches!(w.dtype(), GgmlType::Q4_1 | GgmlType::Q5_1) {
        add_min_term_rounding(w, x, rows, out);
    }
}

/// A Q4_1/Q5_1 block is `q·d + m`, so its dot with an activation block is
/// `d·dₓ·Σq·qₓ + m·(dₓ·Σqₓ)`; the integer kernels take `dₓ·Σqₓ` from the block's stored sum `s`,
/// which (as in ggml's Q8_1) is rounded to f16 on its own. Add `m·(s − dₓ·Σqₓ)` per block so the
/// reference is exactly that. Both formats store `m` as the f16 at byte 2 of the block.
fn add_min_term_rounding(w: &WeightMatrix, x: &Activations, rows: Range<usize>, out: &mut [f32]) {
    const QK: usize = 32;
    let block_bytes = w.dtype().type_size();
    let n = rows.len();
    for r in rows.clone() {
        let data = w.row_data(r);
        for b in 0..x.batch() {
            let (d, s, q) = (x.d_row(b), x.s_row(b), x.q_row(b));
            let mut correction = 0.0f64;
            for blk in 0..w.cols() / QK {
                let at = blk * block_bytes + 2;
                let m = half::f16::from_le_bytes([data[at], data[at + 1]]).to_f32();
                let sum_q: i32 = q[blk * QK..(blk + 1) * QK]
                    .iter()
                    .map(|&v| i32::from(v))
                    .sum();
                correction +=
                    f64::from(m) * (f64::from(s[blk]) - f64::from(d[blk]) * f64::from(sum_q));
            }
            out[b * n + (r - rows.start)] += correction as f32;
        }
    }
}

fn run(w: &WeightMatrix, xs: &[&[f32]], rows: Range<usize>, out: &mut [f32]) {
    let n = rows.len();
    assert_eq!(out.len(), xs.len() * n);
    let mut wrow = vec![0.0f32; w.cols()];
    for r in rows.clone() {
        w.dequantize_row(r, &mut wrow);
        for (b, x) in xs.iter().enumerate() {
            let dot: f64 = wrow
                .iter()
                .zip(x.iter())
                .map(|(&a, &c)| f64::from(a) * f64::from(c))
                .sum();
            out[b * n + (r - rows.start)] = dot as f32;
        }
    }
}

/// `Σ |W[r][c] · x[b][c]|` for each output, the scale against which rounding error is judged.
pub fn abs_dot(w: &WeightMatrix, x: &[f32], batch: usize, rows: Range<usize>) -> Vec<f32> {
    let cols = w.cols();
    let n = rows.len();
    let mut out = vec![0.0f32; batch * n];
    let mut wrow = vec![0.0f32; cols];
    for r in rows.clone() {
        w.dequantize_row(r, &mut wrow);
        for b in 0..batch {
            let x = &x[b * cols..(b + 1) * cols];
            out[b * n + (r - rows.start)] = wrow.iter().zip(x).map(|(a, c)| (a * c).abs()).sum();
        }
    }
    out
}
