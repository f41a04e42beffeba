//! x86-64 AVX2 + FMA + F16C kernels for the K-quants (Q2_K..Q6_K) against Q8_K-like activations
//! (one f32 scale `d_x` per 256 elements, code sums per 16; see [`super::Activations`]).
//!
//! Per weight super-block and batch row the kernel forms exact i32 vectors
//! `sumi = Σ_chunks vpmaddwd(vpmaddubsw(w, q_x), sc)` over the eight 32-element chunks and, for
//! types with mins, `msum = vpmaddwd(m, bsums)`, then `acc += (d·d_x)·sumi − (dmin·d_x)·msum`
//! by FMA: two FMAs per 256 elements, the rest integer. `vpmaddubsw` needs unsigned weight codes,
//! so Q6_K's `q − 32` and Q3_K's `q − 4` stay unsigned (0..=63, 0..=7) and their offsets enter
//! through the activation code sums: `sumi` starts at `−32·Σ_g sc_g·bsum_g` (resp. `−4·…`).
//!
//! Scales: Q4_K/Q5_K have one scale per 32-chunk (broadcast over all 16 i16 lanes); Q2_K, Q3_K
//! and Q6_K have one per 16 elements, i.e. one per 128-bit lane of a chunk.
//!
//! Ranges (no saturation or overflow): `vpmaddubsw` pairs ≤ 2·63·127 = 16002 < 2^15; a chunk's
//! `vpmaddwd` lane ≤ 2·16002·128 ≈ 4.1e6, eight chunks plus the offset < 2^26.
//!
//! Tiling: one weight row × up to 4 batch rows, so each block is decoded once per 4 rows. Q4_K
//! and Q6_K run their whole groups of eight rows on the interleaved layout instead
//! (`avx2_k_interleaved.rs`, every batch size) and only the rows past them here.

use std::arch::x86_64::*;

use super::avx2::{each_row_by_batch_tiles, hsum};
use super::{Activations, MatmulJob, WeightMatrix};
use crate::quant::{GgmlType, QK_K};

/// How far ahead of the current weight block to prefetch, in bytes.
const PREFETCH_AHEAD: usize = 1024;

/// Code sums per super-block in the activations.
const BSUMS: usize = QK_K / 16;

const Q2K: u8 = 0;
const Q3K: u8 = 1;
const Q4K: u8 = 2;
const Q5K: u8 = 3;
const Q6K: u8 = 4;

const fn block_bytes(fmt: u8) -> usize {
    match fmt {
        Q2K => 84,
        Q3K => 110,
        Q4K => 144,
        Q5K => 176,
        _ => 210,
    }
}

const fn has_min(fmt: u8) -> bool {
    matches!(fmt, Q2K | Q4K | Q5K)
}

/// Runs a K-quant `job` on AVX2.
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn matmul(job: MatmulJob<'_>) {
    match job.w.dtype() {
        GgmlType::Q2_K => rows::<Q2K>(job),
        GgmlType::Q3_K => rows::<Q3K>(job),
        GgmlType::Q4_K => with_layout::<Q4K, false>(job),
        GgmlType::Q5_K => rows::<Q5K>(job),
        GgmlType::Q6_K => with_layout::<Q6K, true>(job),
        other => unreachable!("invariant: not a K-quant: {other:?}"),
    }
}

/// Q4_K and Q6_K: whole groups of eight rows on the interleaved layout at every batch size (see
/// `avx2_k_interleaved.rs`), the rows past the last whole group on the file layout.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn with_layout<const FMT: u8, const Q6: bool>(mut job: MatmulJob<'_>) {
    let layout = job.w.interleaved();
    let covered = layout.map_or(0, |il| il.groups * 8);
    if let Some(il) = layout.filter(|_| job.rows.start < covered) {
        super::avx2_k_interleaved::groups::<Q6>(&mut job, il);
    }
    job.rows = job.rows.start.max(covered)..job.rows.end;
    rows::<FMT>(job)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows<const FMT: u8>(mut job: MatmulJob<'_>) {
    each_row_by_batch_tiles!(job, tile::<FMT>)
}

