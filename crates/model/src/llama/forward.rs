//! The batched forward step.
//!
//! Per layer: RMS norm → fused Q/K/V products (+ biases) → [QK-norm] → RoPE → K/V rows into the
//! paged cache → attention tiles (chunk × KV head × token run; windowed on sliding-window layers)
//! → output product added to the residual ([post-norm] first) → RMS norm → fused gate/up products
//! with SwiGLU or GeGLU → down product added to the residual ([post-norm] first). Bracketed steps
//! and the embedding scale and logit soft-cap are the architecture's hooks (`ArchFeatures`).
//! Every stage that is O(tokens × dim) or larger runs on the pool; the final norm and LM head only
//! run for the rows whose logits were asked for.

use std::ops::Range;
use std::sync::PoisonError;

use crate::kv::KvStorage;
use crate::llama::parallel::{for_each_row, run_gate_up, run_matmuls, MatJob};
use crate::llama::{ChunkOutput, LlamaModel, SeqChunk};
use crate::matmul::{ActivationFormat, Activations, WeightMatrix};
use crate::ops::attention::{attention_tile, AttnChunk};
use crate::ops::{add_assign, rmsnorm, rmsnorm_add, rmsnorm_heads, softcap};
use crate::pool::SharedMut;
use crate::Error;

/// Query tokens per attention task during prefill.
const ATTN_TILE_TOKENS: usize = 16;
/// Below this many multiply-adds (query × cached position × head dim, all heads) attention runs
/// on the calling thread: a fork-join would cost more than it saves (short-context decode).
const ATTN_SERIAL_MACS: usize = 1 << 18;

/// Per-step buffers, kept between steps so decoding does not allocate.
pub(crate) struct Scratch {
    /// Residual stream `[n][dim]`.
    x: Vec<f32>,
    /// Normalised rows `[n][dim]` (also the LM head input).
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    /// Attention or FFN output `[n][dim]` awaiting its post-norm (Gemma).
    proj: Vec<f32>,
    ffn: Vec<f32>,
    tokens: Vec<u32>,
    positions: Vec<usize>,
    /// First row of each chunk in the step's token rows.
    chunk_row0: Vec<usize>,
    /// Rows whose logits are returned, in output order.
    logit_rows: Vec<usize>,
    /// Rows whose final hidden states are returned, in output order.
    hidden_rows: Vec<usize>,
    /// Attention tasks: (chunk, kv head, token range within the chunk).
    tiles: Vec<(usize, usize, Range<usize>)>,
    acts: [Activations; 3],
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            x: Vec::new(),
            xn: Vec::new(),
            q: Vec::new(),
            k: Vec::new(),
            v: Vec::new(),
            attn: Vec::new(),
            proj: Vec::new(),
            ffn: Vec::new(),
            tokens: Vec::new(),
            positions: Vec::new(),
            chunk_row0: Vec::new(),
            logit_rows: Vec::new(),
            hidden_rows: Vec::new(),
            tiles: Vec::new(),
            acts: [Activations::new(), Activations::new(), Activations::new()],
        }
    }
}

/// Prepares `x` once per distinct activation encoding among `ws` (a Q4_K_M layer's Q4_K and Q6_K
/// matrices share one Q8_K encoding, Q4_0/Q5_0/Q8_0 one Q8_0 encoding); returns which activation
/// each matrix uses.
fn prepare_for(
    acts: &mut [Activations; 3],
    x: &[f32],
    n: usize,
    cols: usize,
    ws: &[&WeightMatrix],
) -> [usize; 3] {
    let mut which = [0usize; 3];
    let mut seen: [Option<ActivationFormat>; 3] = [None; 3];
    for (i, w) in ws.iter().enumerate() {
        let t = w.dtype();
        let format = ActivationFormat::for_weights(t);
        let slot = match seen.iter().position(|s| *s == Some(format)) {
            Some(slot) => slot,
            None => {
                let slot = seen.iter().position(|s| s.is_none()).unwrap_or(2);
                seen[slot] = Some(format);
                acts[slot].prepare(x, n, cols, t);
                slot
            }
        };
        which[i] = slot;
    }
    which
}

