//! x86-64 AVX2 + FMA + F16C kernels.
//!
//! Quantized weights: per 32-block, the 32 weight codes are multiplied with the 32 activation
//! codes by `vpmaddubsw` (u8 × i8 → pairs summed to i16) then `vpmaddwd` against ones (→ 8 × i32),
//! converted to f32 and accumulated with the block's `d_w · d_x` by FMA. `vpmaddubsw` needs an
//! unsigned left operand: 4-bit codes are already 0..=15 (Q4_0's −8 is applied afterwards through
//! the activation block sum `s_x`), and Q8_0 uses |w| with the sign moved onto x (`vpsignb`).
//! The same algebra as the scalar kernel (see `scalar.rs`).
//!
//! Tiling: a tile is R weight rows × N batch rows (N ≤ 4; R = 2 when N ≤ 2) so each weight block
//! is decoded once per tile and there are R·N independent accumulator chains.

use std::arch::x86_64::*;

use super::{Activations, MatmulJob, WeightMatrix};
use crate::quant::{GgmlType, QK};

/// How far ahead of the current weight block to prefetch, in bytes.
const PREFETCH_AHEAD: usize = 1024;

const Q8_0: u8 = 0;
const Q4_0: u8 = 1;
const Q4_1: u8 = 2;

/// Runs `job` on AVX2.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn matmul(job: MatmulJob<'_>) {
    match job.w.dtype() {
        GgmlType::Q8_0 => quantized::<Q8_0>(job),
        GgmlType::Q4_0 => quantized::<Q4_0>(job),
        GgmlType::Q4_1 => quantized::<Q4_1>(job),
        GgmlType::F32 => float::<false>(job),
        GgmlType::F16 => float::<true>(job),
        other => unreachable!("invariant: WeightMatrix never holds {other:?}"),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

const fn block_bytes(fmt: u8) -> usize {
    match fmt {
        Q8_0 => 34,
        Q4_0 => 18,
        _ => 20,
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantized<const FMT: u8>(mut job: MatmulJob<'_>) {
    let batch = job.x.batch();
    let end = job.rows.end;
    let mut r = job.rows.start;
    while r < end {
        // Pair weight rows only when the batch fits one narrow tile: then every tile of the pass
        // covers the same two rows.
        let pair = end - r >= 2 && batch <= 2;
        let mut b0 = 0;
        while b0 < batch {
            let n = (batch - b0).min(4);
            let (w, x) = (job.w, job.x);
            match (n, pair) {
                (1, true) => store(&mut job, r, b0, quant_tile::<FMT, 2, 1>(w, x, r, b0)),
                (2, true) => store(&mut job, r, b0, quant_tile::<FMT, 2, 2>(w, x, r, b0)),
                (1, false) => store(&mut job, r, b0, quant_tile::<FMT, 1, 1>(w, x, r, b0)),
                (2, false) => store(&mut job, r, b0, quant_tile::<FMT, 1, 2>(w, x, r, b0)),
                (3, _) => store(&mut job, r, b0, quant_tile::<FMT, 1, 3>(w, x, r, b0)),
                _ => store(&mut job, r, b0, quant_tile::<FMT, 1, 4>(w, x, r, b0)),
            }
            b0 += n;
        }
        r += if pair { 2 } else { 1 };
    }
}

#[inline(always)]
fn store<const R: usize, const N: usize>(
    job: &mut MatmulJob<'_>,
    r: usize,
    b0: usize,
    v: [[f32; N]; R],
) {
    for (j, row) in v.iter().enumerate() {
        for (i, &value) in row.iter().enumerate() {
            job.store(b0 + i, r + j, value);
        }
    }
}

/// Dot products of weight rows `r0..r0+R` with batch rows `b0..b0+N`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quant_tile<const FMT: u8, const R: usize, const N: usize>(
    w: &WeightMatrix,
    x: &Activations,
    r0: usize,
    b0: usize,
) -> [[f32; N]; R] {
    let bb = block_bytes(FMT);
    let nb = w.cols() / QK;
    let mut wp = [std::ptr::null::<u8>(); R];
    for (j, p) in wp.iter_mut().enumerate() {
        *p = w.row_data(r0 + j).as_ptr();
    }
    let mut xq = [std::ptr::null::<i8>(); N];
    let mut xds = [std::ptr::null::<f32>(); N];
    for i in 0..N {
        xq[i] = x.q_row(b0 + i).as_ptr();
        xds[i] = x.ds_row(b0 + i).as_ptr();
    }
    let ones = _mm256_set1_epi16(1);
    let low4 = _mm256_set1_epi8(0x0f);
    // Shifts the upper 128-bit lane's copy of the nibbles right by 4 (high nibbles → elements 16..32).
    let nibble_shift = _mm256_setr_epi64x(0, 0, 4, 4);
    let mut acc = [[_mm256_setzero_ps(); N]; R];
    // Lane 1 accumulates the per-block correction: Q4_1 m_w·s_x, Q4_0 d_w·s_x (scaled by −8 at
    // the end). Lane 0 collects unused products.
    let mut off = [[_mm_setzero_ps(); N]; R];
    for blk in 0..nb {
        let mut xv = [_mm256_setzero_si256(); N];
        let mut xs = [_mm_setzero_ps(); N];
        for i in 0..N {
            // SAFETY: q_row has cols = nb · 32 codes and ds_row 2 · nb scales.
            xv[i] = _mm256_loadu_si256(xq[i].add(blk * QK) as *const __m256i);
            xs[i] = _mm_castpd_ps(_mm_load_sd(xds[i].add(2 * blk) as *const f64));
        }
        for j in 0..R {
            // SAFETY: the row holds nb blocks of bb bytes; every read below stays inside block blk.
            let p = wp[j].add(blk * bb);
            // Weights stream from DRAM for large matrices: ask for bytes ~1 KiB ahead (prefetches
            // never fault, so running past the row's end is harmless).
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_AHEAD) as *const i8);
            // [d_w, c_w, 0, 0] with c_w = m_w (Q4_1) or d_w (Q4_0, Q8_0).
            let head = if FMT == Q4_1 {
                (p as *const u32).read_unaligned() as i32
            } else {
                i32::from((p as *const u16).read_unaligned())
            };
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(head));
            let dm = if FMT == Q4_1 { dm } else { _mm_moveldup_ps(dm) };
            let wv = if FMT == Q8_0 {
                _mm256_loadu_si256(p.add(2) as *const __m256i)
            } else {
                let at = if FMT == Q4_1 { 4 } else { 2 };
                let raw = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.add(at) as *const __m128i));
                _mm256_and_si256(_mm256_srlv_epi64(raw, nibble_shift), low4)
            };
            let wabs = if FMT == Q8_0 {
                _mm256_sign_epi8(wv, wv)
            } else {
                wv
            };
            for i in 0..N {
                let xs_signed = if FMT == Q8_0 {
                    _mm256_sign_epi8(xv[i], wv)
                } else {
                    xv[i]
                };
                let pairs = _mm256_maddubs_epi16(wabs, xs_signed);
                let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                // [d_w·d_x, c_w·s_x, …]
                let prod = _mm_mul_ps(dm, xs[i]);
                acc[j][i] = _mm256_fmadd_ps(_mm256_broadcastss_ps(prod), sums, acc[j][i]);
                if FMT != Q8_0 {
                    off[j][i] = _mm_add_ps(off[j][i], prod);
                }
            }
        }
    }
    let correction = if FMT == Q4_0 { -8.0 } else { 1.0 };
    let mut out = [[0.0f32; N]; R];
    for j in 0..R {
        for i in 0..N {
            let c = if FMT == Q8_0 {
                0.0
            } else {
                _mm_cvtss_f32(_mm_shuffle_ps(off[j][i], off[j][i], 1)) * correction
            };
            out[j][i] = hsum(acc[j][i]) + c;
        }
    }
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn float<const HALF: bool>(mut job: MatmulJob<'_>) {
    let batch = job.x.batch();
    for r in job.rows.clone() {
        let mut b0 = 0;
        while b0 < batch {
            let n = (batch - b0).min(4);
            let (w, x) = (job.w, job.x);
            match n {
                1 => store(&mut job, r, b0, [float_tile::<HALF, 1>(w, x, r, b0)]),
                2 => store(&mut job, r, b0, [float_tile::<HALF, 2>(w, x, r, b0)]),
                3 => store(&mut job, r, b0, [float_tile::<HALF, 3>(w, x, r, b0)]),
                _ => store(&mut job, r, b0, [float_tile::<HALF, 4>(w, x, r, b0)]),
            }
            b0 += n;
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn float_tile<const HALF: bool, const N: usize>(
    w: &WeightMatrix,
    x: &Activations,
    r: usize,
    b0: usize,
) -> [f32; N] {
    let cols = w.cols();
    let row = w.row_data(r);
    let wp = row.as_ptr();
    let mut xp = [std::ptr::null::<f32>(); N];
    for (i, p) in xp.iter_mut().enumerate() {
        *p = x.row(b0 + i).as_ptr();
    }
    let mut acc = [_mm256_setzero_ps(); N];
    let full = cols / 8 * 8;
    let mut c = 0;
    while c < full {
        // SAFETY: c + 8 ≤ cols elements in both the weight row and every x row.
        let wv = if HALF {
            _mm256_cvtph_ps(_mm_loadu_si128(wp.add(c * 2) as *const __m128i))
        } else {
            _mm256_loadu_ps(wp.add(c * 4) as *const f32)
        };
        for i in 0..N {
            acc[i] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp[i].add(c)), acc[i]);
        }
        c += 8;
    }
    let mut out = [0.0f32; N];
    let mut tail = vec![0.0f32; cols - full];
    if !tail.is_empty() {
        let bytes_per = if HALF { 2 } else { 4 };
        let dtype = if HALF { GgmlType::F16 } else { GgmlType::F32 };
        crate::quant::dequantize_row(dtype, &row[full * bytes_per..], &mut tail)
            .expect("invariant: float types decode");
    }
    for i in 0..N {
        let xt = &x.row(b0 + i)[full..];
        out[i] = hsum(acc[i]) + tail.iter().zip(xt).map(|(a, b)| a * b).sum::<f32>();
    }
    out
}

/// Quantizes `x` (whole 32-blocks) to 8-bit codes `q`, scales `d` and `s = d · Σq` per block,
/// bit-identical to [`crate::quant::quantize_q8_block`].
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_activations(
    x: &[f32],
    q: &mut [i8],
    d: &mut [f32],
    s: &mut [f32],
    sum_in_f16: bool,
) {
    let nb = x.len() / QK;
    assert!(q.len() >= nb * QK && d.len() >= nb && s.len() >= nb);
    let sign = _mm256_set1_ps(-0.0);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for blk in 0..nb {
        // SAFETY: blk < nb, so all 32 floats and 32 codes of the block are in bounds.
        let src = x.as_ptr().add(blk * QK);
        let mut v = [_mm256_setzero_ps(); 4];
        let mut amax = _mm256_setzero_ps();
        for (k, vk) in v.iter_mut().enumerate() {
            *vk = _mm256_loadu_ps(src.add(8 * k));
            amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, *vk));
        }
        let m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
        let dv = _mm_cvtss_f32(m) / 127.0;
        let inv = _mm256_set1_ps(if dv != 0.0 { 1.0 / dv } else { 0.0 });
        let mut iv = [_mm256_setzero_si256(); 4];
        for k in 0..4 {
            // Round to nearest, ties to even (the default MXCSR mode).
            iv[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], inv));
        }
        let total = _mm256_add_epi32(
            _mm256_add_epi32(iv[0], iv[1]),
            _mm256_add_epi32(iv[2], iv[3]),
        );
        let t = _mm_add_epi32(
            _mm256_castsi256_si128(total),
            _mm256_extracti128_si256(total, 1),
        );
        let t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0b01_00_11_10));
        let t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0b10_11_00_01));
        let sum = _mm_cvtsi128_si32(t);
        let packed = _mm256_packs_epi16(
            _mm256_packs_epi32(iv[0], iv[1]),
            _mm256_packs_epi32(iv[2], iv[3]),
        );
        let packed = _mm256_permutevar8x32_epi32(packed, order);
        _mm256_storeu_si256(q.as_mut_ptr().add(blk * QK) as *mut __m256i, packed);
        d[blk] = super::activations::round_to_f16(dv);
        s[blk] = super::activations::block_sum(dv, d[blk], sum, sum_in_f16);
    }
}
