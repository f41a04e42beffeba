//! What each supported architecture changes in the Llama block, as data the one forward reads.
//!
//! Every architecture here is a pre-norm decoder: RMS norm → attention → residual → RMS norm →
//! gated FFN → residual. [`ArchFeatures`] lists the differences, read from GGUF metadata as
//! llama.cpp reads them (its `src/models/<arch>.cpp`):
//!
//! | arch            | RoPE   | FFN    | QK-norm | post-norms | embedding × | sliding window |
//! |-----------------|--------|--------|---------|------------|-------------|----------------|
//! | llama, mistral  | normal | SwiGLU |         |            |             |                |
//! | qwen2           | NeoX   | SwiGLU |         |            |             |                |
//! | qwen3           | NeoX   | SwiGLU | yes     |            |             |                |
//! | phi3            | NeoX   | SwiGLU |         |            |             |                |
//! | gemma3          | NeoX   | GeGLU  | yes     | yes        | √dim        | 5 of every 6   |
//!
//! Tensor-layout differences are not features: Q/K/V biases (Qwen2) and fused `attn_qkv` /
//! gate-and-up `ffn_up` (Phi-3) are optional for every architecture, as in llama.cpp's loader,
//! and handled when the weights are loaded.

use crate::gguf::{GgufFile, MetaValue};
use crate::ops::{Activation, RopeStyle};
use crate::Error;

/// Architectures this crate runs, in the order error messages list them.
pub const SUPPORTED_ARCHS: &[&str] = &["llama", "mistral", "qwen2", "qwen3", "gemma3", "phi3"];
/// [`SUPPORTED_ARCHS`] joined for error messages.
pub(crate) const SUPPORTED_ARCHS_TEXT: &str = "llama, mistral, qwen2, qwen3, gemma3, phi3";

/// Gemma 3's default: every 6th layer (5, 11, …) attends globally, the others through the window.
const GEMMA3_SWA_PATTERN: u32 = 6;
/// llama.cpp's RoPE base for sliding-window layers when `rope.freq_base_swa` is absent.
const DEFAULT_SWA_ROPE_BASE: f32 = 10_000.0;

/// The per-architecture differences from a plain Llama block. [`Default`] is plain Llama.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchFeatures {
    pub rope_style: RopeStyle,
    /// Linear RoPE scaling of the full-attention layers: positions × this (`1 / factor`).
    pub rope_freq_scale: f32,
    pub activation: Activation,
    /// Per-head RMS norm of Q and K before RoPE (`attn_q_norm`, `attn_k_norm`).
    pub qk_norm: bool,
    /// RMS norms of the attention and FFN outputs before their residual adds
    /// (`post_attention_norm`, `post_ffw_norm`).
    pub post_norms: bool,
    /// Factor on the token embeddings (Gemma: `sqrt(embedding_dim)`).
    pub embedding_scale: Option<f32>,
    /// Attention score scale when it is not `1 / sqrt(head_dim)`.
    pub query_scale: Option<f32>,
    /// `cap * tanh(logits / cap)` on the LM head output.
    pub final_logit_softcap: Option<f32>,
    pub sliding_window: Option<SlidingWindow>,
}

impl Default for ArchFeatures {
    fn default() -> Self {
        ArchFeatures {
            rope_style: RopeStyle::Normal,
            rope_freq_scale: 1.0,
            activation: Activation::Silu,
            qk_norm: false,
            post_norms: false,
            embedding_scale: None,
            query_scale: None,
            final_logit_softcap: None,
            sliding_window: None,
        }
    }
}

/// Local attention on some layers (Gemma 3).
#[derive(Debug, Clone, PartialEq)]
pub struct SlidingWindow {
    /// Positions a query sees, itself included (key `p` is visible from `P` iff `P - p < tokens`).
    pub tokens: usize,
    /// `layers[i]`: layer `i` is windowed; the others attend to every position.
    pub layers: Vec<bool>,
    /// RoPE base of the windowed layers (never scaled).
    pub rope_base: f32,
}

/// Shapes the features depend on.
pub(crate) struct Dims {
    pub n_layers: usize,
    pub n_heads: usize,
    pub embedding_dim: usize,
}

