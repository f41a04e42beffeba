//! Unquantized element types, as one-element "blocks" so they share the [`QuantFormat`] interface.
//!
//! - F32: little-endian IEEE single.
//! - F16: little-endian IEEE half.
//! - BF16: little-endian bfloat16, the upper 16 bits of an IEEE single; decoding appends 16 zero
//!   bits (exact), encoding rounds to nearest even (NaN stays NaN), as ggml does.

use super::{f16_at, put_f16, GgmlType, QuantFormat};

/// 32-bit IEEE float.
pub struct F32;

/// 16-bit IEEE half float.
pub struct F16;

/// bfloat16 (brain float): sign, 8 exponent bits, 7 mantissa bits.
pub struct BF16;

impl QuantFormat for F32 {
    const DTYPE: GgmlType = GgmlType::F32;
    const BLOCK: usize = 1;
    const BLOCK_BYTES: usize = 4;

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        out[0] = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
    }

    fn quantize_block(x: &[f32], out: &mut [u8]) {
        out[..4].copy_from_slice(&x[0].to_le_bytes());
    }
}

impl QuantFormat for F16 {
    const DTYPE: GgmlType = GgmlType::F16;
    const BLOCK: usize = 1;
    const BLOCK_BYTES: usize = 2;

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        out[0] = f16_at(block, 0);
    }

    fn quantize_block(x: &[f32], out: &mut [u8]) {
        put_f16(out, 0, x[0]);
    }
}

impl QuantFormat for BF16 {
    const DTYPE: GgmlType = GgmlType::BF16;
    const BLOCK: usize = 1;
    const BLOCK_BYTES: usize = 2;

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        out[0] = bf16_bits_to_f32(u16::from_le_bytes([block[0], block[1]]));
    }

    fn quantize_block(x: &[f32], out: &mut [u8]) {
        out[..2].copy_from_slice(&half::bf16::from_f32(x[0]).to_bits().to_le_bytes());
    }
}

/// A bfloat16 bit pattern as f32 (exact: bf16 is the top half of an f32).
#[inline(always)]
fn bf16_bits_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}
