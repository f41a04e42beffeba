//! A slow, single-threaded forward pass built only from the naive kernels: the test oracle for
//! [`LlamaModel::forward`]. One sequence, f32 KV cache, weights dequantized row by row with the
//! exact format decoders and multiplied in f64 — against f32 activations, or (to isolate kernel
//! bugs from rounding) against exactly the 8-bit activations the fast kernels use.

use crate::kv::{KvDtype, KvStorage};
use crate::llama::LlamaModel;
use crate::matmul::{naive, Activations, WeightMatrix};
use crate::ops::attention::attention_naive;
use crate::ops::{
    rmsnorm_add_naive, rmsnorm_heads_naive, rmsnorm_naive, rope_naive, softcap_naive,
};
use crate::Error;

const BLOCK: usize = 16;

/// One sequence run through the naive kernels.
pub struct ReferenceForward<'m> {
    model: &'m LlamaModel,
    kv: KvStorage,
    block_table: Vec<u32>,
    pos: usize,
    quantized_activations: bool,
}

/// `out[b][r] = W[r] · x[b]` with `x` as `[n][cols]`, dequantizing each weight row once; with
/// `quantized`, `x` is first rounded exactly as the fast path's [`Activations`] round it.
fn matmul_naive(w: &WeightMatrix, x: &[f32], n: usize, out: &mut [f32], quantized: bool) {
    let (rows, cols) = (w.rows(), w.cols());
    if quantized {
        let mut act = Activations::new();
        act.prepare(x, n, cols, w.dtype());
        naive::matmul_quantized(w, &act, 0..rows, out);
        return;
    }
    let mut row = vec![0.0f32; cols];
    for r in 0..rows {
        w.dequantize_row(r, &mut row);
        for b in 0..n {
            let xb = &x[b * cols..(b + 1) * cols];
            let s: f64 = row.iter().zip(xb).map(|(&a, &b)| a as f64 * b as f64).sum();
            out[b * rows + r] = s as f32;
        }
    }
}