/// The features of `arch` (already checked to be in [`SUPPORTED_ARCHS`]) from its metadata.
pub(crate) fn features(g: &GgufFile, arch: &str, dims: &Dims) -> Result<ArchFeatures, Error> {
    let key = |k: &str| format!("{arch}.{k}");
    let rope_freq_scale = linear_rope_scale(g, arch)?;
    let plain = ArchFeatures {
        rope_freq_scale,
        ..ArchFeatures::default()
    };
    let neox = ArchFeatures {
        rope_style: RopeStyle::Neox,
        ..plain.clone()
    };
    Ok(match arch {
        "qwen2" => neox,
        "qwen3" => ArchFeatures {
            qk_norm: true,
            ..neox
        },
        "phi3" => {
            for t in ["rope_factors_long.weight", "rope_factors_short.weight"] {
                if g.tensor(t).is_ok() {
                    return Err(Error::InvalidConfig {
                        what: format!("{t}: Phi-3 LongRoPE scaling is not supported"),
                    });
                }
            }
            neox
        }
        "gemma3" => ArchFeatures {
            activation: Activation::GeluTanh,
            qk_norm: true,
            post_norms: true,
            embedding_scale: Some((dims.embedding_dim as f32).sqrt()),
            // llama.cpp: Gemma 3 27B (62 layers) scales by 1/sqrt(embedding / heads), the others
            // by 1/sqrt(head_dim) (gemma_pytorch's `query_pre_attn_scalar`).
            query_scale: (dims.n_layers == 62)
                .then(|| 1.0 / ((dims.embedding_dim / dims.n_heads) as f32).sqrt()),
            final_logit_softcap: opt_f32(g, &key("final_logit_softcapping"))?.filter(|&c| c != 0.0),
            sliding_window: gemma3_window(g, arch, dims.n_layers)?,
            ..neox
        },
        _ => plain,
    })
}

/// `1 / rope.scaling.factor` for linear scaling (llama.cpp's default type), 1 for none; an error
/// for the kinds the forward does not implement (YaRN, LongRoPE).
fn linear_rope_scale(g: &GgufFile, arch: &str) -> Result<f32, Error> {
    let kind = match g.get(&format!("{arch}.rope.scaling.type")) {
        None => "linear",
        Some(_) => g.get_str(&format!("{arch}.rope.scaling.type"))?,
    };
    match kind {
        "none" => Ok(1.0),
        "linear" => {
            let factor = match opt_f32(g, &format!("{arch}.rope.scaling.factor"))? {
                Some(f) => Some(f),
                None => opt_f32(g, &format!("{arch}.rope.scale_linear"))?,
            };
            Ok(match factor {
                Some(f) if f != 0.0 => 1.0 / f,
                _ => 1.0,
            })
        }
        other => Err(Error::InvalidConfig {
            what: format!(
                "{arch}.rope.scaling.type {other:?} is not supported (only none and linear)"
            ),
        }),
    }
}

/// Gemma 3's windowed layers: `attention.sliding_window` (absent or 0: none), and which layers use
/// it from `attention.sliding_window_pattern` (a per-layer bool array, or `n`: every `n`th layer
/// is global; default 6), as llama.cpp's `load_swa_pattern`.
fn gemma3_window(
    g: &GgufFile,
    arch: &str,
    n_layers: usize,
) -> Result<Option<SlidingWindow>, Error> {
    let key = |k: &str| format!("{arch}.{k}");
    let tokens = match g.get(&key("attention.sliding_window")) {
        None => return Ok(None),
        Some(_) => g.get_u32(&key("attention.sliding_window"))? as usize,
    };
    if tokens == 0 {
        return Ok(None);
    }
    let pattern_key = key("attention.sliding_window_pattern");
    let layers = match g.get(&pattern_key) {
        Some(MetaValue::Array(items)) => {
            let flags: Option<Vec<bool>> = items
                .iter()
                .map(|v| match v {
                    MetaValue::Bool(b) => Some(*b),
                    other => other.as_u64().map(|x| x != 0),
                })
                .collect();
            match flags {
                Some(f) if f.len() == n_layers => f,
                _ => {
                    return Err(Error::InvalidConfig {
                        what: format!("{pattern_key} must hold {n_layers} bools"),
                    })
                }
            }
        }
        other => {
            let n = match other {
                None => GEMMA3_SWA_PATTERN,
                Some(_) => g.get_u32(&pattern_key)?,
            };
            (0..n_layers as u32)
                .map(|il| n == 0 || il % n < n - 1)
                .collect()
        }
    };
    let rope_base = opt_f32(g, &key("rope.freq_base_swa"))?.unwrap_or(DEFAULT_SWA_ROPE_BASE);
    Ok(Some(SlidingWindow {
        tokens,
        layers,
        rope_base,
    }))
}

fn opt_f32(g: &GgufFile, key: &str) -> Result<Option<f32>, Error> {
    match g.get(key) {
        None => Ok(None),
        Some(_) => g.get_f32(key).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_text_lists_every_supported_arch() {
        assert_eq!(SUPPORTED_ARCHS.join(", "), SUPPORTED_ARCHS_TEXT);
    }
}
