//! The crate's error type.

/// Everything that can go wrong while tokenizing, detokenizing or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec names a tokenizer model or pre-tokenizer this crate does not implement.
    #[error("unsupported tokenizer: model {model:?}, pre-tokenizer {pre:?}")]
    UnsupportedTokenizer { model: String, pre: Option<String> },

    /// The spec is internally inconsistent (lengths disagree, a merge is malformed, ...).
    #[error("invalid tokenizer spec: {reason}")]
    InvalidSpec { reason: String },

    /// The underlying BPE implementation failed.
    #[error("tokenization failed: {message}")]
    Tokenize { message: String },

    /// A token id outside the vocabulary was given to decode.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    UnknownTokenId { id: u32, vocab_size: usize },

    /// The chat template failed to parse or to render, or called `raise_exception(message)`.
    #[error("chat template error: {message}")]
    Template { message: String },

    /// A message content part of a type other than `text` (e.g. `image_url`).
    #[error("unsupported message content part type {part_type:?} in message {message_index}")]
    UnsupportedContent {
        message_index: usize,
        part_type: String,
    },

    /// The messages array is not shaped like OpenAI chat messages.
    #[error("invalid chat messages: {reason}")]
    InvalidMessages { reason: String },
}
