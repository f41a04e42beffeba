//! Prompts: what a request sends, described compactly ([`PromptSpec`]) and turned into token ids
//! or text ([`PromptPayload`]) only when the request is sent, so a 12,000-row Mooncake trace does
//! not hold half a gigabyte of token ids in memory.
//!
//! Token ids are drawn from `token_ids` (a range of ordinary vocabulary ids, default
//! 1000..30000, clear of special tokens in common vocabularies) by the seeded [`SplitMix64`]:
//! - Mooncake hash id `h` becomes the block `mix(seed, h, 0..block_size_tokens)`: equal ids give
//!   equal blocks, so two rows share exactly as many leading blocks as leading hash ids. The
//!   trace's block size is [`TRACE_BLOCK_TOKENS`]; with another `block_size_tokens` the prompt is
//!   rescaled (every full block becomes `block_size_tokens` tokens, the last, partial one is
//!   scaled proportionally, rounded up).
//! - Synthetic prefix group `g` owns one shared prefix; each request adds its own unique tokens.
//!
//! For the chat endpoint a token prompt is rendered as text, one English word per token id
//! (roughly one token per word with common tokenizers), which keeps shared prefixes shared.

use std::ops::Range;

use crate::rng::{mix64, SplitMix64};

/// The block size of Mooncake's hash ids, in tokens.
pub const TRACE_BLOCK_TOKENS: u32 = 512;

/// What one request's prompt is, before it is generated.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptSpec {
    /// Mooncake: one block of tokens per hash id, the last block cut so the whole prompt has
    /// `trace_input_tokens` tokens at the trace's block size.
    HashBlocks {
        hash_ids: Vec<u64>,
        trace_input_tokens: u32,
    },
    /// Random tokens: `prefix_tokens` shared by every request of `prefix_group`, then
    /// `unique_tokens` drawn from the request's own `stream`.
    Random {
        prefix_group: Option<u32>,
        prefix_tokens: u32,
        unique_tokens: u32,
        stream: u64,
    },
    /// Literal text (ShareGPT).
    Text(String),
}

/// A prompt ready to send.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptPayload {
    Tokens(Vec<u32>),
    Text(String),
}

/// Turns [`PromptSpec`]s into payloads; see the module docs for the mapping.
#[derive(Debug, Clone)]
pub struct PromptBuilder {
    pub seed: u64,
    pub token_ids: Range<u32>,
    pub block_size_tokens: u32,
    pub max_input_tokens: Option<u32>,
    /// Render token prompts as words (for chat endpoints, which take no token ids).
    pub as_text: bool,
}

// Stream namespaces, so hash blocks, prefix groups and per-request tokens never coincide.
const NS_HASH_BLOCK: u64 = 0x6861_7368;
const NS_PREFIX_GROUP: u64 = 0x7072_6566;
const NS_REQUEST: u64 = 0x7265_7175;

impl PromptBuilder {
    pub fn build(&self, spec: &PromptSpec) -> PromptPayload {
        let tokens = match spec {
            PromptSpec::Text(text) => return PromptPayload::Text(text.clone()),
            PromptSpec::HashBlocks {
                hash_ids,
                trace_input_tokens,
            } => self.hash_block_tokens(hash_ids, *trace_input_tokens),
            PromptSpec::Random {
                prefix_group,
                prefix_tokens,
                unique_tokens,
                stream,
            } => {
                let mut out = Vec::with_capacity((prefix_tokens + unique_tokens) as usize);
                if let Some(group) = prefix_group {
                    let stream = mix64(NS_PREFIX_GROUP ^ mix64(*group as u64));
                    self.extend_random(&mut out, stream, *prefix_tokens);
                }
                self.extend_random(&mut out, mix64(NS_REQUEST ^ mix64(*stream)), *unique_tokens);
                out
            }
        };
        let tokens = self.capped(tokens);
        if self.as_text {
            PromptPayload::Text(words_for(&tokens))
        } else {
            PromptPayload::Tokens(tokens)
        }
    }

