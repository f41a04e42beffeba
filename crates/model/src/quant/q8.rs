//! 8-bit block formats.
//!
//! - Q8_0 (34 bytes / 32 elements): f16 scale `d`, then 32 × i8 `q`; value = `q * d`.
//! - Q8_1 (36 bytes / 32 elements): f16 `d`, f16 `s = d * Σq`, then 32 × i8 `q`; value = `q * d`.
//!   The stored sum lets a Q4_1 dot product apply the weight's min term without touching `q`.

use super::{f16_at, put_f16, GgmlType, QuantFormat, QK};

/// ggml Q8_0.
pub struct Q8_0;

/// ggml Q8_1.
pub struct Q8_1;

/// Symmetric 8-bit quantization of one 32-block: returns `(d, q)` with `d = max|x| / 127` (0 for
/// an all-zero block) and `q = x · (1/d)` rounded half to even, in -127..=127. The rounding matches
/// the SIMD conversion instruction, so scalar and vector activation quantization agree exactly.
pub fn quantize_q8_block(x: &[f32]) -> (f32, [i8; QK]) {
    let amax = x[..QK].iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut q = [0i8; QK];
    for (dst, v) in q.iter_mut().zip(x) {
        *dst = round_half_even(v * inv) as i8;
    }
    (d, q)
}

/// Rounds `v` (|v| < 2^22) to the nearest integer, ties to even, without a libm call: adding
/// 1.5 · 2^23 pushes the fraction out of the mantissa under the default rounding mode.
#[inline(always)]
pub(crate) fn round_half_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

impl QuantFormat for Q8_0 {
    const DTYPE: GgmlType = GgmlType::Q8_0;
    const BLOCK: usize = QK;
    const BLOCK_BYTES: usize = 34;

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        let d = f16_at(block, 0);
        for (o, &q) in out[..QK].iter_mut().zip(&block[2..2 + QK]) {
            *o = (q as i8) as f32 * d;
        }
    }

    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let (d, q) = quantize_q8_block(x);
        put_f16(out, 0, d);
        for (o, v) in out[2..2 + QK].iter_mut().zip(q) {
            *o = v as u8;
        }
    }
}

impl QuantFormat for Q8_1 {
    const DTYPE: GgmlType = GgmlType::Q8_1;
    const BLOCK: usize = QK;
    const BLOCK_BYTES: usize = 36;

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        let d = f16_at(block, 0);
        for (o, &q) in out[..QK].iter_mut().zip(&block[4..4 + QK]) {
            *o = (q as i8) as f32 * d;
        }
    }

    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let (d, q) = quantize_q8_block(x);
        let sum: i32 = q.iter().map(|&v| v as i32).sum();
        put_f16(out, 0, d);
        put_f16(out, 2, d * sum as f32);
        for (o, v) in out[4..4 + QK].iter_mut().zip(q) {
            *o = v as u8;
        }
    }
}
