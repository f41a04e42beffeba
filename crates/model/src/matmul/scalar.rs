//! Portable kernels: the same integer algorithm as the SIMD path, in plain Rust.
//!
//! Per 32-block, a quantized weight decodes to integer codes `w`, a scale `d_w` and a min
//! coefficient `m_w`, so that `Σ W·x = Σ_blocks d_w·d_x·Σ(w·q_x) + m_w·s_x` with the
//! activation's `q_x`, `d_x` and `s_x = d_x·Σq_x` ([`super::Activations`]).
//! Q8_0: `w = q`, `m_w = 0`. Q4_0: `w = nibble − 8`, `m_w = 0`. Q4_1: `w = nibble`, `m_w = m`.

use super::MatmulJob;
use crate::quant::q4::nibble;
use crate::quant::{f16_at, GgmlType, QK};

/// Batch rows processed per pass over a weight row.
const TILE: usize = 4;

pub(crate) fn matmul(job: MatmulJob<'_>) {
    match job.w.dtype() {
        GgmlType::Q8_0 => quantized(job, 34, decode_q8_0),
        GgmlType::Q4_0 => quantized(job, 18, decode_q4_0),
        GgmlType::Q4_1 => quantized(job, 20, decode_q4_1),
        GgmlType::F32 | GgmlType::F16 => float(job),
        other => unreachable!("invariant: WeightMatrix never holds {other:?}"),
    }
}

struct Decoded {
    codes: [i8; QK],
    d: f32,
    m: f32,
}

fn decode_q8_0(block: &[u8]) -> Decoded {
    let mut codes = [0i8; QK];
    for (c, &b) in codes.iter_mut().zip(&block[2..2 + QK]) {
        *c = b as i8;
    }
    Decoded {
        codes,
        d: f16_at(block, 0),
        m: 0.0,
    }
}

fn decode_q4_0(block: &[u8]) -> Decoded {
    let mut codes = [0i8; QK];
    for (j, c) in codes.iter_mut().enumerate() {
        *c = nibble(&block[2..18], j) as i8 - 8;
    }
    Decoded {
        codes,
        d: f16_at(block, 0),
        m: 0.0,
    }
}

fn decode_q4_1(block: &[u8]) -> Decoded {
    let mut codes = [0i8; QK];
    for (j, c) in codes.iter_mut().enumerate() {
        *c = nibble(&block[4..20], j) as i8;
    }
    Decoded {
        codes,
        d: f16_at(block, 0),
        m: f16_at(block, 2),
    }
}

#[inline]
fn idot(a: &[i8; QK], b: &[i8]) -> i32 {
    a.iter()
        .zip(&b[..QK])
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

fn quantized(mut job: MatmulJob<'_>, block_bytes: usize, decode: fn(&[u8]) -> Decoded) {
    let (x, w) = (job.x, job.w);
    let batch = x.batch();
    for r in job.rows.clone() {
        let row = w.row_data(r);
        for b0 in (0..batch).step_by(TILE) {
            let n = TILE.min(batch - b0);
            let mut acc = [0.0f32; TILE];
            for (blk, bytes) in row.chunks_exact(block_bytes).enumerate() {
                let dec = decode(bytes);
                for (i, a) in acc.iter_mut().enumerate().take(n) {
                    let b = b0 + i;
                    let q = &x.q_row(b)[blk * QK..];
                    let isum = idot(&dec.codes, q);
                    *a += dec.d * x.d_row(b)[blk] * isum as f32 + dec.m * x.s_row(b)[blk];
                }
            }
            for (i, &a) in acc.iter().enumerate().take(n) {
                job.store(b0 + i, r, a);
            }
        }
    }
}

/// f32 dot with eight independent partial sums (vectorizable, and a fixed summation order).
fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (a8.remainder(), b8.remainder());
    for (ca, cb) in a8.zip(b8) {
        for k in 0..8 {
            lanes[k] += ca[k] * cb[k];
        }
    }
    let tail: f32 = ta.iter().zip(tb).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

fn float(mut job: MatmulJob<'_>) {
    let (x, w) = (job.x, job.w);
    let mut wrow = vec![0.0f32; w.cols()];
    for r in job.rows.clone() {
        w.dequantize_row(r, &mut wrow);
        for b in 0..x.batch() {
            job.store(b, r, dot_f32(&wrow, x.row(b)));
        }
    }
}