/// One block's activation operands for `N` batch rows: codes and code sums at the block.
struct XBlock<const N: usize> {
    q: [*const i8; N],
    bsums: [*const i16; N],
}

/// Integer partial sums of one weight block with `N` batch rows.
struct Sums<const N: usize> {
    sumi: [__m256i; N],
    msum: [__m256i; N],
}

/// Dot products of weight row `r` with batch rows `b0..b0+N`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const FMT: u8, const N: usize>(
    w: &WeightMatrix,
    x: &Activations,
    r: usize,
    b0: usize,
) -> [f32; N] {
    let bb = block_bytes(FMT);
    let nb = w.cols() / QK_K;
    let wp = w.row_data(r).as_ptr();
    let mut xq = [std::ptr::null::<i8>(); N];
    let mut xb = [std::ptr::null::<i16>(); N];
    let mut xd = [std::ptr::null::<f32>(); N];
    for i in 0..N {
        xq[i] = x.q_row(b0 + i).as_ptr();
        xb[i] = x.bsums_row(b0 + i).as_ptr();
        xd[i] = x.d_row(b0 + i).as_ptr();
    }
    let mut acc = [_mm256_setzero_ps(); N];
    for blk in 0..nb {
        // SAFETY: the row holds nb blocks of bb bytes; the activation rows hold nb · 256 codes,
        // nb · 16 sums and nb scales. Every read below stays inside block blk.
        let p = wp.add(blk * bb);
        // Weights stream from memory for large matrices; prefetches never fault.
        for off in (0..bb).step_by(64) {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(PREFETCH_AHEAD + off) as *const i8);
        }
        let mut xs = XBlock {
            q: [std::ptr::null(); N],
            bsums: [std::ptr::null(); N],
        };
        for i in 0..N {
            xs.q[i] = xq[i].add(blk * QK_K);
            xs.bsums[i] = xb[i].add(blk * BSUMS);
        }
        let mut s = Sums {
            sumi: [_mm256_setzero_si256(); N],
            msum: [_mm256_setzero_si256(); N],
        };
        let (d, dmin) = match FMT {
            Q2K => q2_k(p, &xs, &mut s),
            Q3K => q3_k(p, &xs, &mut s),
            Q4K => q4_k::<false, N>(p, &xs, &mut s),
            Q5K => q4_k::<true, N>(p, &xs, &mut s),
            _ => q6_k(p, &xs, &mut s),
        };
        for i in 0..N {
            let dx = *xd[i].add(blk);
            let main = _mm256_cvtepi32_ps(s.sumi[i]);
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d * dx), main, acc[i]);
            if has_min(FMT) {
                let mins = _mm256_cvtepi32_ps(s.msum[i]);
                acc[i] = _mm256_fnmadd_ps(_mm256_set1_ps(dmin * dx), mins, acc[i]);
            }
        }
    }
    let mut out = [0.0f32; N];
    for (o, a) in out.iter_mut().zip(acc) {
        *o = hsum(a);
    }
    out
}

#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

#[inline(always)]
unsafe fn read_u32(p: *const u8) -> u32 {
    (p as *const u32).read_unaligned()
}

/// The f16 pair at `p` as `(first, second)` f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_pair(p: *const u8) -> (f32, f32) {
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(read_u32(p) as i32));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// The f16 at `p` as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_one(p: *const u8) -> f32 {
    let bits = (p as *const u16).read_unaligned();
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// `pshufb` control that broadcasts 16-bit lane `j` of each 128-bit half.
#[inline(always)]
unsafe fn pick_word(j: usize) -> __m256i {
    _mm256_set1_epi16((((2 * j + 1) << 8) | (2 * j)) as i16)
}

