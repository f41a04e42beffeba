//! Causal grouped-query attention over the paged KV cache.
//!
//! Parameters: `n_heads` query heads share `n_kv_heads` K/V heads (`group = n_heads / n_kv_heads`
//! consecutive query heads per K/V head); scores are scaled by `scale` (usually
//! `1 / sqrt(head_dim)`). A chunk of `n` new tokens starting at `start_pos` has its K/V already
//! written to the cache; token `t` (at position `P = start_pos + t`) attends to positions
//! `0..=P`, i.e. the whole cached prefix plus the chunk causally — or, with a sliding `window`
//! of `w` positions, only to `P + 1 - w..=P` (key `p` is visible iff `P - p < w`, llama.cpp's
//! standard SWA). Positions before the window are never read, so their blocks may be gone.
//!
//! The fast kernel works on a tile: one K/V head, its `group` query heads and a run of tokens, so
//! each cached key and value is read (and converted from f16) once per tile, not once per query.
//! Two tile bodies exist: the portable one here and, on x86-64 with AVX2 and head sizes
//! 16/32/64/128/256, the explicit-SIMD one in `attention_avx2.rs` (query heads of a group share each
//! row load, outputs accumulate in registers, rows are prefetched); they agree bit for bit.
//! [`attention_naive`] is the reference both are tested against.

use std::cell::RefCell;
use std::ops::Range;

use crate::kv::KvStorage;
use crate::ops::{axpy_portable, dot_portable, softmax, softmax_naive};
use crate::pool::SharedMut;

/// Largest head dimension the kernels accept (they keep one row on the stack).
pub const MAX_HEAD_DIM: usize = 512;

/// Head layout and masking of one attention layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttnGeometry {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Factor on every score `q · k` (usually `1 / sqrt(head_dim)`).
    pub scale: f32,
    /// Sliding window: a query sees this many positions, itself included; `None` = all.
    pub window: Option<usize>,
}

impl AttnGeometry {
    /// Full causal attention scaled by `1 / sqrt(head_dim)`.
    pub fn causal(n_heads: usize, n_kv_heads: usize, head_dim: usize) -> AttnGeometry {
        AttnGeometry {
            n_heads,
            n_kv_heads,
            head_dim,
            scale: 1.0 / (head_dim as f32).sqrt(),
            window: None,
        }
    }

    pub fn group(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// The first position a query at `pos` sees.
    #[inline]
    pub fn first_visible(&self, pos: usize) -> usize {
        match self.window {
            Some(w) => (pos + 1).saturating_sub(w),
            None => 0,
        }
    }

    /// One past the last query position that sees key position `p`.
    #[inline]
    fn last_seeing_end(&self, p: usize) -> usize {
        match self.window {
            Some(w) => p.saturating_add(w),
            None => usize::MAX,
        }
    }
}

/// The query side of one sequence's chunk.
#[derive(Debug, Clone, Copy)]
pub struct AttnChunk<'a> {
    /// `[n_tokens][n_heads * head_dim]`, RoPE already applied.
    pub q: &'a [f32],
    pub start_pos: usize,
    pub block_table: &'a [u32],
}

impl AttnChunk<'_> {
    pub fn n_tokens(&self, geo: &AttnGeometry) -> usize {
        self.q.len() / geo.q_dim()
    }
}

