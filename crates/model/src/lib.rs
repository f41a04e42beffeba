//! rotor-model: GGUF files, quantized CPU kernels and the Llama-family forward pass.
//!
//! Reading and computing, bottom up:
//! - [`gguf`]: [`GgufFile`] parses GGUF v2/v3 over a shared read-only mmap; every malformed input
//!   is an [`Error`], never a panic. [`card`] turns its `tokenizer.*` keys into a `TokenizerSpec`.
//! - [`quant`]: [`quant::GgmlType`] geometry for every ggml type id; exact ggml block layouts and
//!   (de)quantization for F32, F16, Q8_0, Q8_1, Q4_0, Q4_1.
//! - [`matmul`]: [`matmul::WeightMatrix`] (mmap-backed, `'static + Send + Sync`) times
//!   [`matmul::Activations`], with AVX2 and portable kernels and a naive reference beside them.
//! - [`pool`]: [`ThreadPool`], persistent fork-join workers that spin briefly then block, so
//!   engines sharing cores degrade gracefully instead of collapsing.
//! - [`ops`]: RMS norm, RoPE, SwiGLU, softmax, residual add and grouped-query attention over the
//!   paged cache, each beside a naive reference.
//! - [`kv`]: [`KvStorage`], per-layer paged K/V pools (f32 or f16) addressed by block tables.
//! - [`llama`]: [`LlamaConfig`] from GGUF metadata and [`LlamaModel::forward`], one batched step
//!   over [`SeqChunk`]s; `llama::ReferenceForward` is its naive single-sequence oracle. One
//!   forward serves every architecture in `llama::SUPPORTED_ARCHS` (llama, mistral, qwen2, qwen3,
//!   gemma3, phi3); `llama::ArchFeatures` holds what each changes.
//!
//! Must not depend on tokio, sockets or any other Rotor crate than `rotor-protocol`.

pub mod card;
pub mod error;
pub mod gguf;
pub mod kv;
pub mod llama;
pub mod matmul;
pub mod ops;
pub mod pool;
pub mod quant;

pub use error::Error;
pub use gguf::GgufFile;
pub use kv::{KvBlockAccessError, KvBlockShape, KvDtype, KvStorage};
pub use llama::{ChunkOutput, LlamaConfig, LlamaModel, LoadOptions, SeqChunk};
pub use pool::ThreadPool;