/// `pshufb` control that zero-extends byte `a` into every 16-bit lane of the low half and byte
/// `b` into the high half.
#[inline(always)]
unsafe fn pick_byte_u16(a: usize, b: usize) -> __m256i {
    let lane = |i: usize| (0x8000 | i) as u16 as i16;
    _mm256_set_m128i(_mm_set1_epi16(lane(b)), _mm_set1_epi16(lane(a)))
}

/// `pshufb` control that puts byte `a` in the high byte of every 16-bit lane of the low half
/// and byte `b` in the high half (low bytes zero): an arithmetic shift right by 8 then
/// sign-extends them.
#[inline(always)]
unsafe fn pick_byte_hi(a: usize, b: usize) -> __m256i {
    let lane = |i: usize| ((i << 8) | 0x80) as i16;
    _mm256_set_m128i(_mm_set1_epi16(lane(b)), _mm_set1_epi16(lane(a)))
}

/// Adds `vpmaddwd(vpmaddubsw(w, x_chunk), sc)` for chunk `c` to every batch row's `sumi`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn chunk<const N: usize>(
    w: __m256i,
    sc: __m256i,
    c: usize,
    xs: &XBlock<N>,
    s: &mut Sums<N>,
) {
    for i in 0..N {
        let xv = _mm256_loadu_si256(xs.q[i].add(32 * c) as *const __m256i);
        let dot = _mm256_madd_epi16(_mm256_maddubs_epi16(w, xv), sc);
        s.sumi[i] = _mm256_add_epi32(s.sumi[i], dot);
    }
}

/// `vpmaddwd(v, bsums)` for every batch row: `Σ_g v_g · bsum_g` spread over 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_bsums<const N: usize>(v: __m256i, xs: &XBlock<N>) -> [__m256i; N] {
    let mut out = [_mm256_setzero_si256(); N];
    for (o, &b) in out.iter_mut().zip(&xs.bsums) {
        *o = _mm256_madd_epi16(v, _mm256_loadu_si256(b as *const __m256i));
    }
    out
}

/// Q4_K (`HIGH = false`) and Q5_K (`HIGH = true`, a fifth bit from `qh`). Returns `(d, dmin)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k<const HIGH: bool, const N: usize>(
    p: *const u8,
    xs: &XBlock<N>,
    s: &mut Sums<N>,
) -> (f32, f32) {
    let (d, dmin) = f16_pair(p);
    // The 6-bit scales and mins (layout in quant::k_quants::unpack_scales_mins), four per u32.
    let (a, b, c) = (read_u32(p.add(4)), read_u32(p.add(8)), read_u32(p.add(12)));
    let sc_lo = a & 0x3f3f_3f3f;
    let sc_hi = (c & 0x0f0f_0f0f) | ((a >> 2) & 0x3030_3030);
    let m_lo = b & 0x3f3f_3f3f;
    let m_hi = ((c >> 4) & 0x0f0f_0f0f) | ((b >> 2) & 0x3030_3030);
    let sc = _mm_setr_epi32(sc_lo as i32, sc_hi as i32, 0, 0);
    let sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sc));
    let mins = _mm_setr_epi32(m_lo as i32, m_hi as i32, 0, 0);
    // Each 32-chunk's min, once per 16-element code sum.
    let mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mins, mins));
    s.msum = dot_bsums(mins16, xs);
    let low4 = _mm256_set1_epi8(0x0f);
    let bit4 = _mm256_set1_epi8(0x10);
    let qs = if HIGH { p.add(48) } else { p.add(16) };
    let mut qh = if HIGH {
        load(p.add(16))
    } else {
        _mm256_setzero_si256()
    };
    for k in 0..4 {
        let raw = load(qs.add(32 * k));
        let mut lo = _mm256_and_si256(raw, low4);
        let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(raw), low4);
        if HIGH {
            // Chunk 2k's fifth bits are bit 2k of qh, chunk 2k+1's bit 2k+1; qh is shifted down
            // two bits per step so they sit at bits 0 and 1.
            lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16::<4>(qh), bit4));
            hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16::<3>(qh), bit4));
            qh = _mm256_srli_epi16::<2>(qh);
        }
        chunk(
            lo,
            _mm256_shuffle_epi8(sc16, pick_word(2 * k)),
            2 * k,
            xs,
            s,
        );
        chunk(
            hi,
            _mm256_shuffle_epi8(sc16, pick_word(2 * k + 1)),
            2 * k + 1,
            xs,
            s,
        );
    }
    (d, dmin)
}

