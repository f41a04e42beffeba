//! Legacy 5-bit block formats (32 elements per block): the low four bits of each code as Q4's
//! nibbles, the fifth bits packed into one little-endian `u32`.
//!
//! Code of element `j`: `nibble(qs, j) | (((qh >> j) & 1) << 4)`, where the nibble order is
//! Q4's (element `j < 16` is the low nibble of byte `j`, element `j >= 16` the high nibble of
//! byte `j - 16`) and bit `j` of `qh` belongs to element `j`.
//! - Q5_0 (22 bytes): f16 `d`, `qh` (4 bytes), nibbles (16 bytes); value = `(q - 16) * d`.
//! - Q5_1 (24 bytes): f16 `d`, f16 `m`, `qh`, nibbles; value = `q * d + m`.

use super::q4::nibble;
use super::{f16_at, put_f16, GgmlType, QuantFormat, QK};

/// ggml Q5_0.
pub struct Q5_0;

/// ggml Q5_1.
pub struct Q5_1;

/// The 5-bit codes of one block from its `qh` word (4 bytes) and 16 bytes of nibbles.
#[inline]
pub(crate) fn codes5(qh: &[u8], qs: &[u8]) -> [u8; QK] {
    let high = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    let mut codes = [0u8; QK];
    for (j, c) in codes.iter_mut().enumerate() {
        *c = nibble(qs, j) | ((((high >> j) & 1) as u8) << 4);
    }
    codes
}

/// Writes 5-bit `codes` as a `qh` word (`out[..4]`) and 16 bytes of nibbles (`out[4..20]`).
fn pack_codes5(codes: &[u8; QK], out: &mut [u8]) {
    let mut high = 0u32;
    for (j, &c) in codes.iter().enumerate() {
        high |= u32::from(c >> 4) << j;
    }
    out[..4].copy_from_slice(&high.to_le_bytes());
    for j in 0..QK / 2 {
        out[4 + j] = (codes[j] & 0x0f) | ((codes[j + QK / 2] & 0x0f) << 4);
    }
}

impl QuantFormat for Q5_0 {
    const DTYPE: GgmlType = GgmlType::Q5_0;
    const BLOCK: usize = QK;
    const BLOCK_BYTES: usize = 22;

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        let d = f16_at(block, 0);
        let codes = codes5(&block[2..6], &block[6..22]);
        for (o, &q) in out[..QK].iter_mut().zip(&codes) {
            *o = (i32::from(q) - 16) as f32 * d;
        }
    }

    /// Like ggml's reference: the value with the largest magnitude maps to code 0 (-16 · d).
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let mut max = 0.0f32;
        for &v in &x[..QK] {
            if v.abs() > max.abs() {
                max = v;
            }
        }
        let d = max / -16.0;
        let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut codes = [0u8; QK];
        for (c, &v) in codes.iter_mut().zip(x) {
            *c = ((v * inv + 16.5) as i32).clamp(0, 31) as u8;
        }
        put_f16(out, 0, d);
        pack_codes5(&codes, &mut out[2..22]);
    }
}

impl QuantFormat for Q5_1 {
    const DTYPE: GgmlType = GgmlType::Q5_1;
    const BLOCK: usize = QK;
    const BLOCK_BYTES: usize = 24;

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        let d = f16_at(block, 0);
        let m = f16_at(block, 2);
        let codes = codes5(&block[4..8], &block[8..24]);
        for (o, &q) in out[..QK].iter_mut().zip(&codes) {
            *o = f32::from(q) * d + m;
        }
    }

    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let min = x[..QK].iter().copied().fold(f32::INFINITY, f32::min);
        let max = x[..QK].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let d = (max - min) / 31.0;
        let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut codes = [0u8; QK];
        for (c, &v) in codes.iter_mut().zip(x) {
            *c = (((v - min) * inv + 0.5) as i32).clamp(0, 31) as u8;
        }
        put_f16(out, 0, d);
        put_f16(out, 2, min);
        pack_codes5(&codes, &mut out[4..24]);
    }
}
