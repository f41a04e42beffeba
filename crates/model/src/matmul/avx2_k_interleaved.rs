//! AVX2 kernel for Q4_K and Q6_K on the interleaved eight-row layout (`interleaved_k.rs`).
//!
//! Per group of eight rows and super-block, [`unpack`] writes the 64 chunk vectors (chunk `k`:
//! columns `4k..4k+4` of rows 0..8, byte `4j + e` = row `j`'s column `4k + e`, the unsigned code)
//! and the scales as 16-bit pairs `(sc_j, sc_j)` per row lane, once; [`dot`] then runs every batch
//! row of the tile over them. Per batch row, lane `j` gathers the exact integer sums
//! - Q6_K: `T = Σ_s sc_s · Σ_{c∈s} q_c·x_c − 32 · Σ_s sc_s · bsum_s` (the `q − 32` offset through
//!   the activation code sums, as in `avx2_k.rs`), then `acc = fma(d·d_x, T, acc)`;
//! - Q4_K: `T = Σ_s sc_s · Σ_{c∈s} q_c·x_c` and `M = Σ_s m_s · (bsum_2s + bsum_2s+1)`, then
//!   `acc = fma(d·d_x, T, acc)` and `acc = fma(−dmin·d_x, M, acc)`,
//!
//! the same operations in the same order whatever the batch size, so results do not depend on it.
//!
//! 16-bit ranges (`|x| ≤ 127`; bounds taken at 128): a `vpmaddubsw` pair ≤ 2·63·128 = 16128 for
//! 6-bit codes, so Q6_K adds two chunks (32256) before widening; 2·15·128 = 3840 for 4-bit codes,
//! so Q4_K adds a whole 32-column sub-block of eight chunks (30720). The i32 sums stay below 2^29.

use std::arch::x86_64::*;

use super::avx2::store8;
use super::interleaved::Interleaved;
use super::interleaved_k::{
    stride, Q4K_CODES, Q4K_DMIN, Q4K_MINS, Q4K_SCALES, Q4K_UNIT, Q6K_CODES, Q6K_SCALES, Q6K_UNIT,
};
use super::{Activations, MatmulJob};
use crate::quant::{GgmlType, QK_K};

/// Activation rows kept in L1 while a group's super-blocks are unpacked and applied to them.
const BATCH_GROUP: usize = 16;

/// One group's super-block, unpacked.
#[repr(C, align(32))]
struct Unpacked {
    codes: [__m256i; 64],
    /// `(sc, sc)` per row: Q6_K per 16-column sub-block, Q4_K per 32-column one (first 8).
    scales: [__m256i; 16],
    /// Against the activation code-sum pairs `(bsum_2p, bsum_2p+1)`: Q6_K `(−32·sc_2p,
    /// −32·sc_2p+1)`, Q4_K `(m_p, m_p)`.
    sums: [__m256i; 8],
    d: __m256,
    dmin: __m256,
}