/// Q6_K. Returns `(d, 0)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k<const N: usize>(p: *const u8, xs: &XBlock<N>, s: &mut Sums<N>) -> (f32, f32) {
    let d = f16_one(p.add(208));
    let scb = _mm_loadu_si128(p.add(192) as *const __m128i);
    let offset = dot_bsums(_mm256_cvtepi8_epi16(scb), xs);
    for (sumi, off) in s.sumi.iter_mut().zip(offset) {
        *sumi = _mm256_sub_epi32(*sumi, _mm256_slli_epi32::<5>(off));
    }
    let scb = _mm256_broadcastsi128_si256(scb);
    let low4 = _mm256_set1_epi8(0x0f);
    let top2 = _mm256_set1_epi8(0x30);
    for n in 0..2 {
        let ql0 = load(p.add(64 * n));
        let ql1 = load(p.add(64 * n + 32));
        let qh = load(p.add(128 + 32 * n));
        let codes = [
            _mm256_or_si256(
                _mm256_and_si256(ql0, low4),
                _mm256_and_si256(_mm256_slli_epi16::<4>(qh), top2),
            ),
            _mm256_or_si256(
                _mm256_and_si256(ql1, low4),
                _mm256_and_si256(_mm256_slli_epi16::<2>(qh), top2),
            ),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), low4),
                _mm256_and_si256(qh, top2),
            ),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), low4),
                _mm256_and_si256(_mm256_srli_epi16::<2>(qh), top2),
            ),
        ];
        for (k, &w) in codes.iter().enumerate() {
            let c = 4 * n + k;
            let sc =
                _mm256_srai_epi16::<8>(_mm256_shuffle_epi8(scb, pick_byte_hi(2 * c, 2 * c + 1)));
            chunk(w, sc, c, xs, s);
        }
    }
    (d, 0.0)
}

/// Q3_K. Returns `(d, 0)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3_k<const N: usize>(p: *const u8, xs: &XBlock<N>, s: &mut Sums<N>) -> (f32, f32) {
    let d = f16_one(p.add(108));
    // The 16 packed 6-bit scales (layout in quant::k_quants::q3_k), four per u32, minus 32.
    let (a, b, c) = (
        read_u32(p.add(96)),
        read_u32(p.add(100)),
        read_u32(p.add(104)),
    );
    let m4 = 0x0f0f_0f0f;
    let m2 = 0x0303_0303;
    let s0 = (a & m4) | ((c & m2) << 4);
    let s1 = (b & m4) | (((c >> 2) & m2) << 4);
    let s2 = ((a >> 4) & m4) | (((c >> 4) & m2) << 4);
    let s3 = ((b >> 4) & m4) | (((c >> 6) & m2) << 4);
    let scb = _mm_sub_epi8(
        _mm_setr_epi32(s0 as i32, s1 as i32, s2 as i32, s3 as i32),
        _mm_set1_epi8(32),
    );
    let offset = dot_bsums(_mm256_cvtepi8_epi16(scb), xs);
    for (sumi, off) in s.sumi.iter_mut().zip(offset) {
        *sumi = _mm256_sub_epi32(*sumi, _mm256_slli_epi32::<2>(off));
    }
    let scb = _mm256_broadcastsi128_si256(scb);
    let low2 = _mm256_set1_epi8(3);
    let bit2 = _mm256_set1_epi8(4);
    // Chunk c's high bits are bit c of hmask; shifted down one bit per chunk.
    let mut hm = load(p);
    for n in 0..2 {
        let mut qs = load(p.add(32 + 32 * n));
        for j in 0..4 {
            let c = 4 * n + j;
            let high = _mm256_and_si256(_mm256_slli_epi16::<2>(hm), bit2);
            let w = _mm256_or_si256(_mm256_and_si256(qs, low2), high);
            qs = _mm256_srli_epi16::<2>(qs);
            hm = _mm256_srli_epi16::<1>(hm);
            let sc =
                _mm256_srai_epi16::<8>(_mm256_shuffle_epi8(scb, pick_byte_hi(2 * c, 2 * c + 1)));
            chunk(w, sc, c, xs, s);
        }
    }
    (d, 0.0)
}

