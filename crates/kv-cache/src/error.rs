//! The crate's error type: misuse of the block pool by its caller, and encoded KV blocks
//! (`block_format`) that cannot be used.

use std::path::PathBuf;

use crate::BlockId;

/// Why a block-pool call, a KV block encode/decode or an offload-tier operation was refused. Every refused call leaves the
/// pool (or the output buffer) unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// `allocate` asked for more blocks than the free queue holds.
    #[error("cannot allocate {requested} KV blocks: only {free} are free")]
    OutOfBlocks { requested: usize, free: usize },
    /// A block id outside `0..num_blocks`.
    #[error("block {block} does not exist (the pool has {num_blocks} blocks)")]
    UnknownBlock { block: BlockId, num_blocks: usize },
    /// A block that nobody holds was freed or committed (a double free or a stale table).
    #[error("block {block} is not held by anyone")]
    NotHeld { block: BlockId },
    /// A block already caches a different hash than the one committed (a stale block table).
    #[error("block {block} already caches hash {cached:#x}, not {committed:#x}")]
    AlreadyCached {
        block: BlockId,
        cached: u64,
        committed: u64,
    },
    /// The same block appears twice in one `free` call.
    #[error("block {block} appears twice in one free")]
    DuplicateInFree { block: BlockId },
    /// An encoded block is shorter than its header says it must be.
    #[error("KV block truncated: {got} bytes, at least {needed} needed")]
    BlockTruncated { needed: usize, got: usize },
    /// An encoded block is followed by bytes that belong to no block.
    #[error("KV block is {got} bytes, its header says {expected}")]
    BlockLengthMismatch { expected: usize, got: usize },
    /// The bytes do not start with the KV block magic.
    #[error("not a KV block: magic {got:02x?}")]
    BadBlockMagic { got: [u8; 8] },
    /// A KV block format version this build does not read.
    #[error("KV block format version {got} is not supported (this build reads {supported})")]
    UnsupportedBlockVersion { got: u16, supported: u16 },
    /// A header field holds a value no encoder writes (after the checksum matched).
    #[error("KV block header field {field} has the invalid value {value}")]
    InvalidBlockHeader { field: &'static str, value: u64 },
    /// The checksum over header and payload does not match: the bytes were damaged.
    #[error("KV block checksum mismatch: stored {stored:#018x}, computed {computed:#018x}")]
    BlockChecksumMismatch { stored: u64, computed: u64 },
    /// The block's layout differs from the receiver's in `field`.
    #[error("KV block layout mismatch in {field}: expected {expected}, got {got}")]
    BlockLayoutMismatch {
        field: &'static str,
        expected: u64,
        got: u64,
    },
    /// The token ids (chained onto the parent hash) do not hash to the block's sequence hash.
    #[error("KV block token ids hash to {computed:#018x}, not the claimed {claimed:#018x}")]
    BlockHashMismatch { claimed: u64, computed: u64 },
    /// A layout whose block size in bytes overflows `usize`.
    #[error("KV block layout too large: its byte size overflows")]
    BlockLayoutTooLarge,
    /// What an encoder was given does not fit the layout (`what`: token ids or payload bytes).
    #[error("KV block {what}: expected {expected}, got {got}")]
    BlockContentMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A file operation of an offload tier failed (`op`: open, write, rename, mmap, …).
    #[error("KV tier {op} failed on {path:?}: {message}")]
    TierIo {
        path: PathBuf,
        op: &'static str,
        kind: std::io::ErrorKind,
        message: String,
    },
    /// An existing shared host pool file was made for other blocks (another model or block
    /// size) or is not a pool file.
    #[error("shared KV host pool {path:?}: {field} is {got}, expected {expected}")]
    HostPoolMismatch {
        path: PathBuf,
        field: &'static str,
        expected: u64,
        got: u64,
    },
    /// An offload tier setting that cannot work.
    #[error("invalid KV tier config: {field} {reason}")]
    InvalidTierConfig {
        field: &'static str,
        reason: &'static str,
    },
}
