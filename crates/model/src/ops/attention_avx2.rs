//! The attention tile in explicit AVX2, for head dimensions 16, 32, 64, 128 and 256.
//!
//! Same tile and same two passes as the portable body in `attention.rs`, reorganised for memory
//! traffic and registers. In serving, the K/V rows of 16 sequences × hundreds of positions do not
//! fit any cache, so each row must be fetched once per tile, not once per query head:
//! - the rows of the tile's K/V head are located once per tile (f32 storage is read in place;
//!   f16 rows are converted once into a contiguous scratch copy);
//! - the query heads of a token that share the K/V head (the GQA group, up to 3 at a time) are
//!   processed together: each key row is loaded once for all of them, four positions at a time
//!   with one accumulator per (head, position), whose lanes are summed four scores at once (a
//!   transpose, then the lanes added in order);
//! - the same softmax as the portable tile;
//! - weighted V sum: the heads' output rows accumulate in registers (half a 64-wide row per
//!   pass for three heads) over all positions, each value row loaded once per pass, and are
//!   stored once;
//! - K and V rows are prefetched 16 positions ahead (blocks are scattered in memory).
//!
//! The arithmetic is the portable tile's, operation for operation (no FMA contraction, the
//! same summation orders), so the two tiles agree bit for bit: greedy decoding near a tie must
//! not flip with the CPU the engine runs on.

use std::arch::x86_64::*;

use super::attention::Tile;
use super::softmax;

/// Per-thread buffers of the fast tile.
#[derive(Default)]
pub(crate) struct FastScratch {
    scores: Vec<f32>,
    /// Offset of position `p`'s row in `k_src` / `v_src`.
    offsets: Vec<usize>,
    k_conv: Vec<f32>,
    v_conv: Vec<f32>,
}

/// Whether the fast tile handles `head_dim`.
pub(crate) fn supports(head_dim: usize) -> bool {
    matches!(head_dim, 16 | 32 | 64 | 128 | 256)
}

/// Runs the tile.
///
/// # Safety
/// AVX2, FMA and F16C must be available, `supports(head_dim)` must hold, and no other thread may
/// access the tile's (row, head) ranges of the output during the call.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn tile(tile: &Tile<'_>, s: &mut FastScratch) {
    match tile.geo.head_dim {
        16 => tile_c::<2, 2>(tile, s),
        32 => tile_c::<4, 4>(tile, s),
        64 => tile_c::<8, 4>(tile, s),
        128 => tile_c::<16, 4>(tile, s),
        _ => tile_c::<32, 4>(tile, s),
    }
}