/// Runs the rows of `job` in whole groups of eight (`..covered`) on the layout `il`; a group the
/// job's range cuts is computed whole and only the job's rows stored.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C; `il` is the layout of `job.w` (Q4_K or Q6_K).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn groups<const Q6: bool>(job: &mut MatmulJob<'_>, il: &Interleaved) {
    let dtype = if Q6 { GgmlType::Q6_K } else { GgmlType::Q4_K };
    let (stride, nb) = (stride(dtype), job.w.cols() / QK_K);
    let covered = il.groups * 8;
    let groups = job.rows.start / 8..job.rows.end.min(covered).div_ceil(8);
    let batch = job.x.batch();
    let mut buf = Unpacked {
        codes: [_mm256_setzero_si256(); 64],
        scales: [_mm256_setzero_si256(); 16],
        sums: [_mm256_setzero_si256(); 8],
        d: _mm256_setzero_ps(),
        dmin: _mm256_setzero_ps(),
    };
    let mut g0 = 0;
    while g0 < batch {
        let g1 = (g0 + BATCH_GROUP).min(batch);
        for g in groups.clone() {
            let mut acc = [_mm256_setzero_ps(); BATCH_GROUP];
            for blk in 0..nb {
                // SAFETY: group g < il.groups, so its nb super-blocks of `stride` bytes exist.
                let p = il.bytes.as_ptr().add((g * nb + blk) * stride);
                // The next super-block (the layout is sequential); prefetches never fault.
                for off in (0..stride).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(stride + off) as *const i8);
                }
                unpack::<Q6>(p, &mut buf);
                let mut b0 = g0;
                while b0 < g1 {
                    let n = (g1 - b0).min(4);
                    let a = &mut acc[b0 - g0..];
                    match n {
                        1 => dot::<Q6, 1>(&buf, job.x, blk, b0, a),
                        2 => dot::<Q6, 2>(&buf, job.x, blk, b0, a),
                        3 => dot::<Q6, 3>(&buf, job.x, blk, b0, a),
                        _ => dot::<Q6, 4>(&buf, job.x, blk, b0, a),
                    }
                    b0 += n;
                }
            }
            for (i, &a) in acc[..g1 - g0].iter().enumerate() {
                store8(job, g, g0 + i, [a]);
            }
        }
        g0 = g1;
    }
}

#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

/// Bits 4..6 of each byte of `h` taken from bits `2m..2m+2`.
#[inline(always)]
unsafe fn top_bits(h: __m256i, m: usize) -> __m256i {
    let moved = match m {
        0 => _mm256_slli_epi16::<4>(h),
        1 => _mm256_slli_epi16::<2>(h),
        2 => h,
        _ => _mm256_srli_epi16::<2>(h),
    };
    _mm256_and_si256(moved, _mm256_set1_epi8(0x30))
}

/// `(v_k, v_k)` 16-bit pairs for the eight bytes `v_0..v_8` of the low (`HIGH = false`) or high
/// half of `v`, sign- or zero-extended.
#[inline(always)]
unsafe fn pairs<const HIGH: bool, const SIGNED: bool>(v: __m128i) -> __m256i {
    let doubled = if HIGH {
        _mm_unpackhi_epi8(v, v)
    } else {
        _mm_unpacklo_epi8(v, v)
    };
    if SIGNED {
        _mm256_cvtepi8_epi16(doubled)
    } else {
        _mm256_cvtepu8_epi16(doubled)
    }
}

/// Unpacks the group's super-block at `p` into `buf`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unpack<const Q6: bool>(p: *const u8, buf: &mut Unpacked) {
    buf.d = _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i));
    let codes = if Q6 {
        for q in 0..8 {
            // Sub-blocks 2q (bytes 0..8) and 2q + 1 (bytes 8..16), one byte per row.
            let v = _mm_loadu_si128(p.add(Q6K_SCALES + 16 * q) as *const __m128i);
            buf.scales[2 * q] = pairs::<false, true>(v);
            buf.scales[2 * q + 1] = pairs::<true, true>(v);
            let mixed = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(v, _mm_srli_si128::<8>(v)));
            buf.sums[q] = _mm256_mullo_epi16(mixed, _mm256_set1_epi16(-32));
        }
        p.add(Q6K_CODES)
    } else {
        buf.dmin = _mm256_cvtph_ps(_mm_loadu_si128(p.add(Q4K_DMIN) as *const __m128i));
        for q in 0..4 {
            let v = _mm_loadu_si128(p.add(Q4K_SCALES + 16 * q) as *const __m128i);
            buf.scales[2 * q] = pairs::<false, false>(v);
            buf.scales[2 * q + 1] = pairs::<true, false>(v);
            let m = _mm_loadu_si128(p.add(Q4K_MINS + 16 * q) as *const __m128i);
            buf.sums[2 * q] = pairs::<false, false>(m);
            buf.sums[2 * q + 1] = pairs::<true, false>(m);
        }
        p.add(Q4K_CODES)
    };
    let unit = if Q6 { Q6K_UNIT } else { Q4K_UNIT };
    let low4 = _mm256_set1_epi8(0x0f);
    for u in 0..8 {
        let at = codes.add(unit * u);
        let (h0, h1) = if Q6 {
            (load(at.add(128)), load(at.add(160)))
        } else {
            (_mm256_setzero_si256(), _mm256_setzero_si256())
        };
        for m in 0..4 {
            let raw = load(at.add(32 * m));
            let mut lo = _mm256_and_si256(raw, low4);
            let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), low4);
            if Q6 {
                lo = _mm256_or_si256(lo, top_bits(h0, m));
                hi = _mm256_or_si256(hi, top_bits(h1, m));
            }
            buf.codes[8 * u + m] = lo;
            buf.codes[8 * u + 4 + m] = hi;
        }
    }
}

