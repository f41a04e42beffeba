//! The crate's error type: misuse of the block pool by its caller.

use crate::BlockId;

/// Why a block-pool call was refused. Every refused call leaves the pool unchanged.
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
}
