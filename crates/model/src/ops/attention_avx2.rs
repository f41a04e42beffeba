//! The attention tile on AVX2+FMA, for head dimensions that are a multiple of 8 (up to 128).
//!
//! Same tile and same two passes as the portable body in `attention.rs`, reorganised so the work
//! stays in registers:
//! - the rows of the tile's K/V head are located once per tile (f32 storage is read in place;
//!   f16 rows are converted once into a contiguous scratch copy);
//! - scores: per query, its `head_dim` values (pre-scaled by `1/sqrt(head_dim)`) live in
//!   `head_dim / 8` registers, four positions are dotted at a time with one accumulator each, and
//!   the four sums are reduced together (one horizontal-add tree for four scores);
//! - softmax per query over its causal span;
//! - weighted V sum: per query, the output row accumulates in registers over all positions and
//!   is stored once (no read-modify-write of the output per position).

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
    head_dim.is_multiple_of(8) && (8..=128).contains(&head_dim)
}

/// Runs the tile.
///
/// # Safety
/// AVX2 and FMA must be available, `supports(head_dim)` must hold, and no other thread may access
/// the tile's (row, head) ranges of the output during the call.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn tile(tile: &Tile<'_>, s: &mut FastScratch) {
    match tile.geo.head_dim / 8 {
        1 => tile_c::<1>(tile, s),
        2 => tile_c::<2>(tile, s),
        3 => tile_c::<3>(tile, s),
        4 => tile_c::<4>(tile, s),
        5 => tile_c::<5>(tile, s),
        6 => tile_c::<6>(tile, s),
        7 => tile_c::<7>(tile, s),
        8 => tile_c::<8>(tile, s),
        9 => tile_c::<9>(tile, s),
        10 => tile_c::<10>(tile, s),
        11 => tile_c::<11>(tile, s),
        12 => tile_c::<12>(tile, s),
        13 => tile_c::<13>(tile, s),
        14 => tile_c::<14>(tile, s),
        15 => tile_c::<15>(tile, s),
        _ => tile_c::<16>(tile, s),
    }
}

/// The tile with `C = head_dim / 8` vectors per row.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_c<const C: usize>(tile: &Tile<'_>, s: &mut FastScratch) {
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
    let span = chunk.start_pos + tokens.end; // positions 0..span are read
    let h0 = kv_head * group;

    // Where each position's K and V rows are.
    s.offsets.clear();
    let (k_src, v_src): (&[f32], &[f32]) = match kv.layer_f32(layer) {
        Some((k, v)) => {
            s.offsets.extend((0..span).map(|p| {
                let block = chunk.block_table[p / bs] as usize;
                kv.row_offset(block, p % bs, kv_head)
            }));
            (k, v)
        }
        None => {
            s.k_conv.resize(span * hd, 0.0);
            s.v_conv.resize(span * hd, 0.0);
            for p in 0..span {
                let block = chunk.block_table[p / bs] as usize;
                let (kr, vr) = (
                    &mut s.k_conv[p * hd..(p + 1) * hd],
                    &mut s.v_conv[p * hd..(p + 1) * hd],
                );
                // Storage that is not f32 converts into the buffer it is given.
                kv.key(layer, block, p % bs, kv_head, kr);
                kv.value(layer, block, p % bs, kv_head, vr);
            }
            s.offsets.extend((0..span).map(|p| p * hd));
            (&s.k_conv, &s.v_conv)
        }
    };
    // Every offset + hd is within its pool: checked once here so the loops can use raw pointers.
    assert!(s
        .offsets
        .iter()
        .all(|&o| o + hd <= k_src.len() && o + hd <= v_src.len()));
    let (kp, vp, offs) = (k_src.as_ptr(), v_src.as_ptr(), &s.offsets[..]);
    s.scores.resize(span, 0.0);
    let scores = &mut s.scores[..];
    let scale = _mm256_set1_ps(1.0 / (hd as f32).sqrt());

    for t in tokens.clone() {
        let len = chunk.start_pos + t + 1;
        for j in 0..group {
            let h = h0 + j;
            let q_row = &chunk.q[t * qd + h * hd..t * qd + (h + 1) * hd];
            let mut q = [_mm256_setzero_ps(); C];
            for (c, qc) in q.iter_mut().enumerate() {
                // SAFETY: q_row has 8 * C elements.
                *qc = _mm256_mul_ps(_mm256_loadu_ps(q_row.as_ptr().add(8 * c)), scale);
            }
            // Scores, four positions at a time.
            let mut p = 0;
            while p + 4 <= len {
                let rows = [
                    kp.add(offs[p]),
                    kp.add(offs[p + 1]),
                    kp.add(offs[p + 2]),
                    kp.add(offs[p + 3]),
                ];
                let mut acc = [_mm256_setzero_ps(); 4];
                for c in 0..C {
                    for (a, row) in acc.iter_mut().zip(rows) {
                        // SAFETY: each row has hd = 8 * C elements (checked above).
                        *a = _mm256_fmadd_ps(q[c], _mm256_loadu_ps(row.add(8 * c)), *a);
                    }
                }
                let sums = reduce4(acc);
                _mm_storeu_ps(scores.as_mut_ptr().add(p), sums);
                p += 4;
            }
            while p < len {
                let row = kp.add(offs[p]);
                let mut a = _mm256_setzero_ps();
                for (c, qc) in q.iter().enumerate() {
                    // SAFETY: as above.
                    a = _mm256_fmadd_ps(*qc, _mm256_loadu_ps(row.add(8 * c)), a);
                }
                scores[p] = hsum(a);
                p += 1;
            }
            softmax(&mut scores[..len]);
            // Weighted sum of values, accumulated in registers.
            let mut acc = [_mm256_setzero_ps(); C];
            for (p, &w) in scores[..len].iter().enumerate() {
                let row = vp.add(offs[p]);
                let wv = _mm256_set1_ps(w);
                for (c, a) in acc.iter_mut().enumerate() {
                    // SAFETY: as above.
                    *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(row.add(8 * c)), *a);
                }
            }
            // SAFETY: the caller guarantees exclusive access to this (row, head) of the output.
            let o = out.slice((out_row0 + t) * qd + h * hd, hd);
            for (c, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(o.as_mut_ptr().add(8 * c), *a);
            }
        }
    }
}

/// The horizontal sums of four vectors, as one 4-lane vector.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn reduce4(a: [__m256; 4]) -> __m128 {
    let t0 = _mm256_hadd_ps(a[0], a[1]);
    let t1 = _mm256_hadd_ps(a[2], a[3]);
    let t2 = _mm256_hadd_ps(t0, t1);
    _mm_add_ps(_mm256_castps256_ps128(t2), _mm256_extractf128_ps(t2, 1))
}

#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    _mm_cvtss_f32(s)
}
