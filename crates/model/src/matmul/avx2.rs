//! x86-64 AVX2 + FMA + F16C kernels.
//!
//! Quantized weights: per 32-block, the 32 weight codes are multiplied with the 32 activation
//! codes by `vpmaddubsw` (u8 × i8 → pairs summed to i16) then `vpmaddwd` against ones (→ 8 × i32),
//! converted to f32 and accumulated with the block's `d_w · d_x` by FMA. `vpmaddubsw` needs an
//! unsigned left operand: 4- and 5-bit codes are already 0..=15 / 0..=31 (Q4_0's −8 and Q5_0's
//! −16 are applied afterwards through the activation block sum `s_x`), and Q8_0 uses |w| with the
//! sign moved onto x (`vpsignb`). A 5-bit code is its nibble OR 16 where its bit of `qh` is set.
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
const Q5_0: u8 = 3;
const Q5_1: u8 = 4;

/// Float weight kinds for [`float`].
const F32: u8 = 0;
const F16: u8 = 1;
const BF16: u8 = 2;

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
        GgmlType::Q5_0 => quantized::<Q5_0>(job),
        GgmlType::Q5_1 => quantized::<Q5_1>(job),
        GgmlType::F32 => float::<F32>(job),
        GgmlType::F16 => float::<F16>(job),
        GgmlType::BF16 => float::<BF16>(job),
        GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => {
            super::avx2_k::matmul(job)
        }
        other => unreachable!("invariant: WeightMatrix never holds {other:?}"),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}

const fn block_bytes(fmt: u8) -> usize {
    match fmt {
        Q8_0 => 34,
        Q4_0 => 18,
        Q4_1 => 20,
        Q5_0 => 22,
        _ => 24,
    }
}

/// Whether the format has a min `m` (stored as the f16 after `d`).
const fn has_min(fmt: u8) -> bool {
    fmt == Q4_1 || fmt == Q5_1
}

/// Byte offset of the 16 bytes of nibbles in a block.
const fn nibbles_at(fmt: u8) -> usize {
    match fmt {
        Q4_0 => 2,
        Q4_1 => 4,
        Q5_0 => 6,
        _ => 8,
    }
}

/// 16 in byte `j` where bit `j` of the little-endian `u32` at `p` is set, else 0: the fifth bits
/// of a Q5 block's codes.
///
/// # Safety
/// `p` must be readable for 4 bytes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fifth_bits(p: *const u8) -> __m256i {
    let qh = (p as *const i32).read_unaligned();
    // Byte j takes byte j / 8 of qh, then keeps only its bit j % 8.
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(qh),
        _mm256_setr_epi64x(
            0,
            0x0101_0101_0101_0101,
            0x0202_0202_0202_0202,
            0x0303_0303_0303_0303,
        ),
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    _mm256_and_si256(set, _mm256_set1_epi8(16))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantized<const FMT: u8>(mut job: MatmulJob<'_>) {
    let batch = job.x.batch();
    let (start, end) = (job.rows.start, job.rows.end);
    // Rows of whole groups of eight run on the interleaved layout at every batch size; a group
    // the job's range cuts is computed whole and only the job's rows stored. Rows past the last
    // whole group run on the file layout.
    let layout = job.w.interleaved();
    let covered = layout.map_or(0, |il| il.groups * 8);
    let file_rows = start.max(covered)..end;
    if let Some(il) = layout.filter(|_| start < covered) {
        let (p, nb) = (il.bytes.as_ptr(), job.w.cols() / QK);
        let groups = start / 8..end.min(covered).div_ceil(8);
        // A group of activation rows stays in L1 while the weight groups pass over it.
        let mut g0 = 0;
        while g0 < batch {
            let g1 = (g0 + BATCH_GROUP).min(batch);
            for g in groups.clone() {
                let mut b0 = g0;
                while b0 < g1 {
                    let n = (g1 - b0).min(4);
                    let x = job.x;
                    match n {
                        1 => store8(&mut job, g, b0, interleaved_tile::<FMT, 1>(p, nb, g, x, b0)),
                        2 => store8(&mut job, g, b0, interleaved_tile::<FMT, 2>(p, nb, g, x, b0)),
                        3 => store8(&mut job, g, b0, interleaved_tile::<FMT, 3>(p, nb, g, x, b0)),
                        _ => store8(&mut job, g, b0, interleaved_tile::<FMT, 4>(p, nb, g, x, b0)),
                    }
                    b0 += n;
                }
            }
            g0 = g1;
        }
    }
    for r in file_rows {
        let mut b0 = 0;
        while b0 < batch {
            let n = (batch - b0).min(4);
            let (w, x) = (job.w, job.x);
            match n {
                1 => store(&mut job, r, b0, quant_tile::<FMT, 1, 1>(w, x, r, b0)),
                2 => store(&mut job, r, b0, quant_tile::<FMT, 1, 2>(w, x, r, b0)),
                3 => store(&mut job, r, b0, quant_tile::<FMT, 1, 3>(w, x, r, b0)),
                _ => store(&mut job, r, b0, quant_tile::<FMT, 1, 4>(w, x, r, b0)),
            }
            b0 += n;
        }
    }
}

