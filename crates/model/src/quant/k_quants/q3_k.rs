//! Q3_K (110 bytes / 256 elements): high bits `hmask` at 0..32, low bit pairs `qs` at 32..96,
//! 16 packed 6-bit scales at 96..108, f16 `d` at 108.
//!
//! Element `i` has its low 2 bits at bits `2 · ((i % 128) / 32)` of `qs[32 · (i / 128) + i % 32]`
//! and its high bit at bit `i / 32` of `hmask[i % 32]`; q = low − 4 when the high bit is clear,
//! low otherwise (−4..=3). Scale `j` (per 16 elements) has its low 4 bits in nibble `j / 8` of
//! byte `96 + j % 8` and its top 2 bits at bits `2 · (j / 4)` of byte `104 + j % 4`; it is stored
//! plus 32. Value = `(d · (scale − 32)) · q`.

use super::{crumb_at, quantize_symmetric, IntBlock, GROUPS, QK_K};
use crate::quant::{f16_at, put_f16, GgmlType, QuantFormat};

/// ggml Q3_K.
#[allow(non_camel_case_types)] // ggml's name
pub struct Q3_K;

/// Byte offset of the low bit pairs.
const QS: usize = 32;
/// Byte offset of the scales.
const SCALES: usize = 96;
/// Byte offset of `d`.
const D: usize = 108;

impl Q3_K {
    /// The block in integer form.
    pub(crate) fn decode(block: &[u8]) -> IntBlock {
        let mut codes = [0i8; QK_K];
        for (i, c) in codes.iter_mut().enumerate() {
            let (b, s) = crumb_at(i);
            let low = ((block[QS + b] >> s) & 3) as i8;
            let high = (block[i % 32] >> (i / 32)) & 1;
            *c = if high == 0 { low - 4 } else { low };
        }
        let sc = &block[SCALES..D];
        IntBlock {
            codes,
            scales: std::array::from_fn(|j| {
                let low = (sc[j % 8] >> (4 * (j / 8))) & 0x0f;
                let high = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
                i16::from(low | (high << 4)) - 32
            }),
            mins: [0; GROUPS],
            d: f16_at(block, D),
            dmin: 0.0,
            has_min: false,
        }
    }
}

impl QuantFormat for Q3_K {
    const DTYPE: GgmlType = GgmlType::Q3_K;
    const BLOCK: usize = QK_K;
    const BLOCK_BYTES: usize = 110;

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        Self::decode(block).dequantize(out);
    }

    fn quantize_block(x: &[f32], out: &mut [u8]) {
        // Scales 0..=31 (stored 32..=63), codes −3..=3.
        let s = quantize_symmetric(x, 3, 31);
        out[..D].fill(0);
        for (i, &c) in s.codes.iter().enumerate() {
            let u = (c + 4) as u8;
            let (b, sh) = crumb_at(i);
            out[QS + b] |= (u & 3) << sh;
            out[i % 32] |= (u >> 2) << (i / 32);
        }
        for (j, &v) in s.scales.iter().enumerate() {
            let stored = v + 32;
            out[SCALES + j % 8] |= (stored & 0x0f) << (4 * (j / 8));
            out[SCALES + 8 + j % 4] |= (stored >> 4) << (2 * (j / 4));
        }
        put_f16(out, D, s.d);
    }
}
