//! Rotary position embedding (RoPE) in ggml's two pairings, with linear position scaling.
//!
//! Parameters ([`RopeSpec`]): within each head of `head_dim` values, the first `dim` (even, at
//! most `head_dim`) are rotated and the rest are left alone. Pair `i < dim / 2` turns by
//! `pos * freq_scale * base^(-2i / dim)` radians. [`RopeStyle`] says which two values form pair
//! `i`: `(2i, 2i + 1)` ("normal", GGUF `llama`) or `(i, i + dim / 2)` ("NeoX": Qwen, Gemma,
//! Phi-3). `freq_scale` is `1 / rope.scaling.factor` for linear scaling, 1 without scaling.

/// Which dimensions of a head form a rotated pair (ggml's `rope_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent values `(2i, 2i + 1)`: ggml's `LLAMA_ROPE_TYPE_NORM` (Llama, Mistral).
    Normal,
    /// The two halves `(i, i + dim / 2)`: ggml's `LLAMA_ROPE_TYPE_NEOX` (Qwen2/3, Gemma 3, Phi-3).
    Neox,
}

/// The rotation of one attention layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeSpec {
    /// Leading dimensions of each head that are rotated (even).
    pub dim: usize,
    pub base: f32,
    /// Positions are multiplied by this (linear RoPE scaling; 1 = none).
    pub freq_scale: f32,
    pub style: RopeStyle,
}

impl RopeSpec {
    /// Unscaled "normal" RoPE, the GGUF `llama` default.
    pub fn normal(dim: usize, base: f32) -> RopeSpec {
        RopeSpec {
            dim,
            base,
            freq_scale: 1.0,
            style: RopeStyle::Normal,
        }
    }

    /// Indices of pair `i` within a head.
    #[inline]
    fn pair(&self, i: usize) -> (usize, usize) {
        match self.style {
            RopeStyle::Normal => (2 * i, 2 * i + 1),
            RopeStyle::Neox => (i, i + self.dim / 2),
        }
    }

    /// The angle of pair `i` at `pos`, in f64.
    fn angle(&self, pos: usize, i: usize) -> f64 {
        let inv_freq = (self.base as f64).powf(-2.0 * i as f64 / self.dim as f64);
        pos as f64 * self.freq_scale as f64 * inv_freq
    }
}

/// Precomputed cos/sin of the rotary angles for positions `0..max_positions`.
#[derive(Debug, Clone)]
pub struct RopeTable {
    spec: RopeSpec,
    max_positions: usize,
    /// `[max_positions][dim / 2]`
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    /// Panics if `spec.dim` is odd.
    #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87; MSRV is 1.85
    pub fn new(spec: RopeSpec, max_positions: usize) -> RopeTable {
        assert!(spec.dim % 2 == 0, "rope dim {} must be even", spec.dim);
        let half = spec.dim / 2;
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for pos in 0..max_positions {
            for i in 0..half {
                let angle = spec.angle(pos, i);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        RopeTable {
            spec,
            max_positions,
            cos,
            sin,
        }
    }

    pub fn spec(&self) -> &RopeSpec {
        &self.spec
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Rotates every head of one token's `x = [n_heads * head_dim]` for position `pos`.
    /// Positions past the table compute their angles directly (slower, same result).
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        if pos >= self.max_positions {
            rope_naive(x, head_dim, &self.spec, pos);
            return;
        }
        let half = self.spec.dim / 2;
        let cos = &self.cos[pos * half..(pos + 1) * half];
        let sin = &self.sin[pos * half..(pos + 1) * half];
        for head in x.chunks_exact_mut(head_dim) {
            match self.spec.style {
                RopeStyle::Normal => {
                    for (i, pair) in head[..self.spec.dim].chunks_exact_mut(2).enumerate() {
                        let (a, b) = (pair[0], pair[1]);
                        pair[0] = a * cos[i] - b * sin[i];
                        pair[1] = a * sin[i] + b * cos[i];
                    }
                }
                RopeStyle::Neox => {
                    let (lo, hi) = head[..self.spec.dim].split_at_mut(half);
                    for i in 0..half {
                        let (a, b) = (lo[i], hi[i]);
                        lo[i] = a * cos[i] - b * sin[i];
                        hi[i] = a * sin[i] + b * cos[i];
                    }
                }
            }
        }
    }
}

/// Reference RoPE: angles computed directly for this position, in f64.
pub fn rope_naive(x: &mut [f32], head_dim: usize, spec: &RopeSpec, pos: usize) {
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..spec.dim / 2 {
            let angle = spec.angle(pos, i);
            let (ia, ib) = spec.pair(i);
            let (a, b) = (head[ia] as f64, head[ib] as f64);
            head[ia] = (a * angle.cos() - b * angle.sin()) as f32;
            head[ib] = (a * angle.sin() + b * angle.cos()) as f32;
        }
    }
}