/// Activation rows kept in L1 while the weight rows pass over them.
const BATCH_GROUP: usize = 16;

/// Stores the products of rows `8g..8g+8` (one vector's lanes) with batch rows `b0..b0+N`, for
/// the rows inside the job's range.
#[inline(always)]
pub(super) unsafe fn store8<const N: usize>(
    job: &mut MatmulJob<'_>,
    g: usize,
    b0: usize,
    v: [__m256; N],
) {
    let rows = job.rows.clone();
    for (i, lanes) in v.iter().enumerate() {
        let mut out = [0.0f32; 8];
        _mm256_storeu_ps(out.as_mut_ptr(), *lanes);
        for (j, &value) in out.iter().enumerate() {
            if rows.contains(&(8 * g + j)) {
                job.store(b0 + i, 8 * g + j, value);
            }
        }
    }
}

/// The f16 values at `p` (eight of them) as f32.
#[inline(always)]
unsafe fn f16x8(p: *const u8) -> __m256 {
    _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
}

/// Dot products of the eight rows of group `g` (lanes) with batch rows `b0..b0+N`, on the
/// interleaved layout at `p` (see `interleaved.rs`). Per row and block: the exact integer sum
/// `T` of the block's code products, then `acc = fma(d_w·d_x, T, acc)` and (except Q8_0)
/// `acc = fma(c_w, s_x, acc)` with `c_w` = `m`, `−8·d` or `−16·d` — the same operations in the
/// same order whatever `N` is.
///
/// # Safety
/// `p` must hold the layout of a matrix with `nb` blocks per row and more than `g` groups, and the
/// activations `nb · 32` columns.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn interleaved_tile<const FMT: u8, const N: usize>(
    p: *const u8,
    nb: usize,
    g: usize,
    x: &Activations,
    b0: usize,
) -> [__m256; N] {
    use super::interleaved::{scales_len, stride};
    let dtype = match FMT {
        Q8_0 => GgmlType::Q8_0,
        Q4_0 => GgmlType::Q4_0,
        Q4_1 => GgmlType::Q4_1,
        Q5_0 => GgmlType::Q5_0,
        _ => GgmlType::Q5_1,
    };
    let (stride, fifth_at) = (stride(dtype), scales_len(dtype));
    let codes_at = fifth_at + if FMT == Q5_0 || FMT == Q5_1 { 32 } else { 0 };
    let ones = _mm256_set1_epi16(1);
    let low4 = _mm256_set1_epi8(0x0f);
    let bit4 = _mm256_set1_epi8(0x10);
    let mut xq = [std::ptr::null::<i8>(); N];
    let mut xds = [std::ptr::null::<f32>(); N];
    for i in 0..N {
        xq[i] = x.q_row(b0 + i).as_ptr();
        xds[i] = x.ds_row(b0 + i).as_ptr();
    }
    let mut acc = [_mm256_setzero_ps(); N];
    for blk in 0..nb {
        let at = p.add((g * nb + blk) * stride);
        _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(PREFETCH_AHEAD) as *const i8);
        let mut isum = [_mm256_setzero_si256(); N];
        // Adds chunk k's products (codes `w`, unsigned or for Q8_0 signed) to 16-bit sums.
        macro_rules! chunk {
            ($s16:ident, $w:expr, $k:expr) => {{
                let w = $w;
                let aw = if FMT == Q8_0 {
                    _mm256_sign_epi8(w, w)
                } else {
                    w
                };
                for i in 0..N {
                    let four = (xq[i].add(blk * QK + 4 * $k) as *const i32).read_unaligned();
                    let xb = _mm256_set1_epi32(four);
                    let xb = if FMT == Q8_0 {
                        _mm256_sign_epi8(xb, w)
                    } else {
                        xb
                    };
                    $s16[i] = _mm256_add_epi16($s16[i], _mm256_maddubs_epi16(aw, xb));
                }
            }};
        }
        if FMT == Q8_0 {
            // |w|·|x| pairs reach 2 · 128 · 127: widen after every chunk.
            for k in 0..8 {
                let mut s16 = [_mm256_setzero_si256(); N];
                chunk!(
                    s16,
                    _mm256_loadu_si256(at.add(codes_at + 32 * k) as *const __m256i),
                    k
                );
                for i in 0..N {
                    isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(s16[i], ones));
                }
            }
        } else {
            // A chunk adds at most 2 · 31 · 128 to a 16-bit lane (2 · 15 · 128 for 4-bit codes):
            // 5-bit codes widen after four chunks, 4-bit codes after all eight.
            let h = if FMT == Q5_0 || FMT == Q5_1 {
                _mm256_loadu_si256(at.add(fifth_at) as *const __m256i)
            } else {
                _mm256_setzero_si256()
            };
            // Bit k of each byte of h moved to bit 4 (shifts stay within each byte's bit 4).
            macro_rules! fifth {
                ($k:expr) => {
                    _mm256_and_si256(
                        match $k {
                            0 => _mm256_slli_epi16(h, 4),
                            1 => _mm256_slli_epi16(h, 3),
                            2 => _mm256_slli_epi16(h, 2),
                            3 => _mm256_slli_epi16(h, 1),
                            4 => h,
                            5 => _mm256_srli_epi16(h, 1),
                            6 => _mm256_srli_epi16(h, 2),
                            _ => _mm256_srli_epi16(h, 3),
                        },
                        bit4,
                    )
                };
            }
            let mut s16 = [_mm256_setzero_si256(); N];
            for v in 0..4 {
                let raw = _mm256_loadu_si256(at.add(codes_at + 32 * v) as *const __m256i);
                let mut lo = _mm256_and_si256(raw, low4);
                let mut hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
                if FMT == Q5_0 || FMT == Q5_1 {
                    lo = _mm256_or_si256(lo, fifth!(v));
                    hi = _mm256_or_si256(hi, fifth!(v + 4));
                }
                chunk!(s16, lo, v);
                chunk!(s16, hi, v + 4);
                if (FMT == Q5_0 || FMT == Q5_1) && v == 1 || v == 3 {
                    for i in 0..N {
                        isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(s16[i], ones));
                        s16[i] = _mm256_setzero_si256();
                    }
                }
            }
        }
        let d = f16x8(at);
        let c = match FMT {
            Q4_0 => _mm256_mul_ps(d, _mm256_set1_ps(-8.0)),
            Q5_0 => _mm256_mul_ps(d, _mm256_set1_ps(-16.0)),
            Q4_1 | Q5_1 => f16x8(at.add(16)),
            _ => d,
        };
        for i in 0..N {
            let ds = xds[i].add(2 * blk);
            let scale = _mm256_mul_ps(d, _mm256_broadcast_ss(&*ds));
            acc[i] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(isum[i]), acc[i]);
            if FMT != Q8_0 {
                acc[i] = _mm256_fmadd_ps(c, _mm256_broadcast_ss(&*ds.add(1)), acc[i]);
            }
        }
    }
    acc
}

