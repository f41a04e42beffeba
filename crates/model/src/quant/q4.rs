//! Legacy 4-bit block formats (32 elements per block, 16 bytes of nibbles).
//!
//! Nibble order (both formats): element `j < 16` is the low nibble of byte `j`, element `j >= 16`
//! the high nibble of byte `j - 16`.
//! - Q4_0 (18 bytes): f16 `d`, nibbles; value = `(q - 8) * d`.
//! - Q4_1 (20 bytes): f16 `d`, f16 `m`, nibbles; value = `q * d + m`.

use super::{f16_at, put_f16, GgmlType, QuantFormat, QK};

/// ggml Q4_0.
pub struct Q4_0;

/// ggml Q4_1.
pub struct Q4_1;

/// The 4-bit code of element `j` from 16 bytes of packed nibbles.
#[inline]
pub(crate) fn nibble(qs: &[u8], j: usize) -> u8 {
    if j < QK / 2 {
        qs[j] & 0x0f
    } else {
        qs[j - QK / 2] >> 4
    }
}

fn pack_nibbles(codes: &[u8; QK], out: &mut [u8]) {
    for j in 0..QK / 2 {
        out[j] = codes[j] | (codes[j + QK / 2] << 4);
    }
}

impl QuantFormat for Q4_0 {
    const DTYPE: GgmlType = GgmlType::Q4_0;
    const BLOCK: usize = QK;
    const BLOCK_BYTES: usize = 18;

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        let d = f16_at(block, 0);
        let qs = &block[2..18];
        for (j, o) in out[..QK].iter_mut().enumerate() {
            *o = (nibble(qs, j) as i32 - 8) as f32 * d;
        }
    }

    /// Like ggml's reference: the value with the largest magnitude maps to code 0 (-8 · d).
    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let mut max = 0.0f32;
        for &v in &x[..QK] {
            if v.abs() > max.abs() {
                max = v;
            }
        }
        let d = max / -8.0;
        let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut codes = [0u8; QK];
        for (c, &v) in codes.iter_mut().zip(x) {
            *c = ((v * inv + 8.5) as i32).clamp(0, 15) as u8;
        }
        put_f16(out, 0, d);
        pack_nibbles(&codes, &mut out[2..18]);
    }
}

impl QuantFormat for Q4_1 {
    const DTYPE: GgmlType = GgmlType::Q4_1;
    const BLOCK: usize = QK;
    const BLOCK_BYTES: usize = 20;

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        let d = f16_at(block, 0);
        let m = f16_at(block, 2);
        let qs = &block[4..20];
        for (j, o) in out[..QK].iter_mut().enumerate() {
            *o = nibble(qs, j) as f32 * d + m;
        }
    }

    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let min = x[..QK].iter().copied().fold(f32::INFINITY, f32::min);
        let max = x[..QK].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let d = (max - min) / 15.0;
        let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut codes = [0u8; QK];
        for (c, &v) in codes.iter_mut().zip(x) {
            *c = (((v - min) * inv + 0.5) as i32).clamp(0, 15) as u8;
        }
        put_f16(out, 0, d);
        put_f16(out, 2, min);
        pack_nibbles(&codes, &mut out[4..20]);
    }
}
