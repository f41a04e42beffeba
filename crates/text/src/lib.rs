//! rotor-text: everything between bytes on the wire and token ids.
//!
//! - [`Tokenizer`]: built from GGUF metadata ([`rotor_protocol::TokenizerSpec`]), giving the same
//!   ids as llama.cpp; byte-level BPE ("gpt2": SmolLM2, Qwen 2, Llama 3) or SentencePiece-style
//!   ("llama": Gemma 3, Llama 2); encode (optionally parsing special tokens) and decode.
//! - [`ChatTemplate`]: renders OpenAI chat messages with the model's Jinja template the way
//!   Hugging Face transformers does (minijinja, trim/lstrip blocks, `raise_exception`, ...).
//! - [`Detokenizer`]: turns a stream of ids into a stream of text without splitting UTF-8
//!   characters.
//! - [`StopMatcher`]: cuts a text stream at the first stop string, holding back text that might
//!   be the start of one.
//! - [`tools`]: tool-call parsers ([`ToolCallParser`], [`parse_tool_calls`], one state machine
//!   for streaming and batch) for hermes, llama3_json, mistral, pythonic, qwen3_coder and
//!   phi4_mini_json output.
//! - [`reasoning`]: `<think>…</think>` splitting into reasoning and content ([`ReasoningParser`]).
//!
//! Must not depend on the engine, the runtime or rotor-model (which is a dev-dependency only, for
//! tests that read the real GGUF).

mod bpe;
mod byte_level;
mod chat_template;
mod detokenizer;
mod error;
pub mod hf_dir;
mod messages;
mod pretokenizer;
mod py_json;
pub mod reasoning;
mod special;
mod spm;
mod stop;
mod strftime;
mod token_roles;
mod tokenizer;
pub mod tools;

pub use chat_template::{ChatTemplate, RenderOptions};
pub use detokenizer::Detokenizer;
pub use error::Error;
pub use reasoning::{ReasoningParser, ReasoningParserKind, ReasoningSplit};
pub use stop::{StopMatcher, StopOutcome};
pub use tokenizer::{TokenKind, Tokenizer};
pub use tools::{
    parse_tool_calls, ParsedToolCalls, ToolCall, ToolCallEvent, ToolCallParser, ToolParserKind,
    ToolSpec,
};