/// Q2_K. Returns `(d, dmin)`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2_k<const N: usize>(p: *const u8, xs: &XBlock<N>, s: &mut Sums<N>) -> (f32, f32) {
    let (d, dmin) = f16_pair(p.add(80));
    let sb = _mm_loadu_si128(p as *const __m128i);
    let nib = _mm_set1_epi8(0x0f);
    let scb = _mm256_broadcastsi128_si256(_mm_and_si128(sb, nib));
    let mins = _mm_and_si128(_mm_srli_epi16::<4>(sb), nib);
    s.msum = dot_bsums(_mm256_cvtepu8_epi16(mins), xs);
    let low2 = _mm256_set1_epi8(3);
    for n in 0..2 {
        let mut qs = load(p.add(16 + 32 * n));
        for j in 0..4 {
            let c = 4 * n + j;
            let w = _mm256_and_si256(qs, low2);
            qs = _mm256_srli_epi16::<2>(qs);
            chunk(
                w,
                _mm256_shuffle_epi8(scb, pick_byte_u16(2 * c, 2 * c + 1)),
                c,
                xs,
                s,
            );
        }
    }
    (d, dmin)
}

/// Q8_K-like quantization of `x` (whole 256-blocks), bit-identical to
/// [`super::activations::quantize_q8k_scalar`].
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quantize_q8k(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    let nb = x.len() / QK_K;
    assert!(q.len() >= nb * QK_K && d.len() >= nb);
    let sign = _mm256_set1_ps(-0.0);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (blk, scale) in d.iter_mut().enumerate().take(nb) {
        // SAFETY: blk < nb, so all 256 floats and 256 codes of the block are in bounds.
        let src = x.as_ptr().add(blk * QK_K);
        let dst = q.as_mut_ptr().add(blk * QK_K);
        let mut amax = _mm256_setzero_ps();
        for k in 0..QK_K / 8 {
            amax = _mm256_max_ps(
                amax,
                _mm256_andnot_ps(sign, _mm256_loadu_ps(src.add(8 * k))),
            );
        }
        let m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
        if m == 0.0 {
            *scale = 0.0;
            std::ptr::write_bytes(dst, 0, QK_K);
            continue;
        }
        let iscale = 127.0 / m;
        let inv = _mm256_set1_ps(iscale);
        for c in 0..QK_K / 32 {
            let mut iv = [_mm256_setzero_si256(); 4];
            for (k, v) in iv.iter_mut().enumerate() {
                // Round to nearest, ties to even (the default MXCSR mode).
                let xv = _mm256_loadu_ps(src.add(32 * c + 8 * k));
                *v = _mm256_cvtps_epi32(_mm256_mul_ps(xv, inv));
            }
            let packed = _mm256_packs_epi16(
                _mm256_packs_epi32(iv[0], iv[1]),
                _mm256_packs_epi32(iv[2], iv[3]),
            );
            let packed = _mm256_permutevar8x32_epi32(packed, order);
            _mm256_storeu_si256(dst.add(32 * c) as *mut __m256i, packed);
        }
        *scale = 1.0 / iscale;
    }
}
