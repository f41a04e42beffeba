//! The crate's one error type. Variants carry the facts needed to act on them (key, tensor, offsets).

use std::path::PathBuf;

use crate::quant::GgmlType;

/// Everything that can go wrong reading a GGUF file, preparing weights or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or mapped.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The first four bytes are not "GGUF".
    #[error("not a GGUF file: magic is {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: [u8; 4] },
    /// A GGUF version other than 2 or 3.
    #[error("unsupported GGUF version {version} (2 and 3 are supported)")]
    UnsupportedVersion { version: u32 },
    /// The file ends before `what` (starting at byte `offset`) is complete.
    #[error("truncated GGUF: {what} at byte {offset} needs {needed} bytes, {available} remain")]
    Truncated {
        what: &'static str,
        offset: u64,
        needed: u64,
        available: u64,
    },
    /// A count or length that cannot possibly fit in the rest of the file.
    #[error("implausible {what} {count} at byte {offset}: only {remaining} bytes remain")]
    ImplausibleCount {
        what: &'static str,
        count: u64,
        offset: u64,
        remaining: u64,
    },
    /// A metadata value type id that GGUF does not define.
    #[error("metadata key {key:?} has unknown value type {type_id}")]
    UnknownValueType { key: String, type_id: u32 },
    /// Arrays nested deeper than the reader allows.
    #[error("metadata key {key:?}: arrays nested deeper than {limit}")]
    NestingTooDeep { key: String, limit: usize },
    /// A string (key, value or tensor name) that is not UTF-8.
    #[error("invalid UTF-8 in {what} at byte {offset}")]
    InvalidUtf8 { what: &'static str, offset: u64 },
    /// The same metadata key appears twice.
    #[error("duplicate metadata key {key:?}")]
    DuplicateKey { key: String },
    /// The same tensor name appears twice.
    #[error("duplicate tensor {tensor:?}")]
    DuplicateTensor { tensor: String },
    /// `general.alignment` is zero, not a power of two, or not an integer.
    #[error("invalid general.alignment {alignment}")]
    BadAlignment { alignment: u64 },
    /// A tensor with zero or more than 4 dimensions.
    #[error("tensor {tensor:?} has {n_dims} dimensions (1 to 4 supported)")]
    BadDimCount { tensor: String, n_dims: u32 },
    /// A ggml type id this crate does not know.
    #[error("tensor {tensor:?} has unknown ggml type id {type_id}")]
    UnknownTensorType { tensor: String, type_id: u32 },
    /// The product of a tensor's dims (or its byte size) overflows.
    #[error("tensor {tensor:?}: element count of dims {dims:?} overflows")]
    DimsOverflow { tensor: String, dims: Vec<u64> },
    /// The inner dimension is not a whole number of quantization blocks.
    #[error("tensor {tensor:?}: row length {row_len} is not a multiple of {dtype:?} block size {block_size}")]
    RowNotBlockMultiple {
        tensor: String,
        dtype: GgmlType,
        row_len: u64,
        block_size: u64,
    },
    /// A tensor offset that is not a multiple of the file's alignment.
    #[error("tensor {tensor:?}: offset {offset} is not a multiple of alignment {alignment}")]
    MisalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    /// A tensor whose bytes extend past the end of the data section.
    #[error("tensor {tensor:?}: bytes {offset}..{offset}+{size_bytes} exceed the data section of {data_len} bytes")]
    TensorOutOfBounds {
        tensor: String,
        offset: u64,
        size_bytes: u64,
        data_len: u64,
    },
    /// A required metadata key is absent.
    #[error("missing metadata key {key:?}")]
    MissingKey { key: String },
    /// A metadata key holds a value of another type (or out of range for the requested one).
    #[error("metadata key {key:?}: expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: String,
    },
    /// A tensor the caller asked for is not in the file.
    #[error("missing tensor {name:?}")]
    MissingTensor { name: String },
    /// A tensor used as a weight matrix is not 2-D.
    #[error("tensor {tensor:?} has dims {dims:?}, expected a 2-D matrix")]
    NotAMatrix { tensor: String, dims: Vec<u64> },
    /// A ggml type that is known (sizeable) but has no compute kernel yet.
    #[error("tensor {tensor:?}: ggml type {dtype:?} is not supported for compute")]
    UnsupportedType { tensor: String, dtype: GgmlType },
    // --- model loading and the forward pass ---
    /// `general.architecture` names a model family this crate cannot run.
    #[error("unsupported model architecture {arch:?} (supported: {supported})")]
    UnsupportedArchitecture {
        arch: String,
        supported: &'static str,
    },
    /// Hyperparameters that are present but inconsistent or outside what the kernels handle.
    #[error("invalid model config: {what}")]
    InvalidConfig { what: String },
    /// A tensor whose dims differ from what the config implies.
    #[error("tensor {tensor:?} has dims {got:?}, expected {expected:?}")]
    ShapeMismatch {
        tensor: String,
        expected: Vec<u64>,
        got: Vec<u64>,
    },
    /// A token id outside the vocabulary.
    #[error("chunk {chunk}: token id {token} is outside the vocabulary of {vocab_size}")]
    TokenOutOfRange {
        chunk: usize,
        token: u32,
        vocab_size: usize,
    },
    /// A position at or past the model's context length.
    #[error(
        "chunk {chunk}: positions up to {last_pos} exceed the context length {context_length}"
    )]
    ContextOverflow {
        chunk: usize,
        last_pos: usize,
        context_length: usize,
    },
    /// The block table does not cover every position the chunk writes or reads.
    #[error("chunk {chunk}: block table has {got} blocks, positions need {needed}")]
    BlockTableTooShort {
        chunk: usize,
        needed: usize,
        got: usize,
    },
    /// A block id not in the KV storage.
    #[error("chunk {chunk}: block id {block} out of range (KV storage has {num_blocks} blocks)")]
    BlockOutOfRange {
        chunk: usize,
        block: u32,
        num_blocks: usize,
    },
    /// A chunk without tokens.
    #[error("chunk {chunk} has no tokens")]
    EmptyChunk { chunk: usize },
    /// `forward_outputs` was given a different number of outputs than chunks.
    #[error("{outputs} chunk outputs given for {chunks} chunks")]
    OutputsMismatch { chunks: usize, outputs: usize },
    /// KV storage built for another model shape.
    #[error("KV storage shape {got} does not match the model's {expected}")]
    KvShapeMismatch { expected: String, got: String },
}
