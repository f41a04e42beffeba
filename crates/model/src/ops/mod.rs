//! The non-matmul operations of a decoder block, each beside a naive reference used as its test
//! oracle: RMS norm (per row, per head, and fused with the residual add for post-norms), rotary
//! position embedding ([`RopeTable`]), gated activations (`act(gate) * up` with SiLU or tanh-GELU),
//! softmax, logit soft-capping, residual add and grouped-query attention over the paged KV cache
//! ([`attention`]).
//!
//! All row-wise ops work on one row; the forward pass spreads rows over the thread pool.

mod act;
pub mod attention;
#[cfg(target_arch = "x86_64")]
mod attention_avx2;
mod rope;
mod vec;

pub use rope::{rope_naive, RopeSpec, RopeStyle, RopeTable};

#[cfg(target_arch = "x86_64")]
pub(crate) use vec::has_avx2_fma;
pub(crate) use vec::{axpy_portable, dot_portable};

pub use act::{gelu_tanh_mul, gelu_tanh_mul_portable, silu_mul, silu_mul_portable};
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

/// RMS norm of each `weight.len()`-wide head of `x`, in place (Qwen3 / Gemma 3 QK-norm).
pub fn rmsnorm_heads(x: &mut [f32], weight: &[f32], eps: f32) {
    for head in x.chunks_exact_mut(weight.len()) {
        let scale = 1.0 / (sum_squares(head) / head.len() as f32 + eps).sqrt();
        for (v, &w) in head.iter_mut().zip(weight) {
            *v = *v * scale * w;
        }
    }
}

/// Reference per-head RMS norm in f64.
pub fn rmsnorm_heads_naive(x: &mut [f32], weight: &[f32], eps: f32) {
    for head in x.chunks_exact_mut(weight.len()) {
        let input = head.to_vec();
        rmsnorm_naive(&input, weight, eps, head);
    }
}

/// Post-norm residual: `residual += rmsnorm(y) * weight` (Gemma's norms after attention and FFN).
pub fn rmsnorm_add(residual: &mut [f32], y: &[f32], weight: &[f32], eps: f32) {
    assert!(
        residual.len() == y.len() && y.len() == weight.len(),
        "rmsnorm_add lengths"
    );
    let scale = 1.0 / (sum_squares(y) / y.len() as f32 + eps).sqrt();
    for ((r, &y), &w) in residual.iter_mut().zip(y).zip(weight) {
        *r += y * scale * w;
    }
}

/// Reference post-norm residual in f64.
pub fn rmsnorm_add_naive(residual: &mut [f32], y: &[f32], weight: &[f32], eps: f32) {
    let mut normed = vec![0.0f32; y.len()];
    rmsnorm_naive(y, weight, eps, &mut normed);
    for (r, n) in residual.iter_mut().zip(normed) {
        *r += n;
    }
}

/// Reference SwiGLU in f64.
pub fn silu_mul_naive(gate: &mut [f32], up: &[f32]) {
    for i in 0..gate.len() {
        let g = gate[i] as f64;
        gate[i] = (g / (1.0 + (-g).exp()) * up[i] as f64) as f32;
    }
}

/// The activation of a gated feed-forward block: `out = act(gate) * up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x * sigmoid(x)` (SwiGLU: Llama, Qwen, Phi-3).
    Silu,
    /// GELU, tanh approximation (GeGLU: Gemma).
    GeluTanh,
}

impl Activation {
    /// `gate[i] = act(gate[i]) * up[i]`.
    pub fn gated(self, gate: &mut [f32], up: &[f32]) {
        match self {
            Activation::Silu => silu_mul(gate, up),
            Activation::GeluTanh => gelu_tanh_mul(gate, up),
        }
    }

    /// Reference of [`Activation::gated`] in f64.
    pub fn gated_naive(self, gate: &mut [f32], up: &[f32]) {
        match self {
            Activation::Silu => silu_mul_naive(gate, up),
            Activation::GeluTanh => gelu_tanh_mul_naive(gate, up),
        }
    }
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_COEF_A: f64 = 0.044_715;

/// Reference GeGLU in f64.
pub fn gelu_tanh_mul_naive(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g as f64;
        let gelu = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh());
        *g = (gelu * u as f64) as f32;
    }
}

/// Logit soft-capping: `x = cap * tanh(x / cap)`.
pub fn softcap(x: &mut [f32], cap: f32) {
    for v in x.iter_mut() {
        *v = cap * (*v / cap).tanh();
    }
}

/// Reference soft-capping in f64.
pub fn softcap_naive(x: &mut [f32], cap: f32) {
    for v in x.iter_mut() {
        *v = (cap as f64 * (*v as f64 / cap as f64).tanh()) as f32;
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
