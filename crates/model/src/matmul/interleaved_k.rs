//! The compute layout of Q4_K and Q6_K: eight weight rows interleaved per 256-column
//! super-block, the file's codes and scales regrouped so that one AVX2 register holds four
//! columns of all eight rows (the K-quant sibling of `interleaved.rs`, with the same
//! batch-independence: every batch size uses it, so a row's result does not depend on how many
//! other rows are computed with it).
//!
//! The kernel (`avx2_k_interleaved.rs`) unpacks a group's super-block once into 64 chunk vectors
//! and reuses them for every batch row of a tile: per row and chunk it is one `vpmaddubsw`
//! against four activation codes broadcast to all lanes, the products of a scale group stay in
//! their row's lanes, and the scale is applied by one `vpmaddwd` per group and row set.
//!
//! Per group of eight rows `g` and super-block `b`, at `(g · nb + b) · stride` bytes:
//! - `d[8]`: the rows' super-scales (f16); Q4_K then `dmin[8]` (f16);
//! - scales: Q6_K: 16 sub-blocks × 8 rows of i8 (`[s][j]`, sub-block `s` = columns `16s..16s+16`);
//!   Q4_K: 8 sub-blocks × 8 rows of 6-bit scales (u8, sub-block = 32 columns), then the 8 × 8 mins;
//! - codes, per 32-column unit `u` (0..8), in order: four `ql` vectors of 32 bytes, byte `4j + e`
//!   of vector `m` holding the low four bits of row `j`'s column `32u + 4m + e` (low nibble) and
//!   of column `32u + 16 + 4m + e` (high nibble); then (Q6_K) two `qh` vectors, bits `2m..2m+2`
//!   of byte `4j + e` of vector `h` the top two bits of row `j`'s column `32u + 16h + 4m + e`. A
//!   unit's bits sit together so the kernel reads the layout as one sequential stream.
//!
//! Q6_K's 1,680 bytes per group and super-block are exactly its eight file blocks; Q4_K's 1,184
//! are 32 more than the file's 1,152 (scales and mins unpacked from 6 bits to bytes).

use super::interleaved::Interleaved;
use crate::quant::k_quants::IntBlock;
use crate::quant::{GgmlType, Q4_K, Q6_K, QK_K};

/// Whether `dtype` is a K-quant with an interleaved layout.
pub(crate) fn supports(dtype: GgmlType) -> bool {
    matches!(dtype, GgmlType::Q4_K | GgmlType::Q6_K)
}

/// Bytes per (group of eight rows, super-block).
pub(crate) const fn stride(dtype: GgmlType) -> usize {
    match dtype {
        GgmlType::Q6_K => Q6K_CODES + 8 * Q6K_UNIT,
        _ => Q4K_CODES + 8 * Q4K_UNIT,
    }
}

/// Q6_K: offsets of the scales and the codes; bytes per 32-column unit of codes.
pub(crate) const Q6K_SCALES: usize = 16;
pub(crate) const Q6K_CODES: usize = Q6K_SCALES + 128;
pub(crate) const Q6K_UNIT: usize = 192;
/// Q4_K: offsets of `dmin`, the scales, the mins and the codes; bytes per unit of codes.
pub(crate) const Q4K_DMIN: usize = 16;
pub(crate) const Q4K_SCALES: usize = 32;
pub(crate) const Q4K_MINS: usize = Q4K_SCALES + 64;
pub(crate) const Q4K_CODES: usize = Q4K_MINS + 64;
pub(crate) const Q4K_UNIT: usize = 128;

/// Builds the interleaved copy of `rows × cols` weights of `dtype` (Q4_K or Q6_K) whose row `r`
/// is `row(r)`.
pub(crate) fn build<'a>(
    dtype: GgmlType,
    rows: usize,
    cols: usize,
    row: impl Fn(usize) -> &'a [u8],
) -> Interleaved {
    let (nb, groups, stride) = (cols / QK_K, rows / 8, stride(dtype));
    let block_bytes = dtype.type_size();
    let mut bytes = vec![0u8; groups * nb * stride];
    for g in 0..groups {
        for j in 0..8 {
            let data = row(g * 8 + j);
            for b in 0..nb {
                let blk = &data[b * block_bytes..(b + 1) * block_bytes];
                let out = &mut bytes[(g * nb + b) * stride..(g * nb + b + 1) * stride];
                place_row(dtype, blk, j, out);
            }
        }
    }
    Interleaved { bytes, groups }
}

