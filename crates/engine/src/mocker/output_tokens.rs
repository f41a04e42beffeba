//! Which token ids the mocker generates.
//!
//! The mocker's logits have one finite entry per row, at an *ordinary* token of the model's
//! vocabulary (never a stop token), so every sampling setting draws exactly that token, requests
//! end by `max_tokens`, and the frontend's detokenizer produces plain words. The token at
//! position p is `palette[p % palette.len()]`: deterministic, and varied enough that generated
//! blocks do not all hash alike.

use rotor_protocol::TokenizerSpec;

/// llama.cpp's token type of ordinary vocabulary entries.
const TOKEN_TYPE_NORMAL: i32 = 1;

/// Up to `max` ordinary word tokens of `spec`, spread over the vocabulary: normal tokens (by
/// token type; all tokens if the spec has no types) that are not bos/eos/eot and whose text is a
/// word marker (`Ġ` of byte-level BPE or `▁` of SentencePiece) followed by 2–8 ASCII lowercase
/// letters. Falls back to any normal non-stop token if no word token exists. Ascending ids.
pub fn ordinary_token_ids(spec: &TokenizerSpec, max: usize) -> Vec<u32> {
    let stops: Vec<u32> = spec
        .bos_token_id
        .iter()
        .chain(spec.eos_token_id.iter())
        .chain(spec.eot_token_ids.iter())
        .copied()
        .collect();
    let normal = |id: usize| {
        spec.token_types
            .get(id)
            .is_none_or(|&t| t == TOKEN_TYPE_NORMAL)
            && !stops.contains(&(id as u32))
    };
    let words: Vec<u32> = spec
        .tokens
        .iter()
        .enumerate()
        .filter(|&(id, text)| normal(id) && is_word(text))
        .map(|(id, _)| id as u32)
        .collect();
    let pool = if words.is_empty() {
        (0..spec.tokens.len())
            .filter(|&id| normal(id))
            .map(|id| id as u32)
            .collect()
    } else {
        words
    };
    spread(&pool, max)
}

/// A fallback palette when no tokenizer is at hand: the middle of the vocabulary, where
/// byte-level BPE vocabularies keep ordinary merged tokens (special tokens sit at the ends).
pub fn default_output_token_ids(vocab_size: usize) -> Vec<u32> {
    vec![(vocab_size / 2) as u32]
}

fn is_word(text: &str) -> bool {
    let rest = text.strip_prefix('Ġ').or_else(|| text.strip_prefix('▁'));
    rest.is_some_and(|w| (2..=8).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_lowercase()))
}

/// At most `max` elements of `pool`, evenly spaced.
fn spread(pool: &[u32], max: usize) -> Vec<u32> {
    if pool.len() <= max {
        return pool.to_vec();
    }
    (0..max).map(|i| pool[i * pool.len() / max]).collect()
}