impl LlamaModel {
    /// Runs one batched step. Each chunk appends `tokens` at positions `start_pos..` for one
    /// sequence, writing K/V into its blocks. `logits` is resized to `n_want × vocab_size`: for
    /// each chunk with `want_logits`, in order, the logits of its last token.
    ///
    /// Inputs are validated first (token ids, context length, block table length and ids, KV
    /// storage shape); on error nothing has been written.
    pub fn forward(
        &self,
        batch: &[SeqChunk<'_>],
        kv: &mut KvStorage,
        logits: &mut Vec<f32>,
    ) -> Result<(), Error> {
        let mut outputs = |c: &SeqChunk<'_>| match c.want_logits {
            true => ChunkOutput::LastLogits,
            false => ChunkOutput::Nothing,
        };
        // An empty Vec does not allocate: decoding stays allocation-free.
        self.run_step(batch, &mut outputs, kv, logits, &mut Vec::new())
    }

    /// Runs one batched step like [`forward`](Self::forward), with what each chunk returns chosen
    /// by `outputs[c]` instead of `want_logits`: `logits` gets, in chunk order, one row for each
    /// [`ChunkOutput::LastLogits`] chunk and one row per token for each [`ChunkOutput::AllLogits`]
    /// chunk; `hidden` gets one `embedding_dim` row per token of each [`ChunkOutput::Hidden`]
    /// chunk (the final hidden state after the output norm, before the LM head: what llama.cpp
    /// pools into embeddings).
    pub fn forward_outputs(
        &self,
        batch: &[SeqChunk<'_>],
        outputs: &[ChunkOutput],
        kv: &mut KvStorage,
        logits: &mut Vec<f32>,
        hidden: &mut Vec<f32>,
    ) -> Result<(), Error> {
        if outputs.len() != batch.len() {
            return Err(Error::OutputsMismatch {
                chunks: batch.len(),
                outputs: outputs.len(),
            });
        }
        let mut next = outputs.iter().copied();
        self.run_step(
            batch,
            &mut |_: &SeqChunk<'_>| next.next().unwrap_or(ChunkOutput::Nothing),
            kv,
            logits,
            hidden,
        )
    }

    fn run_step(
        &self,
        batch: &[SeqChunk<'_>],
        outputs: &mut dyn FnMut(&SeqChunk<'_>) -> ChunkOutput,
        kv: &mut KvStorage,
        logits: &mut Vec<f32>,
        hidden: &mut Vec<f32>,
    ) -> Result<(), Error> {
        self.validate(batch, kv)?;
        let mut guard = self.scratch.lock().unwrap_or_else(PoisonError::into_inner);
        let s = &mut *guard;
        self.gather(batch, outputs, s);
        let n = s.tokens.len();
        if n == 0 {
            logits.clear();
            hidden.clear();
            return Ok(());
        }
        let cfg = &self.cfg;
        let d = cfg.embedding_dim;
        s.x.resize(n * d, 0.0);
        s.xn.resize(n * d, 0.0);
        s.q.resize(n * cfg.q_dim(), 0.0);
        s.k.resize(n * cfg.kv_dim(), 0.0);
        s.v.resize(n * cfg.kv_dim(), 0.0);
        s.attn.resize(n * cfg.q_dim(), 0.0);
        if cfg.features.post_norms {
            s.proj.resize(n * d, 0.0);
        }
        s.ffn.resize(n * cfg.ffn_dim, 0.0);

        let tokens = &s.tokens;
        let embd = &self.weights.embd;
        let scale = cfg.features.embedding_scale;
        for_each_row(&self.pool, &mut s.x, d, |r, row| {
            embd.dequantize_row(tokens[r] as usize, row);
            if let Some(scale) = scale {
                row.iter_mut().for_each(|v| *v *= scale);
            }
        });
        for layer in 0..cfg.n_layers {
            self.layer_step(layer, batch, kv, s);
        }
        self.final_hidden(s, hidden);
        self.lm_head(s, logits);
        Ok(())
    }

    fn layer_step(&self, li: usize, batch: &[SeqChunk<'_>], kv: &mut KvStorage, s: &mut Scratch) {
        let cfg = &self.cfg;
        let lw = &self.weights.layers[li];
        let (d, n) = (cfg.embedding_dim, s.tokens.len());
        let (qd, kvd, hd) = (cfg.q_dim(), cfg.kv_dim(), cfg.head_dim);

        // Attention block.
        let x = &s.x;
        for_each_row(&self.pool, &mut s.xn, d, |r, row| {
            rmsnorm(&x[r * d..(r + 1) * d], &lw.attn_norm, cfg.rms_eps, row)
        });
        let which = prepare_for(&mut s.acts, &s.xn, n, d, &[&lw.q, &lw.k, &lw.v]);
        // SAFETY: q, k, v are distinct buffers sized n × their widths, untouched during the job.
        unsafe {
            run_matmuls(
                &self.pool,
                &[
                    mat(&lw.q, &s.acts[which[0]], &mut s.q, qd, false),
                    mat(&lw.k, &s.acts[which[1]], &mut s.k, kvd, false),
                    mat(&lw.v, &s.acts[which[2]], &mut s.v, kvd, false),
                ],
            )
        };
        let (positions, rope, eps) = (&s.positions, self.rope_of(li), cfg.rms_eps);
        for_each_row(&self.pool, &mut s.q, qd, |r, row| {
            bias_and_norm(row, lw.q_bias.as_deref(), lw.q_norm.as_deref(), eps);
            rope.apply(row, hd, positions[r])
        });
        for_each_row(&self.pool, &mut s.k, kvd, |r, row| {
            bias_and_norm(row, lw.k_bias.as_deref(), lw.k_norm.as_deref(), eps);
            rope.apply(row, hd, positions[r])
        });
        if let Some(bias) = &lw.v_bias {
            for_each_row(&self.pool, &mut s.v, kvd, |_, row| add_assign(row, bias));
        }
        for (c, chunk) in batch.iter().enumerate() {
            let row0 = s.chunk_row0[c];
            for t in 0..chunk.tokens.len() {
                let pos = chunk.start_pos + t;
                let bs = kv.block_size_tokens();
                let block = chunk.block_table[pos / bs] as usize;
                let r = row0 + t;
                kv.write(
                    li,
                    block,
                    pos % bs,
                    &s.k[r * kvd..(r + 1) * kvd],
                    &s.v[r * kvd..(r + 1) * kvd],
                );
            }
        }
        self.attention(li, batch, kv, s);
        let which = prepare_for(&mut s.acts, &s.attn, n, qd, &[&lw.o]);
        self.residual_product(&lw.o, which[0], lw.post_attn_norm.as_deref(), s);

        // Feed-forward block.
        let x = &s.x;
        for_each_row(&self.pool, &mut s.xn, d, |r, row| {
            rmsnorm(&x[r * d..(r + 1) * d], &lw.ffn_norm, cfg.rms_eps, row)
        });
        let which = prepare_for(&mut s.acts, &s.xn, n, d, &[&lw.gate, &lw.up]);
        run_gate_up(
            &self.pool,
            cfg.features.activation,
            (&lw.gate, &s.acts[which[0]]),
            (&lw.up, &s.acts[which[1]]),
            &mut s.ffn,
        );
        let which = prepare_for(&mut s.acts, &s.ffn, n, cfg.ffn_dim, &[&lw.down]);
        self.residual_product(&lw.down, which[0], lw.post_ffn_norm.as_deref(), s);
    }

    /// `x += W · act` (activation slot `slot`), or `x += rmsnorm(W · act) * post_norm`.
    fn residual_product(
        &self,
        w: &WeightMatrix,
        slot: usize,
        post_norm: Option<&[f32]>,
        s: &mut Scratch,
    ) {
        let d = self.cfg.embedding_dim;
        let Some(norm) = post_norm else {
            // SAFETY: x is sized n × d and only this job touches it.
            unsafe { run_matmuls(&self.pool, &[mat(w, &s.acts[slot], &mut s.x, d, true)]) };
            return;
        };
        // SAFETY: proj is sized n × d and only this job touches it.
        unsafe { run_matmuls(&self.pool, &[mat(w, &s.acts[slot], &mut s.proj, d, false)]) };
        let (proj, eps) = (&s.proj, self.cfg.rms_eps);
        for_each_row(&self.pool, &mut s.x, d, |r, row| {
            rmsnorm_add(row, &proj[r * d..(r + 1) * d], norm, eps)
        });
    }

    fn attention(&self, li: usize, batch: &[SeqChunk<'_>], kv: &KvStorage, s: &mut Scratch) {
        let geo = self.cfg.layer_geometry(li);
        let qd = geo.q_dim();
        s.tiles.clear();
        for (c, chunk) in batch.iter().enumerate() {
            let len = chunk.tokens.len();
            for t0 in (0..len).step_by(ATTN_TILE_TOKENS) {
                for kvh in 0..geo.n_kv_heads {
                    s.tiles.push((c, kvh, t0..(t0 + ATTN_TILE_TOKENS).min(len)));
                }
            }
        }
        let macs: usize = batch
            .iter()
            .map(|c| c.tokens.len() * (c.start_pos + c.tokens.len()) * qd)
            .sum();
        let (tiles, row0s, q) = (&s.tiles, &s.chunk_row0, &s.q);
        let out = SharedMut::new(&mut s.attn);
        let tile = |i: usize| {
            let (c, kvh, ref tokens) = tiles[i];
            let chunk = &batch[c];
            let row0 = row0s[c];
            let ac = AttnChunk {
                q: &q[row0 * qd..(row0 + chunk.tokens.len()) * qd],
                start_pos: chunk.start_pos,
                block_table: chunk.block_table,
            };
            // SAFETY: tile (chunk, kv head, tokens) writes only its own rows × heads of `attn`.
            unsafe { attention_tile(&geo, kv, li, &ac, kvh, tokens.clone(), out, row0) };
        };
        if macs < ATTN_SERIAL_MACS {
            (0..tiles.len()).for_each(tile);
        } else {
            self.pool.run(tiles.len(), tile);
        }
    }

    /// The output-normed rows of `s.hidden_rows` into `hidden`.
    fn final_hidden(&self, s: &Scratch, hidden: &mut Vec<f32>) {
        let d = self.cfg.embedding_dim;
        let m = s.hidden_rows.len();
        hidden.clear();
        hidden.resize(m * d, 0.0);
        let (x, rows, norm) = (&s.x, &s.hidden_rows, &self.weights.output_norm);
        for_each_row(&self.pool, hidden, d, |i, row| {
            let r = rows[i];
            rmsnorm(&x[r * d..(r + 1) * d], norm, self.cfg.rms_eps, row)
        });
    }

    fn lm_head(&self, s: &mut Scratch, logits: &mut Vec<f32>) {
        let (d, vocab) = (self.cfg.embedding_dim, self.cfg.vocab_size);
        let m = s.logit_rows.len();
        logits.clear();
        if m == 0 {
            return;
        }
        logits.resize(m * vocab, 0.0);
        let (x, rows, norm) = (&s.x, &s.logit_rows, &self.weights.output_norm);
        for_each_row(&self.pool, &mut s.xn[..m * d], d, |i, row| {
            let r = rows[i];
            rmsnorm(&x[r * d..(r + 1) * d], norm, self.cfg.rms_eps, row)
        });
        let head = self.weights.lm_head();
        let which = prepare_for(&mut s.acts, &s.xn[..m * d], m, d, &[head]);
        // SAFETY: logits is sized m × vocab and only this job touches it.
        unsafe {
            run_matmuls(
                &self.pool,
                &[mat(head, &s.acts[which[0]], logits, vocab, false)],
            )
        };
        if let Some(cap) = self.cfg.features.final_logit_softcap {
            softcap(logits, cap);
        }
    }

    /// Fills the flat token/position lists and row bookkeeping of a step.
    fn gather(
        &self,
        batch: &[SeqChunk<'_>],
        outputs: &mut dyn FnMut(&SeqChunk<'_>) -> ChunkOutput,
        s: &mut Scratch,
    ) {
        s.tokens.clear();
        s.positions.clear();
        s.chunk_row0.clear();
        s.logit_rows.clear();
        s.hidden_rows.clear();
        for chunk in batch {
            let row0 = s.tokens.len();
            s.chunk_row0.push(row0);
            s.tokens.extend_from_slice(chunk.tokens);
            s.positions
                .extend(chunk.start_pos..chunk.start_pos + chunk.tokens.len());
            let rows = row0..s.tokens.len();
            match outputs(chunk) {
                ChunkOutput::Nothing => {}
                ChunkOutput::LastLogits => s.logit_rows.push(rows.end - 1),
                ChunkOutput::AllLogits => s.logit_rows.extend(rows),
                ChunkOutput::Hidden => s.hidden_rows.extend(rows),
            }
        }
    }

    fn validate(&self, batch: &[SeqChunk<'_>], kv: &KvStorage) -> Result<(), Error> {
        let cfg = &self.cfg;
        let shape = |l: usize, h: usize, d: usize| format!("{l} layers × {h} KV heads × {d}");
        if kv.n_layers() != cfg.n_layers
            || kv.n_kv_heads() != cfg.n_kv_heads
            || kv.head_dim() != cfg.head_dim
        {
            return Err(Error::KvShapeMismatch {
                expected: shape(cfg.n_layers, cfg.n_kv_heads, cfg.head_dim),
                got: shape(kv.n_layers(), kv.n_kv_heads(), kv.head_dim()),
            });
        }
        let bs = kv.block_size_tokens();
        for (c, chunk) in batch.iter().enumerate() {
            if chunk.tokens.is_empty() {
                return Err(Error::EmptyChunk { chunk: c });
            }
            if let Some(&token) = chunk.tokens.iter().find(|&&t| t as usize >= cfg.vocab_size) {
                return Err(Error::TokenOutOfRange {
                    chunk: c,
                    token,
                    vocab_size: cfg.vocab_size,
                });
            }
            let end = chunk.start_pos + chunk.tokens.len();
            if end > cfg.context_length {
                return Err(Error::ContextOverflow {
                    chunk: c,
                    last_pos: end - 1,
                    context_length: cfg.context_length,
                });
            }
            let needed = end.div_ceil(bs);
            if chunk.block_table.len() < needed {
                return Err(Error::BlockTableTooShort {
                    chunk: c,
                    needed,
                    got: chunk.block_table.len(),
                });
            }
            if let Some(&block) = chunk.block_table[..needed]
                .iter()
                .find(|&&b| b as usize >= kv.num_blocks())
            {
                return Err(Error::BlockOutOfRange {
                    chunk: c,
                    block,
                    num_blocks: kv.num_blocks(),
                });
            }
        }
        Ok(())
    }
}

fn mat<'a>(
    w: &'a WeightMatrix,
    x: &'a Activations,
    out: &mut [f32],
    ld: usize,
    accumulate: bool,
) -> MatJob<'a> {
    MatJob {
        w,
        x,
        out: SharedMut::new(out),
        ld,
        accumulate,
    }
}

/// The per-row hooks before RoPE: bias add, then per-head RMS norm (QK-norm).
fn bias_and_norm(row: &mut [f32], bias: Option<&[f32]>, norm: Option<&[f32]>, eps: f32) {
    if let Some(bias) = bias {
        add_assign(row, bias);
    }
    if let Some(norm) = norm {
        rmsnorm_heads(row, norm, eps);
    }
}