/// For each weight row of `$job`, `$tile::<$K, N>(w, x, r, b0)` over the batch in tiles of up to
/// 4 rows (N = 4, then the 1–3 left), each tile's results stored. The loop the float and K-quant
/// kernels share (the 32-block quant kernels pair weight rows and have their own).
macro_rules! each_row_by_batch_tiles {
    ($job:ident, $tile:ident :: < $K:ident >) => {{
        let batch = $job.x.batch();
        for r in $job.rows.clone() {
            let mut b0 = 0;
            while b0 < batch {
                let n = (batch - b0).min(4);
                let (w, x) = ($job.w, $job.x);
                match n {
                    1 => super::avx2::store(&mut $job, r, b0, [$tile::<$K, 1>(w, x, r, b0)]),
                    2 => super::avx2::store(&mut $job, r, b0, [$tile::<$K, 2>(w, x, r, b0)]),
                    3 => super::avx2::store(&mut $job, r, b0, [$tile::<$K, 3>(w, x, r, b0)]),
                    _ => super::avx2::store(&mut $job, r, b0, [$tile::<$K, 4>(w, x, r, b0)]),
                }
                b0 += n;
            }
        }
    }};
}
pub(super) use each_row_by_batch_tiles;

#[inline(always)]
pub(super) fn store<const R: usize, const N: usize>(
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
    // Lane 1 accumulates the per-block correction: Q4_1/Q5_1 m_w·s_x, Q4_0/Q5_0 d_w·s_x (scaled
    // by −8/−16 at the end). Lane 0 collects unused products.
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
            // [d_w, c_w, 0, 0] with c_w = m_w (Q4_1, Q5_1) or d_w (Q4_0, Q5_0, Q8_0).
            let head = if has_min(FMT) {
                (p as *const u32).read_unaligned() as i32
            } else {
                i32::from((p as *const u16).read_unaligned())
            };
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(head));
            let dm = if has_min(FMT) {
                dm
            } else {
                _mm_moveldup_ps(dm)
            };
            let wv = if FMT == Q8_0 {
                _mm256_loadu_si256(p.add(2) as *const __m256i)
            } else {
                let at = nibbles_at(FMT);
                let raw = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.add(at) as *const __m128i));
                let low = _mm256_and_si256(_mm256_srlv_epi64(raw, nibble_shift), low4);
                if FMT == Q5_0 || FMT == Q5_1 {
                    // qh sits just before the nibbles.
                    _mm256_or_si256(low, fifth_bits(p.add(at - 4)))
                } else {
                    low
                }
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
    let correction = match FMT {
        Q4_0 => -8.0,
        Q5_0 => -16.0,
        _ => 1.0,
    };
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
unsafe fn float<const KIND: u8>(mut job: MatmulJob<'_>) {
    each_row_by_batch_tiles!(job, float_tile::<KIND>)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn float_tile<const KIND: u8, const N: usize>(
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
    // Independent FMA chains per batch row, so narrow tiles are not bound by FMA latency.
    let chains: usize = match N {
        1 => 4,
        2 => 2,
        _ => 1,
    };
    let mut acc = [[_mm256_setzero_ps(); N]; 4];
    let full = cols / 8 * 8;
    let mut c = 0;
    while c < full {
        // `chains` steps of 8 (fewer at the end of the row), one chain each.
        for chain in acc.iter_mut().take(chains) {
            if c >= full {
                break;
            }
            // SAFETY: c + 8 ≤ cols elements in both the weight row and every x row.
            let wv = load_float::<KIND>(wp, c);
            for (a, &p) in chain.iter_mut().zip(&xp) {
                *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(p.add(c)), *a);
            }
            c += 8;
        }
    }
    let mut sums = [_mm256_setzero_ps(); N];
    for (i, sum) in sums.iter_mut().enumerate() {
        *sum = _mm256_add_ps(
            _mm256_add_ps(acc[0][i], acc[1][i]),
            _mm256_add_ps(acc[2][i], acc[3][i]),
        );
    }
    let mut out = [0.0f32; N];
    let mut tail = vec![0.0f32; cols - full];
    if !tail.is_empty() {
        let (bytes_per, dtype) = match KIND {
            F16 => (2, GgmlType::F16),
            BF16 => (2, GgmlType::BF16),
            _ => (4, GgmlType::F32),
        };
        crate::quant::dequantize_row(dtype, &row[full * bytes_per..], &mut tail)
            .expect("invariant: float types decode");
    }
    for i in 0..N {
        let xt = &x.row(b0 + i)[full..];
        out[i] = hsum(sums[i]) + tail.iter().zip(xt).map(|(a, b)| a * b).sum::<f32>();
    }
    out
}

/// Eight weights of a float row from element `c` on, as f32.
///
/// # Safety
/// `wp` must hold at least `c + 8` elements of kind `KIND`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_float<const KIND: u8>(wp: *const u8, c: usize) -> __m256 {
    match KIND {
        F16 => _mm256_cvtph_ps(_mm_loadu_si128(wp.add(c * 2) as *const __m128i)),
        // bf16 is the top half of an f32: widen to 32 bits and shift into place.
        BF16 => _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(
            _mm_loadu_si128(wp.add(c * 2) as *const __m128i),
        ))),
        _ => _mm256_loadu_ps(wp.add(c * 4) as *const f32),
    }
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