/// Reference attention for one query token at position `pos`: `q_row` and `out_row` are
/// `[n_heads * head_dim]`.
pub fn attention_naive(
    geo: &AttnGeometry,
    kv: &KvStorage,
    layer: usize,
    block_table: &[u32],
    q_row: &[f32],
    pos: usize,
    out_row: &mut [f32],
) {
    let hd = geo.head_dim;
    let bs = kv.block_size_tokens();
    let mut kbuf = vec![0.0f32; hd];
    for h in 0..geo.n_heads {
        let kvh = h / geo.group();
        let q = &q_row[h * hd..(h + 1) * hd];
        let first = geo.first_visible(pos);
        let mut scores = Vec::with_capacity(pos + 1 - first);
        for p in first..=pos {
            let k = kv.key(layer, block_table[p / bs] as usize, p % bs, kvh, &mut kbuf);
            let s: f64 = q.iter().zip(k).map(|(&a, &b)| a as f64 * b as f64).sum();
            scores.push((s * geo.scale as f64) as f32);
        }
        softmax_naive(&mut scores);
        let mut acc = vec![0.0f64; hd];
        for (i, &w) in scores.iter().enumerate() {
            let p = first + i;
            let v = kv.value(layer, block_table[p / bs] as usize, p % bs, kvh, &mut kbuf);
            for (a, &x) in acc.iter_mut().zip(v) {
                *a += w as f64 * x as f64;
            }
        }
        for (o, a) in out_row[h * hd..(h + 1) * hd].iter_mut().zip(acc) {
            *o = a as f32;
        }
    }
}

/// Fast attention for a whole chunk, serially: `out` is `[n_tokens][n_heads * head_dim]`.
pub fn attention_chunk(
    geo: &AttnGeometry,
    kv: &KvStorage,
    layer: usize,
    chunk: &AttnChunk<'_>,
    out: &mut [f32],
) {
    attention_chunk_with(TileKernel::Best, geo, kv, layer, chunk, out)
}

/// [`attention_chunk`] on a chosen tile implementation.
pub fn attention_chunk_with(
    kernel: TileKernel,
    geo: &AttnGeometry,
    kv: &KvStorage,
    layer: usize,
    chunk: &AttnChunk<'_>,
    out: &mut [f32],
) {
    assert_eq!(out.len(), chunk.q.len(), "attention output size");
    let n = chunk.n_tokens(geo);
    let shared = SharedMut::new(out);
    for kv_head in 0..geo.n_kv_heads {
        let tile = Tile {
            geo,
            kv,
            layer,
            chunk,
            kv_head,
            tokens: 0..n,
            out: shared,
            out_row0: 0,
        };
        // SAFETY: single-threaded; `out` is exclusively borrowed for this call.
        unsafe { run_tile(kernel, &tile) };
    }
}

thread_local! {
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

#[cfg(target_arch = "x86_64")]
thread_local! {
    static FAST: RefCell<super::attention_avx2::FastScratch> = RefCell::default();
}

/// Which implementation [`attention_tile`] uses (tests compare them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileKernel {
    /// The fastest this CPU and head dimension allow.
    Best,
    /// The portable body (auto-vectorised with AVX2 when available).
    Portable,
}

/// One attention task: tokens `tokens` of `chunk`, K/V head `kv_head` and its query heads.
pub(crate) struct Tile<'a> {
    pub geo: &'a AttnGeometry,
    pub kv: &'a KvStorage,
    pub layer: usize,
    pub chunk: &'a AttnChunk<'a>,
    pub kv_head: usize,
    pub tokens: Range<usize>,
    pub out: SharedMut<f32>,
    pub out_row0: usize,
}

/// Attention for tokens `tokens` of `chunk`, K/V head `kv_head` and its query heads. Results go to
/// rows `out_row0 + t` of `out` (row length `n_heads * head_dim`), columns of those heads.
///
/// # Safety
/// No other thread may access those (row, head) ranges of `out` during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn attention_tile(
    geo: &AttnGeometry,
    kv: &KvStorage,
    layer: usize,
    chunk: &AttnChunk<'_>,
    kv_head: usize,
    tokens: Range<usize>,
    out: SharedMut<f32>,
    out_row0: usize,
) {
    let tile = Tile {
        geo,
        kv,
        layer,
        chunk,
        kv_head,
        tokens,
        out,
        out_row0,
    };
    // SAFETY: the caller upholds the output contract.
    unsafe { run_tile(TileKernel::Best, &tile) }
}

