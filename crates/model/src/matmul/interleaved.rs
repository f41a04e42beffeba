//! The compute layout of the 32-block quant types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): eight weight
//! rows interleaved, the same bytes as the file's blocks rearranged.
//!
//! In the file's layout each (weight block, activation row) pair needs its own horizontal integer
//! sum, conversion and scaled FMA: about seven vector instructions per 32 multiply-adds, which is
//! what bounds a prefill. Here one `vpmaddubsw` covers four columns of eight rows at once against
//! four activation codes broadcast to every lane, a block's products stay in the lanes of their
//! row as 16-bit sums, and the conversion and scaling run once per block for eight rows (llama.cpp
//! interleaves rows for its repacked CPU kernels for the same reason).
//!
//! Every batch size uses this layout, so a row's result is computed the same way whether it is
//! decoded alone or prefilled with 500 others: outputs do not depend on batching (the rows past
//! the last whole group of eight use the file layout, again for every batch size).
//!
//! Per group of eight rows `g` and block `b`, at `(g · nb + b) · stride` bytes:
//! - `d[8]`: the rows' scales (f16);
//! - `m[8]` (Q4_1, Q5_1): the rows' minimums (f16);
//! - `h[32]` (Q5_0, Q5_1): fifth bits; bit `k` of byte `4j + e` is the fifth bit of row `j`'s
//!   column `4k + e`;
//! - codes: Q8_0: 8 chunks of 32 bytes, chunk `k` holding columns `4k..4k+4` of row 0, then row 1,
//!   …, row 7; 4- and 5-bit types: 4 × 32 bytes, byte `4j + e` of vector `v` holding the low four
//!   bits of row `j`'s column `4v + e` (low nibble) and of column `4(v + 4) + e` (high nibble).

#[cfg(test)]
use crate::quant::f16_at;
use crate::quant::{GgmlType, QK};

/// The interleaved copy of a matrix's first `groups · 8` rows.
pub(crate) struct Interleaved {
    pub bytes: Vec<u8>,
    /// Groups of eight rows (rows beyond `groups · 8` stay in the file layout only).
    pub groups: usize,
}

/// Whether `dtype` has an interleaved layout.
pub(crate) fn supports(dtype: GgmlType) -> bool {
    matches!(
        dtype,
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0
    )
}

/// Bytes per (group of eight rows, block): the file's eight blocks.
pub(crate) const fn stride(dtype: GgmlType) -> usize {
    match dtype {
        GgmlType::Q4_0 => 16 + 128,
        GgmlType::Q4_1 => 32 + 128,
        GgmlType::Q5_0 => 16 + 32 + 128,
        GgmlType::Q5_1 => 32 + 32 + 128,
        _ => 16 + 256,
    }
}

/// Offset of the fifth bits (Q5) or codes after the scales.
pub(crate) const fn scales_len(dtype: GgmlType) -> usize {
    match dtype {
        GgmlType::Q4_1 | GgmlType::Q5_1 => 32,
        _ => 16,
    }
}

/// One block of the file: its codes (0..=31 for 4/5-bit types; the signed byte for Q8_0), and
/// the raw f16 bits of `d` and (Q4_1, Q5_1) `m`.
fn decode_block(dtype: GgmlType, blk: &[u8], codes: &mut [u8; QK]) -> ([u8; 2], [u8; 2]) {
    let d = [blk[0], blk[1]];
    if dtype == GgmlType::Q8_0 {
        codes.copy_from_slice(&blk[2..2 + QK]);
        return (d, [0, 0]);
    }
    let (nibbles, qh, m) = match dtype {
        GgmlType::Q4_0 => (&blk[2..18], 0u32, [0, 0]),
        GgmlType::Q4_1 => (&blk[4..20], 0, [blk[2], blk[3]]),
        GgmlType::Q5_0 => (&blk[6..22], le32(&blk[2..6]), [0, 0]),
        _ => (&blk[8..24], le32(&blk[4..8]), [blk[2], blk[3]]),
    };
    for (e, code) in codes.iter_mut().enumerate() {
        let nibble = if e < 16 {
            nibbles[e] & 0x0f
        } else {
            nibbles[e - 16] >> 4
        };
        *code = nibble | ((((qh >> e) & 1) as u8) << 4);
    }
    (d, m)
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

/// Builds the interleaved copy of `rows × cols` weights of `dtype` whose row `r` is `row(r)`.
pub(crate) fn build<'a>(
    dtype: GgmlType,
    rows: usize,
    cols: usize,
    row: impl Fn(usize) -> &'a [u8],
) -> Interleaved {
    let (nb, groups, stride) = (cols / QK, rows / 8, stride(dtype));
    let block_bytes = dtype.type_size();
    let has_min = matches!(dtype, GgmlType::Q4_1 | GgmlType::Q5_1);
    let has_fifth = matches!(dtype, GgmlType::Q5_0 | GgmlType::Q5_1);
    let codes_at = scales_len(dtype) + if has_fifth { 32 } else { 0 };
    let mut bytes = vec![0u8; groups * nb * stride];
    let mut codes = [0u8; QK];
    for g in 0..groups {
        for j in 0..8 {
            let data = row(g * 8 + j);
            for b in 0..nb {
                let (d, m) = decode_block(dtype, &data[b * block_bytes..], &mut codes);
                let out = &mut bytes[(g * nb + b) * stride..(g * nb + b + 1) * stride];
                out[2 * j..2 * j + 2].copy_from_slice(&d);
                if has_min {
                    out[16 + 2 * j..16 + 2 * j + 2].copy_from_slice(&m);
                }
                if dtype == GgmlType::Q8_0 {
                    for k in 0..8 {
                        let to = codes_at + 32 * k + 4 * j;
                        out[to..to + 4].copy_from_slice(&codes[4 * k..4 * k + 4]);
                    }
                    continue;
                }
                for e in 0..4 {
                    for v in 0..4 {
                        let (lo, hi) = (codes[4 * v + e], codes[4 * (v + 4) + e]);
                        out[codes_at + 32 * v + 4 * j + e] = (lo & 0x0f) | ((hi & 0x0f) << 4);
                    }
                    if has_fifth {
                        let mut h = 0u8;
                        for k in 0..8 {
                            h |= (codes[4 * k + e] >> 4) << k;
                        }
                        out[scales_len(dtype) + 4 * j + e] = h;
                    }
                }
            }
        }
    }
    Interleaved { bytes, groups }
}

/// A row's scale `d` of block `b` in the layout (for tests of the layout itself).
#[cfg(test)]
fn d_of(il: &Interleaved, dtype: GgmlType, nb: usize, r: usize, b: usize) -> f32 {
    f16_at(&il.bytes, ((r / 8) * nb + b) * stride(dtype) + 2 * (r % 8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::WeightMatrix;

    #[test]
    fn layout_keeps_every_scale_and_code() {
        let (rows, cols) = (16, 64);
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 263) as f32 - 131.0) / 40.0)
            .collect();
        for dtype in [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
        ] {
            let w = WeightMatrix::from_f32("w", dtype, rows, cols, &values).unwrap();
            let il = build(dtype, rows, cols, |r| w.row_data(r));
            assert_eq!(
                il.bytes.len(),
                w.data().len(),
                "{dtype:?}: same bytes as the file"
            );
            for r in 0..rows {
                for b in 0..cols / QK {
                    assert_eq!(
                        d_of(&il, dtype, cols / QK, r, b),
                        f16_at(w.row_data(r), b * dtype.type_size())
                    );
                }
            }
        }
    }
}
