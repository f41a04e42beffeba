//! The constraint vocabulary of a `rotor_text::Tokenizer`, for the engine's tests, benches and
//! examples (the engine itself does not depend on `rotor-text`; `rotor_worker::native` has the
//! serving twin of this function).

use std::sync::Arc;

use rotor_engine::{TokenizeFn, VocabSource, VocabToken};
use rotor_text::{TokenKind, Tokenizer};

/// Control and unknown tokens are special, unused slots never match, every other token is its
/// raw bytes; the tokenizer tokenizes forced text; ends are llama.cpp's end-of-generation set.
pub fn vocab_source(tokenizer: Arc<Tokenizer>) -> VocabSource {
    // SentencePiece decoding drops the first token's leading space; a skipped control token in
    // front keeps every piece's own bytes.
    let lead = (0..tokenizer.vocab_size() as u32)
        .find(|&id| tokenizer.token_kind(id) == Some(TokenKind::Control));
    let tokens = (0..tokenizer.vocab_size() as u32)
        .map(|id| match tokenizer.token_kind(id) {
            Some(TokenKind::Control | TokenKind::Unknown) => {
                VocabToken::Special(tokenizer.token_text(id).unwrap_or_default().to_owned())
            }
            Some(TokenKind::Unused) | None => VocabToken::Bytes(Vec::new()),
            Some(_) => {
                let ids: Vec<u32> = lead.into_iter().chain([id]).collect();
                VocabToken::Bytes(tokenizer.decode_bytes(&ids, true).expect("token decodes"))
            }
        })
        .collect();
    let eos_token_ids = tokenizer.end_of_generation_ids().to_vec();
    let tokenize: TokenizeFn =
        Arc::new(move |text| tokenizer.encode(text, false).unwrap_or_default());
    VocabSource {
        tokens,
        eos_token_ids,
        tokenize: Some(tokenize),
    }
}
