//! Unquantized element types, as one-element "blocks" so they share the [`QuantFormat`] interface.

use super::{f16_at, put_f16, GgmlType, QuantFormat};

/// 32-bit IEEE float.
pub struct F32;

/// 16-bit IEEE half float.
pub struct F16;

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
