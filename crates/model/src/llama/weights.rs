//! Loading and shape-checking the tensors of a Llama-family model.
//!
//! Layout differences are resolved here so the forward pass sees one shape: a fused `attn_qkv`
//! (Phi-3) becomes Q, K and V views of its rows, a fused `ffn_up` of twice the FFN width (gate
//! rows, then up rows) becomes gate and up views, and biases are optional per projection
//! (`attn_q.bias` …, or one `attn_qkv.bias`), as in llama.cpp's loader. Norms the architecture
//! requires (QK-norm, post-norms) are required tensors.

use std::ops::Range;

use half::f16;

use crate::gguf::{GgufFile, TensorView};
use crate::llama::LlamaConfig;
use crate::matmul::WeightMatrix;
use crate::quant::GgmlType;
use crate::Error;

/// The weights of one transformer block.
pub(crate) struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub q: WeightMatrix,
    pub k: WeightMatrix,
    pub v: WeightMatrix,
    /// Added to the Q, K and V projections when present (Qwen2).
    pub q_bias: Option<Vec<f32>>,
    pub k_bias: Option<Vec<f32>>,
    pub v_bias: Option<Vec<f32>>,
    /// Per-head RMS norm weights (`head_dim` long) when the architecture has QK-norm.
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub o: WeightMatrix,
    /// Norm of the attention output before the residual add (Gemma).
    pub post_attn_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub gate: WeightMatrix,
    pub up: WeightMatrix,
    pub down: WeightMatrix,
    /// Norm of the FFN output before the residual add (Gemma).
    pub post_ffn_norm: Option<Vec<f32>>,
}

/// All weights; matrices point into the file's memory map, norms are small f32 copies.
pub(crate) struct Weights {
    pub embd: WeightMatrix,
    pub layers: Vec<LayerWeights>,
    pub output_norm: Vec<f32>,
    /// `None` when the LM head is tied to the embedding.
    pub output: Option<WeightMatrix>,
}

impl Weights {
    pub fn load(g: &GgufFile, cfg: &LlamaConfig) -> Result<Weights, Error> {
        let (d, v) = (cfg.embedding_dim, cfg.vocab_size);
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            layers.push(load_layer(g, cfg, i)?);
        }
        let output = if cfg.tied_output {
            None
        } else {
            Some(matrix(g, "output.weight", d, v)?)
        };
        Ok(Weights {
            embd: matrix(g, "token_embd.weight", d, v)?,
            layers,
            output_norm: vector(g, "output_norm.weight", d)?,
            output,
        })
    }

    /// The LM head (the embedding when tied).
    pub fn lm_head(&self) -> &WeightMatrix {
        self.output.as_ref().unwrap_or(&self.embd)
    }
}

fn load_layer(g: &GgufFile, cfg: &LlamaConfig, i: usize) -> Result<LayerWeights, Error> {
    let (d, f, hd) = (cfg.embedding_dim, cfg.ffn_dim, cfg.head_dim);
    let (qd, kvd) = (cfg.q_dim(), cfg.kv_dim());
    let name = |t: &str| format!("blk.{i}.{t}.weight");
    let required_if = |needed: bool, t: &str, len: usize| -> Result<Option<Vec<f32>>, Error> {
        if needed {
            vector(g, &name(t), len).map(Some)
        } else {
            Ok(None)
        }
    };
    let qkv = load_qkv(g, i, d, [qd, kvd, kvd])?;
    let (gate, up) = load_gate_up(g, i, d, f)?;
    let (qk_norm, post_norms) = (cfg.features.qk_norm, cfg.features.post_norms);
    let [q_bias, k_bias, v_bias] = qkv.biases;
    let [q, k, v] = qkv.matrices;
    Ok(LayerWeights {
        attn_norm: vector(g, &name("attn_norm"), d)?,
        q,
        k,
        v,
        q_bias,
        k_bias,
        v_bias,
        q_norm: required_if(qk_norm, "attn_q_norm", hd)?,
        k_norm: required_if(qk_norm, "attn_k_norm", hd)?,
        o: matrix(g, &name("attn_output"), qd, d)?,
        post_attn_norm: required_if(post_norms, "post_attention_norm", d)?,
        ffn_norm: vector(g, &name("ffn_norm"), d)?,
        gate,
        up,
        down: matrix(g, &name("ffn_down"), f, d)?,
        post_ffn_norm: required_if(post_norms, "post_ffw_norm", d)?,
    })
}

/// Q, K and V projections with their optional biases.
struct Qkv {
    matrices: [WeightMatrix; 3],
    biases: [Option<Vec<f32>>; 3],
}

