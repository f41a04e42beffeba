//! The non-matmul operations of a Llama block, each beside a naive reference used as its test
//! oracle: RMS norm, rotary position embedding, SwiGLU (`silu(gate) * up`), softmax, residual add
//! and grouped-query attention over the paged KV cache ([`attention`]).
//!
//! All row-wise ops work on one row; the forward pass spreads rows over the thread pool.

pub mod attention;
#[cfg(target_arch = "x86_64")]
mod attention_avx2;
mod vec;

#[cfg(target_arch = "x86_64")]
pub(crate) use vec::has_avx2_fma;
pub(crate) use vec::{axpy_portable, dot_portable};

pub use vec::{axpy, dot, sum_squares};

/// `out = x / sqrt(mean(x²) + eps) * weight`, one row.
pub fn rmsnorm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    assert!(
        x.len() == weight.len() && x.len() == out.len(),
        "rmsnorm lengths"
    );
    let mean = sum_squares(x) / x.len() as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &x), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = x * scale * w;
    }
}

/// Reference RMS norm: f64 accumulation, one element at a time.
pub fn rmsnorm_naive(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mut sum = 0.0f64;
    for &v in x {
        sum += (v as f64) * (v as f64);
    }
    let scale = 1.0 / (sum / x.len() as f64 + eps as f64).sqrt();
    for i in 0..x.len() {
        out[i] = ((x[i] as f64) * scale * weight[i] as f64) as f32;
    }
}

/// Precomputed cos/sin of rotary angles for positions `0..max_positions`.
///
/// RoPE in ggml's "normal" mode (GGUF `llama` arch): within each head, the adjacent pair
/// `(x[2i], x[2i+1])` for `i < rope_dim / 2` is rotated by `pos * base^(-2i / rope_dim)`; the
/// dimensions from `rope_dim` to `head_dim` are left alone.
#[derive(Debug, Clone)]
pub struct RopeTable {
    rope_dim: usize,
    base: f32,
    max_positions: usize,
    /// `[max_positions][rope_dim / 2]`
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl RopeTable {
    /// Panics if `rope_dim` is odd.
    #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87; MSRV is 1.85
    pub fn new(rope_dim: usize, base: f32, max_positions: usize) -> RopeTable {
        assert!(rope_dim % 2 == 0, "rope_dim {rope_dim} must be even");
        let half = rope_dim / 2;
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| (base as f64).powf(-2.0 * i as f64 / rope_dim as f64))
            .collect();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for pos in 0..max_positions {
            for &f in &inv_freq {
                let angle = pos as f64 * f;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        RopeTable {
            rope_dim,
            base,
            max_positions,
            cos,
            sin,
        }
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Rotates every head of one token's `x = [n_heads * head_dim]` for position `pos`.
    /// Positions past the table compute their angles directly (slower, same result).
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        if pos >= self.max_positions {
            rope_naive(x, head_dim, self.rope_dim, self.base, pos);
            return;
        }
        let half = self.rope_dim / 2;
        let cos = &self.cos[pos * half..(pos + 1) * half];
        let sin = &self.sin[pos * half..(pos + 1) * half];
        for head in x.chunks_exact_mut(head_dim) {
            for (i, pair) in head[..self.rope_dim].chunks_exact_mut(2).enumerate() {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * cos[i] - b * sin[i];
                pair[1] = a * sin[i] + b * cos[i];
            }
        }
    }
}

/// Reference RoPE: angles computed directly for this position, in f64.
pub fn rope_naive(x: &mut [f32], head_dim: usize, rope_dim: usize, base: f32, pos: usize) {
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..rope_dim / 2 {
            let angle = pos as f64 * (base as f64).powf(-2.0 * i as f64 / rope_dim as f64);
            let (a, b) = (head[2 * i] as f64, head[2 * i + 1] as f64);
            head[2 * i] = (a * angle.cos() - b * angle.sin()) as f32;
            head[2 * i + 1] = (a * angle.sin() + b * angle.cos()) as f32;
        }
    }
}

#[inline]
fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// SwiGLU: `gate[i] = silu(gate[i]) * up[i]`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "silu_mul lengths");
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = silu(*g) * u;
    }
}

/// Reference SwiGLU in f64.
pub fn silu_mul_naive(gate: &mut [f32], up: &[f32]) {
    for i in 0..gate.len() {
        let g = gate[i] as f64;
        gate[i] = (g / (1.0 + (-g).exp()) * up[i] as f64) as f32;
    }
}

/// Numerically stable softmax in place. An empty slice is left alone.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Reference softmax in f64.
pub fn softmax_naive(x: &mut [f32]) {
    let max = x
        .iter()
        .map(|&v| v as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = x.iter().map(|&v| (v as f64 - max).exp()).sum();
    for v in x.iter_mut() {
        *v = ((*v as f64 - max).exp() / sum) as f32;
    }
}

/// Residual connection: `x[i] += y[i]`.
pub fn add_assign(x: &mut [f32], y: &[f32]) {
    assert_eq!(x.len(), y.len(), "add_assign lengths");
    for (x, &y) in x.iter_mut().zip(y) {
        *x += y;
    }
}