/// The tile with `C = head_dim / 8` vectors per row, `W` of them per value pass.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_c<const C: usize, const W: usize>(tile: &Tile<'_>, s: &mut FastScratch) {
    let Tile {
        geo,
        kv,
        layer,
        chunk,
        kv_head,
        ref tokens,
        out,
        out_row0,
    } = *tile;
    let (hd, qd, group) = (geo.head_dim, geo.q_dim(), geo.group());
    debug_assert_eq!(hd, 8 * C);
    let bs = kv.block_size_tokens();
    let span = chunk.start_pos + tokens.end; // positions lo..span are read
    let lo = geo.first_visible(chunk.start_pos + tokens.start);
    let h0 = kv_head * group;

    // Where each position's K and V rows are.
    s.offsets.clear();
    let (k_src, v_src): (&[f32], &[f32]) = match kv.layer_f32(layer) {
        Some((k, v)) => {
            s.offsets.extend((lo..span).map(|p| {
                let block = chunk.block_table[p / bs] as usize;
                kv.row_offset(block, p % bs, kv_head)
            }));
            (k, v)
        }
        None => {
            s.k_conv.resize((span - lo) * hd, 0.0);
            s.v_conv.resize((span - lo) * hd, 0.0);
            if let Some((k16, v16)) = kv.layer_f16_bits(layer) {
                for p in lo..span {
                    let block = chunk.block_table[p / bs] as usize;
                    let at = kv.row_offset(block, p % bs, kv_head);
                    let (k, v) = (&k16[at..at + hd], &v16[at..at + hd]);
                    let i = p - lo;
                    let (kr, vr) = (
                        &mut s.k_conv[i * hd..(i + 1) * hd],
                        &mut s.v_conv[i * hd..(i + 1) * hd],
                    );
                    for c in 0..C {
                        // SAFETY: every slice holds 8 * C = hd values; F16C is enabled here.
                        let kc = _mm_loadu_si128(k.as_ptr().add(8 * c) as *const __m128i);
                        let vc = _mm_loadu_si128(v.as_ptr().add(8 * c) as *const __m128i);
                        _mm256_storeu_ps(kr.as_mut_ptr().add(8 * c), _mm256_cvtph_ps(kc));
                        _mm256_storeu_ps(vr.as_mut_ptr().add(8 * c), _mm256_cvtph_ps(vc));
                    }
                }
            } else {
                for p in lo..span {
                    let block = chunk.block_table[p / bs] as usize;
                    let i = p - lo;
                    let (kr, vr) = (
                        &mut s.k_conv[i * hd..(i + 1) * hd],
                        &mut s.v_conv[i * hd..(i + 1) * hd],
                    );
                    // Storage that is not f32 converts into the buffer it is given.
                    kv.key(layer, block, p % bs, kv_head, kr);
                    kv.value(layer, block, p % bs, kv_head, vr);
                }
            }
            s.offsets.extend((0..span - lo).map(|i| i * hd));
            (&s.k_conv, &s.v_conv)
        }
    };
    // Every row is inside its pool: checked once here so the loops can use raw pointers.
    assert!(s
        .offsets
        .iter()
        .all(|&o| o + hd <= k_src.len() && o + hd <= v_src.len()));
    let stride = span - lo;
    s.scores.resize(3 * stride, 0.0);
    let scale = geo.scale;
    for t in tokens.clone() {
        // Row `i` of `offsets` is position `lo + i`; this token reads `first..=pos`.
        let pos = chunk.start_pos + t;
        let first = geo.first_visible(pos);
        let rows = Rows {
            k: k_src.as_ptr(),
            v: v_src.as_ptr(),
            offsets: &s.offsets[first - lo..pos + 1 - lo],
        };
        let len = pos + 1 - first;
        let mut j = 0;
        while j < group {
            let qb = (group - j).min(3);
            let mut q = [std::ptr::null::<f32>(); 3];
            let mut o = [std::ptr::null_mut::<f32>(); 3];
            for i in 0..qb {
                let h = h0 + j + i;
                q[i] = chunk.q[t * qd + h * hd..t * qd + (h + 1) * hd].as_ptr();
                // SAFETY: the caller guarantees exclusive access to this (row, head).
                o[i] = out.slice((out_row0 + t) * qd + h * hd, hd).as_mut_ptr();
            }
            let sc = &mut s.scores[..];
            match qb {
                1 => heads::<C, W, 1>(&rows, [q[0]], [o[0]], len, scale, sc, stride),
                2 => heads::<C, W, 2>(&rows, [q[0], q[1]], [o[0], o[1]], len, scale, sc, stride),
                _ => heads::<C, W, 3>(&rows, q, o, len, scale, sc, stride),
            }
            j += qb;
        }
    }
}

/// The tile's K/V rows: position `p` at `k + offsets[p]` and `v + offsets[p]`, `8 * C` values.
struct Rows<'a> {
    k: *const f32,
    v: *const f32,
    offsets: &'a [usize],
}