impl<'m> ReferenceForward<'m> {
    /// Room for `max_tokens` positions.
    pub fn new(model: &'m LlamaModel, max_tokens: usize) -> ReferenceForward<'m> {
        let blocks = max_tokens.div_ceil(BLOCK).max(1);
        ReferenceForward {
            model,
            kv: KvStorage::new(model.config(), blocks, BLOCK, KvDtype::F32),
            block_table: (0..blocks as u32).collect(),
            pos: 0,
            quantized_activations: false,
        }
    }

    /// Multiply against 8-bit-quantized activations, as the fast kernels do.
    pub fn with_quantized_activations(mut self) -> Self {
        self.quantized_activations = true;
        self
    }

    /// Appends `tokens` and returns the logits of the last one.
    pub fn step(&mut self, tokens: &[u32]) -> Result<Vec<f32>, Error> {
        let m = self.model;
        let cfg = m.config();
        let w = &m.weights;
        let n = tokens.len();
        let capacity = self.block_table.len() * BLOCK;
        if n == 0 {
            return Err(Error::EmptyChunk { chunk: 0 });
        }
        if self.pos + n > capacity.min(cfg.context_length) {
            return Err(Error::ContextOverflow {
                chunk: 0,
                last_pos: self.pos + n - 1,
                context_length: capacity.min(cfg.context_length),
            });
        }
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= cfg.vocab_size) {
            return Err(Error::TokenOutOfRange {
                chunk: 0,
                token,
                vocab_size: cfg.vocab_size,
            });
        }
        let (d, qd, kvd, hd, f) = (
            cfg.embedding_dim,
            cfg.q_dim(),
            cfg.kv_dim(),
            cfg.head_dim,
            cfg.ffn_dim,
        );
        let qa = self.quantized_activations;
        let feat = &cfg.features;
        let mut x = vec![0.0f32; n * d];
        for (t, &tok) in tokens.iter().enumerate() {
            let row = &mut x[t * d..(t + 1) * d];
            w.embd.dequantize_row(tok as usize, row);
            if let Some(scale) = feat.embedding_scale {
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
        let mut xn = vec![0.0f32; n * d];
        let (mut q, mut k, mut v) = (vec![0.0; n * qd], vec![0.0; n * kvd], vec![0.0; n * kvd]);
        let mut attn = vec![0.0f32; n * qd];
        let mut proj = vec![0.0f32; n * d];
        let (mut gate, mut up) = (vec![0.0f32; n * f], vec![0.0f32; n * f]);
        for (li, lw) in w.layers.iter().enumerate() {
            let (geo, rope) = (cfg.layer_geometry(li), cfg.layer_rope(li));
            for t in 0..n {
                let r = t * d..(t + 1) * d;
                rmsnorm_naive(&x[r.clone()], &lw.attn_norm, cfg.rms_eps, &mut xn[r]);
            }
            matmul_naive(&lw.q, &xn, n, &mut q, qa);
            matmul_naive(&lw.k, &xn, n, &mut k, qa);
            matmul_naive(&lw.v, &xn, n, &mut v, qa);
            for t in 0..n {
                let pos = self.pos + t;
                let (qr, kr) = (&mut q[t * qd..(t + 1) * qd], &mut k[t * kvd..(t + 1) * kvd]);
                let vr = &mut v[t * kvd..(t + 1) * kvd];
                for (row, bias) in [
                    (&mut *qr, &lw.q_bias),
                    (&mut *kr, &lw.k_bias),
                    (vr, &lw.v_bias),
                ] {
                    if let Some(b) = bias {
                        row.iter_mut().zip(b).for_each(|(x, b)| *x += b);
                    }
                }
                if let (Some(qn), Some(kn)) = (&lw.q_norm, &lw.k_norm) {
                    rmsnorm_heads_naive(qr, qn, cfg.rms_eps);
                    rmsnorm_heads_naive(kr, kn, cfg.rms_eps);
                }
                rope_naive(qr, hd, &rope, pos);
                rope_naive(kr, hd, &rope, pos);
                let (k, v) = (&k[t * kvd..(t + 1) * kvd], &v[t * kvd..(t + 1) * kvd]);
                self.kv.write(li, pos / BLOCK, pos % BLOCK, k, v);
            }
            for t in 0..n {
                let (qr, ar) = (&q[t * qd..(t + 1) * qd], &mut attn[t * qd..(t + 1) * qd]);
                attention_naive(&geo, &self.kv, li, &self.block_table, qr, self.pos + t, ar);
            }
            matmul_naive(&lw.o, &attn, n, &mut proj, qa);
            add_residual(&mut x, &proj, lw.post_attn_norm.as_deref(), cfg.rms_eps);
            for t in 0..n {
                let r = t * d..(t + 1) * d;
                rmsnorm_naive(&x[r.clone()], &lw.ffn_norm, cfg.rms_eps, &mut xn[r]);
            }
            matmul_naive(&lw.gate, &xn, n, &mut gate, qa);
            matmul_naive(&lw.up, &xn, n, &mut up, qa);
            feat.activation.gated_naive(&mut gate, &up);
            matmul_naive(&lw.down, &gate, n, &mut proj, qa);
            add_residual(&mut x, &proj, lw.post_ffn_norm.as_deref(), cfg.rms_eps);
        }
        self.pos += n;
        let mut last = vec![0.0f32; d];
        rmsnorm_naive(&x[(n - 1) * d..], &w.output_norm, cfg.rms_eps, &mut last);
        let mut logits = vec![0.0f32; cfg.vocab_size];
        matmul_naive(w.lm_head(), &last, 1, &mut logits, qa);
        if let Some(cap) = feat.final_logit_softcap {
            softcap_naive(&mut logits, cap);
        }
        Ok(logits)
    }
}

/// `x += proj`, or `x += rmsnorm(proj) * post_norm` row by row.
fn add_residual(x: &mut [f32], proj: &[f32], post_norm: Option<&[f32]>, eps: f32) {
    match post_norm {
        None => x.iter_mut().zip(proj).for_each(|(x, p)| *x += p),
        Some(norm) => {
            let d = norm.len();
            for (xr, pr) in x.chunks_exact_mut(d).zip(proj.chunks_exact(d)) {
                rmsnorm_add_naive(xr, pr, norm, eps);
            }
        }
    }
}