/// Separate `attn_{q,k,v}` (each with an optional bias) or one fused `attn_qkv` of
/// `widths[0] + widths[1] + widths[2]` rows (optional `attn_qkv.bias`, or separate biases).
fn load_qkv(g: &GgufFile, i: usize, d: usize, widths: [usize; 3]) -> Result<Qkv, Error> {
    let parts = ["attn_q", "attn_k", "attn_v"];
    let fused = format!("blk.{i}.attn_qkv.weight");
    let separate_biases = || -> Result<[Option<Vec<f32>>; 3], Error> {
        Ok([
            optional_vector(g, &format!("blk.{i}.attn_q.bias"), widths[0])?,
            optional_vector(g, &format!("blk.{i}.attn_k.bias"), widths[1])?,
            optional_vector(g, &format!("blk.{i}.attn_v.bias"), widths[2])?,
        ])
    };
    let Ok(view) = g.tensor(&fused) else {
        let m = |j: usize| matrix(g, &format!("blk.{i}.{}.weight", parts[j]), d, widths[j]);
        return Ok(Qkv {
            matrices: [m(0)?, m(1)?, m(2)?],
            biases: separate_biases()?,
        });
    };
    let total: usize = widths.iter().sum();
    let ranges = [
        0..widths[0],
        widths[0]..widths[0] + widths[1],
        widths[0] + widths[1]..total,
    ];
    let m = |j: usize| split_rows(&view, d, total, parts[j], ranges[j].clone());
    let biases = match optional_vector(g, &format!("blk.{i}.attn_qkv.bias"), total)? {
        Some(b) => ranges.clone().map(|r| Some(b[r].to_vec())),
        None => separate_biases()?,
    };
    Ok(Qkv {
        matrices: [m(0)?, m(1)?, m(2)?],
        biases,
    })
}

/// `ffn_gate` and `ffn_up`, or one `ffn_up` of `2 * f` rows: gate rows, then up rows (Phi-3;
/// ggml's `swiglu` applies the activation to the first half).
fn load_gate_up(
    g: &GgufFile,
    i: usize,
    d: usize,
    f: usize,
) -> Result<(WeightMatrix, WeightMatrix), Error> {
    let (gate, up) = (
        format!("blk.{i}.ffn_gate.weight"),
        format!("blk.{i}.ffn_up.weight"),
    );
    if g.tensor(&gate).is_ok() {
        return Ok((matrix(g, &gate, d, f)?, matrix(g, &up, d, f)?));
    }
    let view = g.tensor(&up)?;
    if view.info.dims != [d as u64, 2 * f as u64] {
        return Err(Error::MissingTensor { name: gate });
    }
    Ok((
        split_rows(&view, d, 2 * f, "ffn_gate", 0..f)?,
        split_rows(&view, d, 2 * f, "ffn_up", f..2 * f)?,
    ))
}

/// Rows `rows` of the fused 2-D tensor `view` (expected `[cols, total_rows]`) as a matrix named
/// `<fused name>[part]`.
fn split_rows(
    view: &TensorView<'_>,
    cols: usize,
    total_rows: usize,
    part: &str,
    rows: Range<usize>,
) -> Result<WeightMatrix, Error> {
    let expected = vec![cols as u64, total_rows as u64];
    if view.info.dims != expected {
        return Err(Error::ShapeMismatch {
            tensor: view.info.name.clone(),
            expected,
            got: view.info.dims.clone(),
        });
    }
    let name = format!("{}[{part}]", view.info.name);
    let info = view
        .rows_info(name, rows.start as u64..rows.end as u64)
        .expect("invariant: rows within a checked 2-D tensor");
    WeightMatrix::from_tensor(view.narrow(&info))
}

/// A 2-D weight with GGUF dims `[cols, rows]` (inner dimension first).
fn matrix(g: &GgufFile, name: &str, cols: usize, rows: usize) -> Result<WeightMatrix, Error> {
    let view = g.tensor(name)?;
    let expected = vec![cols as u64, rows as u64];
    if view.info.dims != expected {
        return Err(Error::ShapeMismatch {
            tensor: name.to_string(),
            expected,
            got: view.info.dims.clone(),
        });
    }
    WeightMatrix::from_tensor(view)
}

/// [`vector`] when the tensor is present.
fn optional_vector(g: &GgufFile, name: &str, len: usize) -> Result<Option<Vec<f32>>, Error> {
    match g.tensor(name) {
        Err(Error::MissingTensor { .. }) => Ok(None),
        _ => vector(g, name, len).map(Some),
    }
}

/// A 1-D F32 or F16 tensor of length `len`, as f32.
fn vector(g: &GgufFile, name: &str, len: usize) -> Result<Vec<f32>, Error> {
    let view = g.tensor(name)?;
    if view.info.dims != [len as u64] {
        return Err(Error::ShapeMismatch {
            tensor: name.to_string(),
            expected: vec![len as u64],
            got: view.info.dims.clone(),
        });
    }
    match view.info.dtype {
        GgmlType::F32 => Ok(view
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()),
        GgmlType::F16 => Ok(view
            .data
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect()),
        dtype => Err(Error::UnsupportedType {
            tensor: name.to_string(),
            dtype,
        }),
    }
}
