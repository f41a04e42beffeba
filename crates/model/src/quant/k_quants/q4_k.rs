//! Q4_K (144 bytes / 256 elements): f16 `d` at 0, f16 `dmin` at 2, 6-bit scales and mins at
//! 4..16 ([`super::unpack_scales_mins`]), 4-bit codes at 16..144.
//!
//! Sub-block `s` (0..8) holds elements `32s..32s+32`; element `32s + l` is nibble `s % 2` (low
//! first) of byte `16 + 32 · (s / 2) + l`. Value = `(d · scale[s]) · q − dmin · min[s]`.

use super::{pack_scales_mins, quantize_affine, unpack_scales_mins, IntBlock, QK_K};
use crate::quant::{f16_at, put_f16, GgmlType, QuantFormat};

/// ggml Q4_K.
#[allow(non_camel_case_types)] // ggml's name
pub struct Q4_K;

/// Byte offset of the 4-bit codes.
const QS: usize = 16;

impl Q4_K {
    /// The block in integer form.
    pub(crate) fn decode(block: &[u8]) -> IntBlock {
        let (sc, m) = unpack_scales_mins(&block[4..16]);
        let mut codes = [0i8; QK_K];
        for (i, c) in codes.iter_mut().enumerate() {
            let (s, l) = (i / 32, i % 32);
            let byte = block[QS + 32 * (s / 2) + l];
            *c = ((byte >> (4 * (s % 2))) & 0x0f) as i8;
        }
        IntBlock {
            codes,
            scales: std::array::from_fn(|g| i16::from(sc[g / 2])),
            mins: std::array::from_fn(|g| i16::from(m[g / 2])),
            d: f16_at(block, 0),
            dmin: f16_at(block, 2),
            has_min: true,
        }
    }
}

impl QuantFormat for Q4_K {
    const DTYPE: GgmlType = GgmlType::Q4_K;
    const BLOCK: usize = QK_K;
    const BLOCK_BYTES: usize = 144;

    fn dequantize_block(block: &[u8], out: &mut [f32]) {
        Self::decode(block).dequantize(out);
    }

    fn quantize_block(x: &[f32], out: &mut [u8]) {
        let a = quantize_affine(x, 32, 15, 63);
        put_f16(out, 0, a.d);
        put_f16(out, 2, a.dmin);
        let sc: [u8; 8] = std::array::from_fn(|s| a.scales[s]);
        let m: [u8; 8] = std::array::from_fn(|s| a.mins[s]);
        pack_scales_mins(&sc, &m, &mut out[4..16]);
        out[QS..QS + 128].fill(0);
        for (i, &c) in a.codes.iter().enumerate() {
            let (s, l) = (i / 32, i % 32);
            out[QS + 32 * (s / 2) + l] |= c << (4 * (s % 2));
        }
    }
}
