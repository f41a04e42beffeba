//! Q2_K (84 bytes / 256 elements): 16 scale bytes at 0..16 (low nibble: scale, high nibble:
//! min, per 16 elements), 2-bit codes at 16..80, f16 `d` at 80, f16 `dmin` at 82.
//!
//! Element `i` is at bits `2 · ((i % 128) / 32)` of byte `16 + 32 · (i / 128) + i % 32`.
//! Value = `(d · scale[i / 16]) · q − dmin · min[i / 16]`, q in 0..=3.

use super::{crumb_at, quantize_affine, IntBlock, QK_K};
use crate::quant::{f16_at, put_f16, GgmlType, QuantFormat};

/// ggml Q2_K.
#[allow(non_camel_case_types)] // ggml's name
pub struct Q2_K;

/// Byte offset of the codes.
const QS: usize = 16;

impl Q2_K {
    /// The block in integer form.
    pub(crate) fn decode(block: &[u8]) -> IntBlock {
        let mut codes = [0i8; QK_K];
        for (i, c) in codes.iter_mut().enumerate() {
            let (b, s) = crumb_at(i);
            *c = ((block[QS + b] >> s) & 3) as i8;
        }
        IntBlock {
            codes,
            scales: std::array::from_fn(|g| i16::from(block[g] & 0x0f)),
            mins: std::array::from_fn(|g| i16::from(block[g] >> 4)),
            d: f16_at(block, 80),
            dmin: f16_at(block, 82),
            has_min: true,
        }
    }
}

impl QuantFormat for Q2_K {
    const DTYPE: GgmlType = GgmlType::Q2_K;
    const BLOCK: usize = QK_K;
    const BLOCK_BYTES: usize = 84;

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        Self::decode(block).dequantize(out);
    }

    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let a = quantize_affine(x, 16, 3, 15);
        for (o, (&s, &m)) in out[..16].iter_mut().zip(a.scales.iter().zip(&a.mins)) {
            *o = s | (m << 4);
        }
        out[QS..QS + 64].fill(0);
        for (i, &c) in a.codes.iter().enumerate() {
            let (b, s) = crumb_at(i);
            out[QS + b] |= c << s;
        }
        put_f16(out, 80, a.d);
        put_f16(out, 82, a.dmin);
    }
}