/// Writes row `j`'s file block `blk` into its places in the group's super-block `out`.
fn place_row(dtype: GgmlType, blk: &[u8], j: usize, out: &mut [u8]) {
    let (int, codes_at, unit): (IntBlock, usize, usize) = if dtype == GgmlType::Q6_K {
        let int = Q6_K::decode(blk);
        // d is the block's last two bytes.
        out[2 * j..2 * j + 2].copy_from_slice(&blk[208..210]);
        for s in 0..16 {
            out[Q6K_SCALES + 8 * s + j] = int.scales[s] as i8 as u8;
        }
        (int, Q6K_CODES, Q6K_UNIT)
    } else {
        let int = Q4_K::decode(blk);
        out[2 * j..2 * j + 2].copy_from_slice(&blk[0..2]);
        out[Q4K_DMIN + 2 * j..Q4K_DMIN + 2 * j + 2].copy_from_slice(&blk[2..4]);
        for s in 0..8 {
            // IntBlock repeats a 32-column scale for each of its 16-column halves.
            out[Q4K_SCALES + 8 * s + j] = int.scales[2 * s] as u8;
            out[Q4K_MINS + 8 * s + j] = int.mins[2 * s] as u8;
        }
        (int, Q4K_CODES, Q4K_UNIT)
    };
    // Q6_K's IntBlock codes are q − 32; the layout stores q (0..=63).
    let code = |c: usize| -> u8 {
        if dtype == GgmlType::Q6_K {
            (int.codes[c] + 32) as u8
        } else {
            int.codes[c] as u8
        }
    };
    for u in 0..8 {
        for m in 0..4 {
            for e in 0..4 {
                let (lo, hi) = (code(32 * u + 4 * m + e), code(32 * u + 16 + 4 * m + e));
                let at = codes_at + unit * u + 4 * j + e;
                out[at + 32 * m] = (lo & 0x0f) | ((hi & 0x0f) << 4);
                if dtype == GgmlType::Q6_K {
                    for (h, q) in [lo, hi].into_iter().enumerate() {
                        out[at + 128 + 32 * h] |= (q >> 4) << (2 * m);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::WeightMatrix;
    use crate::quant::f16_at;

    /// Every row's d, scales and 256 codes come back out of the layout where the module docs say.
    #[test]
    fn layout_keeps_every_scale_and_code() {
        let (rows, cols) = (16, 512);
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 263) as f32 - 131.0) / 40.0 * (1.0 + (i / 64 % 5) as f32))
            .collect();
        for dtype in [GgmlType::Q4_K, GgmlType::Q6_K] {
            let w = WeightMatrix::from_f32("w", dtype, rows, cols, &values).unwrap();
            let il = build(dtype, rows, cols, |r| w.row_data(r));
            let (nb, stride) = (cols / QK_K, stride(dtype));
            assert_eq!(il.bytes.len(), rows / 8 * nb * stride);
            for r in 0..rows {
                let (g, j) = (r / 8, r % 8);
                for b in 0..nb {
                    let blk = &w.row_data(r)[b * dtype.type_size()..];
                    let at = &il.bytes[(g * nb + b) * stride..];
                    let (int, codes, unit) = if dtype == GgmlType::Q6_K {
                        (Q6_K::decode(blk), Q6K_CODES, Q6K_UNIT)
                    } else {
                        (Q4_K::decode(blk), Q4K_CODES, Q4K_UNIT)
                    };
                    assert_eq!(f16_at(at, 2 * j), int.d);
                    for c in 0..QK_K {
                        let (u, m, e) = (c / 32, (c % 16) / 4, c % 4);
                        let unit_at = codes + unit * u + 4 * j + e;
                        let nibble = (at[unit_at + 32 * m] >> (4 * ((c % 32) / 16))) & 0x0f;
                        if dtype == GgmlType::Q6_K {
                            let h = (c % 32) / 16;
                            let top = (at[unit_at + 128 + 32 * h] >> (2 * m)) & 3;
                            assert_eq!(
                                i16::from(nibble | (top << 4)) - 32,
                                i16::from(int.codes[c])
                            );
                            assert_eq!(
                                at[Q6K_SCALES + 8 * (c / 16) + j] as i8,
                                int.scales[c / 16] as i8
                            );
                        } else {
                            assert_eq!(nibble as i8, int.codes[c]);
                            assert_eq!(
                                i16::from(at[Q4K_SCALES + 8 * (c / 32) + j]),
                                int.scales[c / 16]
                            );
                            assert_eq!(
                                i16::from(at[Q4K_MINS + 8 * (c / 32) + j]),
                                int.mins[c / 16]
                            );
                            assert_eq!(f16_at(at, Q4K_DMIN + 2 * j), int.dmin);
                        }
                    }
                }
            }
        }
    }
}
