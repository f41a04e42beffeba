//! Q6_K (210 bytes / 256 elements): low nibbles `ql` at 0..128, high bit pairs `qh` at
//! 128..192, 16 i8 scales at 192..208, f16 `d` at 208.
//!
//! Element `i` (half `n = i / 128`, quarter `k = (i % 128) / 32`, lane `l = i % 32`) has its low
//! 4 bits in nibble `k / 2` (low first) of `ql[64n + 32 · (k % 2) + l]` and its top 2 bits at
//! bits `2k..2k+2` of `qh[32n + l]`. Value = `(d · scales[i / 16]) · (q − 32)`, q in 0..=63.

use super::{crumb_at, quantize_symmetric, IntBlock, GROUPS, QK_K};
use crate::quant::{f16_at, put_f16, GgmlType, QuantFormat};

/// ggml Q6_K.
#[allow(non_camel_case_types)] // ggml's name
pub struct Q6_K;

/// Byte offset of the high bit pairs.
const QH: usize = 128;
/// Byte offset of the scales.
const SCALES: usize = 192;
/// Byte offset of `d`.
const D: usize = 208;

/// Where element `i`'s low nibble lives: (byte, shift).
#[inline]
fn nibble_at(i: usize) -> (usize, u32) {
    let (n, k, l) = (i / 128, (i % 128) / 32, i % 32);
    (64 * n + 32 * (k % 2) + l, 4 * (k / 2) as u32)
}

impl Q6_K {
    /// The block in integer form (codes are `q − 32`).
    pub(crate) fn decode(block: &[u8]) -> IntBlock {
        let mut codes = [0i8; QK_K];
        for (i, c) in codes.iter_mut().enumerate() {
            let (lb, ls) = nibble_at(i);
            let (hb, hs) = crumb_at(i);
            let q = ((block[lb] >> ls) & 0x0f) | (((block[QH + hb] >> hs) & 3) << 4);
            *c = q as i8 - 32;
        }
        IntBlock {
            codes,
            scales: std::array::from_fn(|g| i16::from(block[SCALES + g] as i8)),
            mins: [0; GROUPS],
            d: f16_at(block, D),
            dmin: 0.0,
            has_min: false,
        }
    }
}

impl QuantFormat for Q6_K {
    const DTYPE: GgmlType = GgmlType::Q6_K;
    const BLOCK: usize = QK_K;
    const BLOCK_BYTES: usize = 210;

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        Self::decode(block).dequantize(out);
    }

    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let s = quantize_symmetric(x, 31, 127);
        out[..SCALES].fill(0);
        for (i, &c) in s.codes.iter().enumerate() {
            let q = (c + 32) as u8;
            let (lb, ls) = nibble_at(i);
            let (hb, hs) = crumb_at(i);
            out[lb] |= (q & 0x0f) << ls;
            out[QH + hb] |= (q >> 4) << hs;
        }
        out[SCALES..D].copy_from_slice(&s.scales);
        put_f16(out, D, s.d);
    }
}