/// Attention of `Q` query heads of one token over the `len` rows of `rows`: `q[i]` and `o[i]` point
/// at `8 * C` values; `scores` holds `Q` rows of `stride ≥ len`.
///
/// Every value is computed with the same operations in the same order as the portable tile
/// (`dot_portable`'s eight lanes, multiply then add, lanes summed in order; the same softmax;
/// `o += w·v` position after position), so both tiles give bit-identical outputs and the model's
/// greedy continuations do not depend on the CPU.
#[inline]
#[target_feature(enable = "avx2,fma")]
// Index loops over the small register arrays read best as they are (several arrays per index).
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn heads<const C: usize, const W: usize, const Q: usize>(
    rows: &Rows<'_>,
    q: [*const f32; Q],
    o: [*mut f32; Q],
    len: usize,
    scale: f32,
    scores: &mut [f32],
    stride: usize,
) {
    debug_assert!(len <= stride && scores.len() >= Q * stride && len <= rows.offsets.len());
    let (kp, vp, offs) = (rows.k, rows.v, rows.offsets);
    let sp = scores.as_mut_ptr();
    let vscale = _mm_set1_ps(scale);
    // Scores, four positions at a time, every key row loaded once for the Q heads.
    let mut p = 0;
    while p + 4 <= len {
        for ahead in p + PREFETCH_POSITIONS..(p + PREFETCH_POSITIONS + 4).min(len) {
            prefetch_row::<C>(kp.add(offs[ahead]));
        }
        let kr = [
            kp.add(offs[p]),
            kp.add(offs[p + 1]),
            kp.add(offs[p + 2]),
            kp.add(offs[p + 3]),
        ];
        let mut acc = [[_mm256_setzero_ps(); 4]; Q];
        for c in 0..C {
            for (i, row) in kr.iter().enumerate() {
                // SAFETY: rows and query heads hold 8 * C values (checked by the caller).
                let k = _mm256_loadu_ps(row.add(8 * c));
                for h in 0..Q {
                    let prod = _mm256_mul_ps(_mm256_loadu_ps(q[h].add(8 * c)), k);
                    acc[h][i] = _mm256_add_ps(acc[h][i], prod);
                }
            }
        }
        for (h, a) in acc.iter().enumerate() {
            _mm_storeu_ps(sp.add(h * stride + p), _mm_mul_ps(lane_sums4(*a), vscale));
        }
        p += 4;
    }
    while p < len {
        let row = kp.add(offs[p]);
        for h in 0..Q {
            let mut a = _mm256_setzero_ps();
            for c in 0..C {
                let prod = _mm256_mul_ps(
                    _mm256_loadu_ps(q[h].add(8 * c)),
                    _mm256_loadu_ps(row.add(8 * c)),
                );
                a = _mm256_add_ps(a, prod);
            }
            *sp.add(h * stride + p) = lane_sum(a) * scale;
        }
        p += 1;
    }
    for h in 0..Q {
        softmax(std::slice::from_raw_parts_mut(sp.add(h * stride), len));
    }
    // Weighted value sums, W vectors of the row per pass, each value row loaded once per pass.
    let mut c0 = 0;
    while c0 < C {
        let mut acc = [[_mm256_setzero_ps(); W]; Q];
        for (p, &off) in offs[..len].iter().enumerate() {
            if c0 == 0 && p + PREFETCH_POSITIONS < len {
                prefetch_row::<C>(vp.add(offs[p + PREFETCH_POSITIONS]));
            }
            let row = vp.add(off + 8 * c0);
            let mut w = [_mm256_setzero_ps(); Q];
            for (h, w) in w.iter_mut().enumerate() {
                *w = _mm256_broadcast_ss(&*sp.add(h * stride + p));
            }
            for c in 0..W {
                let v = _mm256_loadu_ps(row.add(8 * c));
                for h in 0..Q {
                    acc[h][c] = _mm256_add_ps(acc[h][c], _mm256_mul_ps(w[h], v));
                }
            }
        }
        for h in 0..Q {
            for c in 0..W {
                _mm256_storeu_ps(o[h].add(8 * (c0 + c)), acc[h][c]);
            }
        }
        c0 += W;
    }
}

/// Positions ahead of the current one whose K (or V) rows are prefetched. Rows come from memory
/// in serving (the KV of all sequences is far larger than the caches) and blocks are scattered,
/// so the hardware prefetchers lose the stream at every block boundary.
const PREFETCH_POSITIONS: usize = 16;

/// Asks for the cache lines of one row of `8 * C` floats.
#[inline(always)]
unsafe fn prefetch_row<const C: usize>(row: *const f32) {
    // 16 floats per 64-byte line; prefetches never fault.
    for line in 0..C.div_ceil(2) {
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(16 * line) as *const i8);
    }
}

/// The sums of the eight lanes of each of four vectors, each added in lane order
/// (`((l0 + l1) + l2) + …`, as `dot_portable` sums its lanes), as one 4-lane vector.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn lane_sums4(a: [__m256; 4]) -> __m128 {
    // Transpose: column j of the four vectors becomes one 4-lane vector per lane j.
    let t0 = _mm256_unpacklo_ps(a[0], a[1]); // a0_0 a1_0 a0_1 a1_1 | a0_4 a1_4 a0_5 a1_5
    let t1 = _mm256_unpackhi_ps(a[0], a[1]); // a0_2 a1_2 a0_3 a1_3 | a0_6 a1_6 a0_7 a1_7
    let t2 = _mm256_unpacklo_ps(a[2], a[3]);
    let t3 = _mm256_unpackhi_ps(a[2], a[3]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2); // lanes 0 | 4
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2); // lanes 1 | 5
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3); // lanes 2 | 6
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3); // lanes 3 | 7
    let lo = |v: __m256| _mm256_castps256_ps128(v);
    let hi = |v: __m256| _mm256_extractf128_ps::<1>(v);
    let mut s = _mm_add_ps(lo(u0), lo(u1));
    s = _mm_add_ps(s, lo(u2));
    s = _mm_add_ps(s, lo(u3));
    s = _mm_add_ps(s, hi(u0));
    s = _mm_add_ps(s, hi(u1));
    s = _mm_add_ps(s, hi(u2));
    _mm_add_ps(s, hi(u3))
}

/// The lanes of `v` added in order.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn lane_sum(v: __m256) -> f32 {
    let mut lanes = [0.0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), v);
    lanes[1..].iter().fold(lanes[0], |s, &x| s + x)
}
