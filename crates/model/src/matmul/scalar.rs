//! Portable kernels: the same integer algorithm as the SIMD path, in plain Rust.
//!
//! Per 32-block, a quantized weight decodes to integer codes `w`, a scale `d_w` and a min
//! coefficient `m_w`, so that `Σ W·x = Σ_blocks d_w·d_x·Σ(w·q_x) + m_w·s_x` with the
//! activation's `q_x`, `d_x` and `s_x = d_x·Σq_x` ([`super::Activations`]).
//! Q8_0: `w = q`, `m_w = 0`. Q4_0: `w = nibble − 8`, `m_w = 0`. Q4_1: `w = nibble`, `m_w = m`.
//! Q5_0: `w = code − 16`, `m_w = 0`. Q5_1: `w = code`, `m_w = m` (5-bit codes, see `quant/q5.rs`).
//!
//! K-quants (against Q8_K-like activations, one `d_x` per 256 and code sums per 16): a weight
//! super-block decodes to its integer form (codes `w`, per-16 scales `sc` and mins `m`, f16 `d`,
//! `dmin`; [`IntBlock`]), and its dot with the activation block is
//! `d·d_x·Σ_g sc_g·Σ_{i∈g} w_i·q_i − dmin·d_x·Σ_g m_g·bsum_g`, both sums exact in i32.

use super::MatmulJob;
use crate::quant::k_quants::{IntBlock, GROUP};
use crate::quant::q4::nibble;
use crate::quant::q5::codes5;
use crate::quant::{f16_at, GgmlType, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, QK, QK_K};

/// Batch rows processed per pass over a weight row.
const TILE: usize = 4;

pub(crate) fn matmul(job: MatmulJob<'_>) {
    match job.w.dtype() {
        GgmlType::Q8_0 => quantized(job, 34, decode_q8_0),
        GgmlType::Q4_0 => quantized(job, 18, decode_q4_0),
        GgmlType::Q4_1 => quantized(job, 20, decode_q4_1),
        GgmlType::Q5_0 => quantized(job, 22, decode_q5_0),
        GgmlType::Q5_1 => quantized(job, 24, decode_q5_1),
        GgmlType::Q2_K => k_quant(job, 84, Q2_K::decode),
        GgmlType::Q3_K => k_quant(job, 110, Q3_K::decode),
        GgmlType::Q4_K => k_quant(job, 144, Q4_K::decode),
        GgmlType::Q5_K => k_quant(job, 176, Q5_K::decode),
        GgmlType::Q6_K => k_quant(job, 210, Q6_K::decode),
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => float(job),
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

fn decode_q5_0(block: &[u8]) -> Decoded {
    let mut codes = [0i8; QK];
    for (c, &q) in codes.iter_mut().zip(&codes5(&block[2..6], &block[6..22])) {
        *c = q as i8 - 16;
    }
    Decoded {
        codes,
        d: f16_at(block, 0),
        m: 0.0,
    }
}

fn decode_q5_1(block: &[u8]) -> Decoded {
    let mut codes = [0i8; QK];
    for (c, &q) in codes.iter_mut().zip(&codes5(&block[4..8], &block[8..24])) {
        *c = q as i8;
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

fn k_quant(mut job: MatmulJob<'_>, block_bytes: usize, decode: fn(&[u8]) -> IntBlock) {
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
                    let q = &x.q_row(b)[blk * QK_K..(blk + 1) * QK_K];
                    let bsums = &x.bsums_row(b)[blk * (QK_K / GROUP)..];
                    let mut sumi = 0i32;
                    let mut msum = 0i32;
                    for (g, (w, q)) in dec
                        .codes
                        .chunks_exact(GROUP)
                        .zip(q.chunks_exact(GROUP))
                        .enumerate()
                    {
                        let dot: i32 = w
                            .iter()
                            .zip(q)
                            .map(|(&a, &c)| i32::from(a) * i32::from(c))
                            .sum();
                        sumi += i32::from(dec.scales[g]) * dot;
                        msum += i32::from(dec.mins[g]) * i32::from(bsums[g]);
                    }
                    let dx = x.d_row(b)[blk];
                    *a += dec.d * dx * sumi as f32 - dec.dmin * dx * msum as f32;
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
