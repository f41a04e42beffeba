//! `PromptOutputs`: what a sequence collects from its prompt's per-token outputs while it is
//! prefilled, possibly over several chunks: the log-probability of every next prompt token
//! (`SamplingParams::prompt_logprobs`) or the pooled hidden states (`Task::Embed`).
//!
//! Rows arrive in position order (a sequence's chunks are scheduled in order). A sequence that
//! collects them computes every prompt position: it takes no prefix-cache hit, and preemption
//! (recompute from position 0) drops what was collected.

use rotor_protocol::{GenerateRequest, Pooling, Task, TokenLogprob};

use crate::runner::ChunkOutputKind;
use crate::sampler::token_logprob;

/// A sequence's prompt outputs, collected until the prompt is fully computed.
#[derive(Debug)]
pub enum PromptOutputs {
    /// Logprob of each prompt token p ≥ 1 given tokens < p, with `top` alternatives.
    Logprobs { top: usize, rows: Vec<TokenLogprob> },
    /// Pooled final hidden states.
    Embed {
        pooling: Pooling,
        normalize: bool,
        /// Mean pooling: the running sum over rows; last pooling: the latest row.
        acc: Vec<f64>,
        rows: usize,
    },
}

impl PromptOutputs {
    /// What `req` asks to collect, if anything.
    pub fn for_request(req: &GenerateRequest) -> Option<Self> {
        match req.task {
            Task::Embed { pooling, normalize } => Some(Self::Embed {
                pooling,
                normalize,
                acc: Vec::new(),
                rows: 0,
            }),
            Task::Generate => req.sampling.prompt_logprobs.map(|n| Self::Logprobs {
                top: n as usize,
                rows: Vec::with_capacity(req.token_ids.len().saturating_sub(1)),
            }),
        }
    }

    /// What the runner must return for this sequence's chunks.
    pub fn kind(&self) -> ChunkOutputKind {
        match self {
            Self::Logprobs { .. } => ChunkOutputKind::AllLogits,
            Self::Embed { .. } => ChunkOutputKind::Hidden,
        }
    }

    /// Forgets what was collected (the sequence is recomputed from position 0).
    pub fn reset(&mut self) {
        match self {
            Self::Logprobs { rows, .. } => rows.clear(),
            Self::Embed { acc, rows, .. } => {
                acc.clear();
                *rows = 0;
            }
        }
    }

    /// Adds the logits rows of positions `start..start + logits.len() / vocab` of `prompt`: the
    /// row of position p scores prompt token p + 1 (the last prompt position scores nothing).
    pub fn add_logits(&mut self, prompt: &[u32], start: usize, logits: &[f32], vocab: usize) {
        let Self::Logprobs { top, rows } = self else {
            return;
        };
        for (i, row) in logits.chunks_exact(vocab).enumerate() {
            if let Some(&next) = prompt.get(start + i + 1) {
                rows.push(token_logprob(row, next, *top));
            }
        }
    }

    /// Adds hidden-state rows of `dim` values each, in position order.
    pub fn add_hidden(&mut self, hidden: &[f32], dim: usize) {
        let Self::Embed {
            pooling, acc, rows, ..
        } = self
        else {
            return;
        };
        if acc.len() != dim {
            acc.clear();
            acc.resize(dim, 0.0);
        }
        for row in hidden.chunks_exact(dim) {
            match pooling {
                Pooling::Mean => acc.iter_mut().zip(row).for_each(|(a, &x)| *a += x as f64),
                Pooling::Last => acc.iter_mut().zip(row).for_each(|(a, &x)| *a = x as f64),
            }
            *rows += 1;
        }
    }

    /// The finished prompt's result.
    pub fn finish(self) -> PromptResult {
        match self {
            Self::Logprobs { rows, .. } => PromptResult::Logprobs(rows),
            Self::Embed {
                pooling,
                normalize,
                mut acc,
                rows,
            } => {
                if pooling == Pooling::Mean && rows > 0 {
                    acc.iter_mut().for_each(|a| *a /= rows as f64);
                }
                if normalize {
                    let norm = acc.iter().map(|a| a * a).sum::<f64>().sqrt();
                    if norm > 0.0 {
                        acc.iter_mut().for_each(|a| *a /= norm);
                    }
                }
                PromptResult::Embedding(acc.into_iter().map(|a| a as f32).collect())
            }
        }
    }
}

/// A finished prompt's outputs.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptResult {
    Logprobs(Vec<TokenLogprob>),
    Embedding(Vec<f32>),
}

#[cfg(test)]
mod tests {
    use rotor_protocol::{SamplingParams, StopConditions};

    use super::*;

    fn embed(pooling: Pooling, normalize: bool) -> PromptOutputs {
        let req = GenerateRequest {
            id: "e".into(),
            token_ids: vec![1, 2, 3],
            sampling: SamplingParams::default(),
            stop: StopConditions {
                max_tokens: 0,
                ..StopConditions::default()
            },
            task: Task::Embed { pooling, normalize },
        };
        PromptOutputs::for_request(&req).expect("an embedding collects")
    }

    #[test]
    fn mean_and_last_pooling_over_two_chunks() {
        let mut mean = embed(Pooling::Mean, false);
        mean.add_hidden(&[1.0, 2.0, 3.0, 4.0], 2);
        mean.add_hidden(&[5.0, 6.0], 2);
        assert_eq!(mean.finish(), PromptResult::Embedding(vec![3.0, 4.0]));
        let mut last = embed(Pooling::Last, true);
        last.add_hidden(&[1.0, 2.0], 2);
        last.add_hidden(&[3.0, 4.0], 2);
        assert_eq!(last.finish(), PromptResult::Embedding(vec![0.6, 0.8]));
    }

    #[test]
    fn reset_forgets_collected_rows() {
        let mut mean = embed(Pooling::Mean, false);
        mean.add_hidden(&[100.0, 100.0], 2);
        mean.reset();
        mean.add_hidden(&[1.0, 3.0], 2);
        assert_eq!(mean.finish(), PromptResult::Embedding(vec![1.0, 3.0]));
    }

    #[test]
    fn each_logits_row_scores_the_next_prompt_token() {
        let mut lp = PromptOutputs::Logprobs {
            top: 1,
            rows: Vec::new(),
        };
        let prompt = [0, 1, 0];
        // Vocab 2: position 0 prefers token 1 (ln 3 apart), position 1 is uniform, position 2
        // (the last) scores nothing.
        let ln3 = 3f32.ln();
        lp.add_logits(&prompt, 0, &[0.0, ln3], 2);
        lp.add_logits(&prompt, 1, &[0.0, 0.0, 5.0, 5.0], 2);
        let PromptResult::Logprobs(rows) = lp.finish() else {
            panic!("logprobs");
        };
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].token_id, 1);
        assert!((rows[0].logprob - 0.75f32.ln()).abs() < 1e-6, "{rows:?}");
        assert_eq!(rows[0].top[0].0, 1);
        assert_eq!(rows[1].token_id, 0);
        assert!((rows[1].logprob - 0.5f32.ln()).abs() < 1e-6, "{rows:?}");
    }
}