/// The four activation codes of batch row `xq` at columns `4k..4k+4`, in every 32-bit lane.
#[inline(always)]
unsafe fn four(xq: *const i8, k: usize) -> __m256i {
    _mm256_set1_epi32((xq.add(4 * k) as *const i32).read_unaligned())
}

/// Adds super-block `blk` of the unpacked group to `acc[i]` for batch rows `b0 + i`, `i < N`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<const Q6: bool, const N: usize>(
    buf: &Unpacked,
    x: &Activations,
    blk: usize,
    b0: usize,
    acc: &mut [__m256],
) {
    let mut xq = [std::ptr::null::<i8>(); N];
    let mut xb = [std::ptr::null::<i16>(); N];
    for i in 0..N {
        // SAFETY (all reads below): the rows hold nb · 256 codes and nb · 16 code sums, blk < nb.
        xq[i] = x.q_row(b0 + i).as_ptr().add(blk * QK_K);
        xb[i] = x.bsums_row(b0 + i).as_ptr().add(blk * 16);
    }
    let mut sumi = [_mm256_setzero_si256(); N];
    let mut msum = [_mm256_setzero_si256(); N];
    for p in 0..8 {
        for i in 0..N {
            let bsum = _mm256_set1_epi32((xb[i].add(2 * p) as *const i32).read_unaligned());
            let t = _mm256_madd_epi16(buf.sums[p], bsum);
            if Q6 {
                sumi[i] = _mm256_add_epi32(sumi[i], t);
            } else {
                msum[i] = _mm256_add_epi32(msum[i], t);
            }
        }
    }
    if Q6 {
        for s in 0..16 {
            for half in 0..2 {
                let k = 4 * s + 2 * half;
                let (c0, c1) = (buf.codes[k], buf.codes[k + 1]);
                for i in 0..N {
                    let s16 = _mm256_add_epi16(
                        _mm256_maddubs_epi16(c0, four(xq[i], k)),
                        _mm256_maddubs_epi16(c1, four(xq[i], k + 1)),
                    );
                    sumi[i] = _mm256_add_epi32(sumi[i], _mm256_madd_epi16(s16, buf.scales[s]));
                }
            }
        }
    } else {
        for s in 0..8 {
            let mut s16 = [_mm256_setzero_si256(); N];
            for k in 8 * s..8 * s + 8 {
                let c = buf.codes[k];
                for i in 0..N {
                    s16[i] = _mm256_add_epi16(s16[i], _mm256_maddubs_epi16(c, four(xq[i], k)));
                }
            }
            for i in 0..N {
                sumi[i] = _mm256_add_epi32(sumi[i], _mm256_madd_epi16(s16[i], buf.scales[s]));
            }
        }
    }
    for i in 0..N {
        let dx = _mm256_set1_ps(*x.d_row(b0 + i).get_unchecked(blk));
        acc[i] = _mm256_fmadd_ps(
            _mm256_mul_ps(buf.d, dx),
            _mm256_cvtepi32_ps(sumi[i]),
            acc[i],
        );
        if !Q6 {
            acc[i] = _mm256_fnmadd_ps(
                _mm256_mul_ps(buf.dmin, dx),
                _mm256_cvtepi32_ps(msum[i]),
                acc[i],
            );
        }
    }
}