/// # Safety
/// As for [`attention_tile`].
unsafe fn run_tile(kernel: TileKernel, tile: &Tile<'_>) {
    #[cfg(target_arch = "x86_64")]
    if kernel == TileKernel::Best
        && crate::matmul::Kernel::detect() == crate::matmul::Kernel::Avx2
        && super::attention_avx2::supports(tile.geo.head_dim)
    {
        return FAST.with(|cell| {
            // SAFETY: AVX2, FMA and F16C were detected (the AVX2 matmul kernel needs all three)
            // and the head dimension is supported; the caller upholds the output contract.
            unsafe { super::attention_avx2::tile(tile, &mut cell.borrow_mut()) }
        });
    }
    let _ = kernel;
    SCORES.with(|cell| {
        let scores = &mut *cell.borrow_mut();
        #[cfg(target_arch = "x86_64")]
        if crate::ops::has_avx2_fma() {
            // SAFETY: AVX2 and FMA were detected; the caller upholds the output contract.
            return unsafe { tile_avx2(tile, scores) };
        }
        // SAFETY: the caller upholds the output contract.
        unsafe { tile_body(tile, scores) }
    })
}

/// The tile compiled with AVX2+FMA, so the inlined dot products and axpys vectorise 8-wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2(tile: &Tile<'_>, scores: &mut Vec<f32>) {
    tile_body(tile, scores)
}

/// Two passes over the cached positions: scores (one key read per position for all queries of
/// the tile), softmax per query, then the weighted value sum (one value read per position).
#[inline(always)]
unsafe fn tile_body(tile: &Tile<'_>, scores: &mut Vec<f32>) {
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
    let bs = kv.block_size_tokens();
    let scale = geo.scale;
    let span = chunk.start_pos + tokens.end; // positions lo..span are read
    let lo = geo.first_visible(chunk.start_pos + tokens.start);
    let width = span - lo;
    let nq = tokens.len() * group;
    let h0 = kv_head * group;
    // Tokens of the tile that see position `p` (causal, and inside their windows).
    let seeing = |p: usize| {
        let first = tokens.start.max(p.saturating_sub(chunk.start_pos));
        let end = tokens
            .end
            .min(geo.last_seeing_end(p).saturating_sub(chunk.start_pos));
        first..end.max(first)
    };
    let mut buf = [0.0f32; MAX_HEAD_DIM];
    scores.clear();
    scores.resize(nq * width, 0.0);
    for p in lo..span {
        let block = chunk.block_table[p / bs] as usize;
        let k = kv.key(layer, block, p % bs, kv_head, &mut buf[..hd]);
        for t in seeing(p) {
            for j in 0..group {
                let h = h0 + j;
                let q = &chunk.q[t * qd + h * hd..t * qd + (h + 1) * hd];
                let qi = (t - tokens.start) * group + j;
                scores[qi * width + p - lo] = dot_portable(q, k) * scale;
            }
        }
    }
    for t in tokens.clone() {
        let pos = chunk.start_pos + t;
        let visible = geo.first_visible(pos) - lo..pos + 1 - lo;
        for j in 0..group {
            let qi = (t - tokens.start) * group + j;
            let row = &mut scores[qi * width..(qi + 1) * width];
            softmax(&mut row[visible.clone()]);
            out.slice((out_row0 + t) * qd + (h0 + j) * hd, hd).fill(0.0);
        }
    }
    for p in lo..span {
        let block = chunk.block_table[p / bs] as usize;
        let v = kv.value(layer, block, p % bs, kv_head, &mut buf[..hd]);
        for t in seeing(p) {
            for j in 0..group {
                let qi = (t - tokens.start) * group + j;
                let o = out.slice((out_row0 + t) * qd + (h0 + j) * hd, hd);
                axpy_portable(scores[qi * width + p - lo], v, o);
            }
        }
    }
}