    /// The number of prompt tokens a spec will produce, if known before tokenization.
    pub fn expected_input_tokens(&self, spec: &PromptSpec) -> Option<u32> {
        let n = match spec {
            PromptSpec::Text(_) => return None,
            PromptSpec::HashBlocks {
                hash_ids,
                trace_input_tokens,
            } => {
                scaled_hash_prompt_len(hash_ids.len(), *trace_input_tokens, self.block_size_tokens)
            }
            PromptSpec::Random {
                prefix_group,
                prefix_tokens,
                unique_tokens,
                ..
            } => {
                unique_tokens
                    + if prefix_group.is_some() {
                        *prefix_tokens
                    } else {
                        0
                    }
            }
        };
        Some(self.max_input_tokens.map_or(n, |cap| n.min(cap)))
    }

    /// The tokens of Mooncake hash id `hash_id`: `block_size_tokens` ids fixed by `(seed, id)`.
    pub fn hash_block(&self, hash_id: u64) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.block_size_tokens as usize);
        let stream = mix64(NS_HASH_BLOCK ^ mix64(hash_id));
        self.extend_random(&mut out, stream, self.block_size_tokens);
        out
    }

    fn hash_block_tokens(&self, hash_ids: &[u64], trace_input_tokens: u32) -> Vec<u32> {
        let total =
            scaled_hash_prompt_len(hash_ids.len(), trace_input_tokens, self.block_size_tokens)
                as usize;
        let limit = self
            .max_input_tokens
            .map_or(total, |cap| total.min(cap as usize));
        let mut out = Vec::with_capacity(limit);
        for &id in hash_ids {
            if out.len() >= limit {
                break;
            }
            out.extend(self.hash_block(id));
        }
        out.truncate(limit);
        out
    }

    fn extend_random(&self, out: &mut Vec<u32>, stream: u64, n: u32) {
        let mut rng = SplitMix64::for_stream(self.seed, stream);
        let (lo, hi) = (self.token_ids.start as u64, self.token_ids.end as u64);
        out.extend((0..n).map(|_| rng.next_in(lo, hi) as u32));
    }

    fn capped(&self, mut tokens: Vec<u32>) -> Vec<u32> {
        if let Some(cap) = self.max_input_tokens {
            tokens.truncate(cap as usize);
        }
        tokens
    }
}

/// Prompt length of a Mooncake row with `blocks` hash ids and `trace_input_tokens` tokens at the
/// trace's 512-token blocks, rescaled to `block_size_tokens`: full blocks scale exactly, the last
/// block's share is rounded up (at least one token).
pub fn scaled_hash_prompt_len(
    blocks: usize,
    trace_input_tokens: u32,
    block_size_tokens: u32,
) -> u32 {
    if blocks == 0 {
        return 0;
    }
    let full = (blocks as u32 - 1) * TRACE_BLOCK_TOKENS;
    let last = trace_input_tokens
        .saturating_sub(full)
        .clamp(1, TRACE_BLOCK_TOKENS);
    let last_scaled =
        ((last as u64 * block_size_tokens as u64).div_ceil(TRACE_BLOCK_TOKENS as u64)).max(1);
    (blocks as u32 - 1) * block_size_tokens + last_scaled as u32
}

/// The words of text prompts: each is one token, with or without a leading space, in GPT-2-style
/// BPE vocabularies (checked for SmolLM2), so N words make a prompt of about N tokens.
pub const PROMPT_WORDS: [&str; 64] = [
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be",
    "at", "by", "this", "have", "from", "or", "one", "had", "not", "but", "what", "all", "were",
    "when", "we", "there", "can", "an", "your", "which", "their", "said", "if", "do", "will",
    "each", "about", "how", "up", "out", "them", "then", "she", "many", "some", "so", "these",
    "would", "other", "into", "has", "more", "her", "two", "like", "him", "see", "time", "could",
    "make",
];

fn words_for(tokens: &[u32]) -> String {
    let mut s = String::with_capacity(tokens.len() * 5);
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(PROMPT_WORDS[(*t as usize) % PROMPT_WORDS.len()]);
    }
    s
}
