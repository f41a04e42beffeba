//! Loading and shape-checking the tensors of a Llama-family model.

use half::f16;

use crate::gguf::GgufFile;
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
    pub o: WeightMatrix,
    pub ffn_norm: Vec<f32>,
    pub gate: WeightMatrix,
    pub up: WeightMatrix,
    pub down: WeightMatrix,
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
        let (d, f, v) = (cfg.embedding_dim, cfg.ffn_dim, cfg.vocab_size);
        let (qd, kvd) = (cfg.q_dim(), cfg.kv_dim());
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let name = |t: &str| format!("blk.{i}.{t}.weight");
            layers.push(LayerWeights {
                attn_norm: vector(g, &name("attn_norm"), d)?,
                q: matrix(g, &name("attn_q"), d, qd)?,
                k: matrix(g, &name("attn_k"), d, kvd)?,
                v: matrix(g, &name("attn_v"), d, kvd)?,
                o: matrix(g, &name("attn_output"), qd, d)?,
                ffn_norm: vector(g, &name("ffn_norm"), d)?,
                gate: matrix(g, &name("ffn_gate"), d, f)?,
                up: matrix(g, &name("ffn_up"), d, f)?,
                down: matrix(g, &name("ffn_down"), f, d)?,
            });
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
