//! Decoder hyperparameters read from GGUF metadata: the shapes every supported architecture shares,
//! plus its [`ArchFeatures`] (see `arch.rs`).

use crate::gguf::GgufFile;
use crate::llama::arch::{self, Dims, SUPPORTED_ARCHS, SUPPORTED_ARCHS_TEXT};
use crate::llama::ArchFeatures;
use crate::ops::attention::{AttnGeometry, MAX_HEAD_DIM};
use crate::ops::RopeSpec;
use crate::Error;

/// Validated hyperparameters of a Llama-family decoder (any of [`SUPPORTED_ARCHS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// `general.architecture`, the prefix of every other key.
    pub arch: String,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub embedding_dim: usize,
    pub ffn_dim: usize,
    pub vocab_size: usize,
    pub context_length: usize,
    pub rope_base: f32,
    /// Leading dimensions of each head that RoPE rotates (even, at most `head_dim`).
    pub rope_dim: usize,
    pub rms_eps: f32,
    /// No `output.weight`: the LM head reuses `token_embd.weight`.
    pub tied_output: bool,
    /// What the architecture changes in the block (plain Llama by default).
    pub features: ArchFeatures,
}

impl LlamaConfig {
    /// Reads `<arch>.*` keys. Optional keys default as llama.cpp does: `head_count_kv` = heads,
    /// `key_length` = embedding / heads, `rope.freq_base` = 10000, `rope.dimension_count` =
    /// head_dim, `layer_norm_rms_epsilon` = 1e-5, vocab size = rows of `token_embd.weight`.
    pub fn from_gguf(g: &GgufFile) -> Result<LlamaConfig, Error> {
        let arch = g.get_str("general.architecture")?.to_string();
        if !SUPPORTED_ARCHS.contains(&arch.as_str()) {
            return Err(Error::UnsupportedArchitecture {
                arch,
                supported: SUPPORTED_ARCHS_TEXT,
            });
        }
        let key = |k: &str| format!("{arch}.{k}");
        let req = |k: &str| g.get_u32(&key(k)).map(|v| v as usize);
        let opt = |k: &str| -> Result<Option<usize>, Error> {
            match g.get(&key(k)) {
                None => Ok(None),
                Some(_) => req(k).map(Some),
            }
        };
        let optf = |k: &str, default: f32| -> Result<f32, Error> {
            match g.get(&key(k)) {
                None => Ok(default),
                Some(_) => g.get_f32(&key(k)),
            }
        };
        let n_layers = req("block_count")?;
        let n_heads = req("attention.head_count")?;
        let n_kv_heads = opt("attention.head_count_kv")?.unwrap_or(n_heads);
        let embedding_dim = req("embedding_length")?;
        let ffn_dim = req("feed_forward_length")?;
        let context_length = req("context_length")?;
        if n_heads == 0 {
            return Err(invalid("attention.head_count is 0".into()));
        }
        let head_dim = opt("attention.key_length")?.unwrap_or(embedding_dim / n_heads);
        let rope_dim = opt("rope.dimension_count")?.unwrap_or(head_dim);
        let rope_base = optf("rope.freq_base", 10_000.0)?;
        let rms_eps = optf("attention.layer_norm_rms_epsilon", 1e-5)?;
        let embd = g.tensor("token_embd.weight")?;
        let vocab_size = match opt("vocab_size")? {
            Some(v) => v,
            None => embd.info.dims.get(1).copied().unwrap_or(0) as usize,
        };
        let tied_output = g.tensor("output.weight").is_err();
        if let Some(v) = opt("attention.value_length")? {
            if v != head_dim {
                return Err(invalid(format!(
                    "attention.value_length {v} differs from key_length {head_dim}"
                )));
            }
        }
        let dims = Dims {
            n_layers,
            n_heads,
            embedding_dim,
        };
        let features = arch::features(g, &arch, &dims)?;
        let cfg = LlamaConfig {
            arch,
            n_layers,
            n_heads,
            n_kv_heads,
            head_dim,
            embedding_dim,
            ffn_dim,
            vocab_size,
            context_length,
            rope_base,
            rope_dim,
            rms_eps,
            tied_output,
            features,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the invariants the kernels rely on.
    #[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87; MSRV is 1.85
    pub fn validate(&self) -> Result<(), Error> {
        let c = self;
        if c.n_layers == 0 || c.embedding_dim == 0 || c.ffn_dim == 0 || c.vocab_size == 0 {
            return Err(invalid(format!(
                "zero dimension: layers {}, embedding {}, ffn {}, vocab {}",
                c.n_layers, c.embedding_dim, c.ffn_dim, c.vocab_size
            )));
        }
        if c.n_kv_heads == 0 || c.n_heads % c.n_kv_heads != 0 {
            return Err(invalid(format!(
                "{} query heads cannot be grouped over {} KV heads",
                c.n_heads, c.n_kv_heads
            )));
        }
        if c.head_dim == 0 || c.head_dim > MAX_HEAD_DIM {
            return Err(invalid(format!(
                "head_dim {} outside 1..={MAX_HEAD_DIM}",
                c.head_dim
            )));
        }
        if c.rope_dim % 2 != 0 || c.rope_dim > c.head_dim {
            return Err(invalid(format!(
                "rope_dim {} must be even and at most head_dim {}",
                c.rope_dim, c.head_dim
            )));
        }
        if c.context_length == 0 {
            return Err(invalid("context_length is 0".into()));
        }
        if !(c.rope_base.is_finite() && c.rope_base > 0.0 && c.rms_eps.is_finite()) {
            return Err(invalid(format!(
                "rope_base {} / rms_eps {} not usable",
                c.rope_base, c.rms_eps
            )));
        }
        if let Some(sw) = &c.features.sliding_window {
            if sw.tokens == 0
                || sw.layers.len() != c.n_layers
                || !(sw.rope_base.is_finite() && sw.rope_base > 0.0)
            {
                return Err(invalid(format!(
                    "sliding window of {} tokens over {} layer flags (model has {}), rope base {}",
                    sw.tokens,
                    sw.layers.len(),
                    c.n_layers,
                    sw.rope_base
                )));
            }
        }
        let f = &c.features;
        let scales = [
            Some(f.rope_freq_scale),
            f.embedding_scale,
            f.query_scale,
            f.final_logit_softcap,
        ];
        if scales
            .iter()
            .flatten()
            .any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(invalid(format!("unusable scale factor in {f:?}")));
        }
        Ok(())
    }

    /// Attention of the layers without a sliding window.
    pub fn attn_geometry(&self) -> AttnGeometry {
        let mut geo = AttnGeometry::causal(self.n_heads, self.n_kv_heads, self.head_dim);
        if let Some(scale) = self.features.query_scale {
            geo.scale = scale;
        }
        geo
    }

    /// Whether layer `layer` attends through the sliding window.
    pub fn is_windowed(&self, layer: usize) -> bool {
        self.features
            .sliding_window
            .as_ref()
            .is_some_and(|sw| sw.layers[layer])
    }

    /// Attention of layer `layer` (windowed or not).
    pub fn layer_geometry(&self, layer: usize) -> AttnGeometry {
        let mut geo = self.attn_geometry();
        if self.is_windowed(layer) {
            geo.window = self.features.sliding_window.as_ref().map(|sw| sw.tokens);
        }
        geo
    }

    /// RoPE of layer `layer`: windowed layers use the window's unscaled base.
    pub fn layer_rope(&self, layer: usize) -> RopeSpec {
        let mut spec = RopeSpec {
            dim: self.rope_dim,
            base: self.rope_base,
            freq_scale: self.features.rope_freq_scale,
            style: self.features.rope_style,
        };
        if let Some(sw) = &self.features.sliding_window {
            if sw.layers[layer] {
                spec.base = sw.rope_base;
                spec.freq_scale = 1.0;
            }
        }
        spec
    }

    /// Width of the query projection output.
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of the key (and value) projection output.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}

fn invalid(what: String) -> Error {
    Error::InvalidConfig { what }
}
