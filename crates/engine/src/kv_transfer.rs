//! KV export and import: cached full blocks out of and into the engine's pool, in the KV block
//! format of `rotor_kv_cache::block_format`. Disaggregated serving (prefill → decode worker) and
//! the offload tiers (host memory, disk, peers) both go through this one pair.
//!
//! Rules:
//! - **Export** walks a sequence's block hashes (from its tokens, or given) from the first and
//!   stops at the first one the prefix cache does not hold: the result is the longest cached
//!   prefix. Every exported block is pinned (one extra holder) before its KV is copied and
//!   released afterwards, so it can be neither evicted nor overwritten mid-copy; the pins are
//!   dropped in chain order (the usual LRU touch of a use).
//! - **Import** takes blocks in chain order: the first block's parent must be absent (a first
//!   block) or cached in this engine, and every later block's parent must be the block before
//!   it. It stops at the first block that fails — undecodable, another layout, token ids that do
//!   not hash to its sequence hash, a broken chain, no block to hold it — and keeps the blocks
//!   before it (a prefix is still a usable prefix; nothing after a gap could ever be hit).
//!   Blocks the cache already holds are skipped (no copy). New blocks are allocated like any
//!   others (evicting least recently used cached free blocks), written, and committed to the
//!   prefix cache, which emits the usual `Stored` events. Every block of the chain is held until
//!   the import ends, so an import never evicts its own earlier blocks or their parent.
//! - Both need prefix caching (an uncached block could never be hit) and a runner with KV bytes
//!   (`ModelRunner::kv_block_layout`).

use rotor_kv_cache::{
    decode_kv_block_expecting, encode_kv_block_with, BlockId, KvBlockHeader, KvTiers,
};
use rotor_kv_cache::{Error as BlockError, KvBlockLayout};
use rotor_tokens::{sequence_hashes, SequenceHash};

use crate::kv_blocks::KvBlocks;
use crate::runner::ModelRunner;

/// Which cached blocks to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvExportSelector {
    /// The full blocks of these tokens (a prompt, or prompt + output).
    Tokens(Vec<u32>),
    /// These sequence hashes, in order (for example only the blocks a peer lacks).
    SequenceHashes(Vec<SequenceHash>),
}

/// Encoded blocks out of an engine, in chain order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvExport {
    pub layout: KvBlockLayout,
    /// The sequence hash of each exported block.
    pub sequence_hashes: Vec<SequenceHash>,
    /// One encoded block per hash (`layout.encoded_bytes()` bytes each).
    pub blocks: Vec<Vec<u8>>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvImportReport {
    /// Blocks written into the pool and registered in the prefix cache.
    pub imported: usize,
    /// Blocks skipped because the prefix cache already held their hash.
    pub already_cached: usize,
    /// Why the import stopped before the last block, if it did; blocks from `index` on were
    /// not imported.
    pub stopped: Option<KvImportStop>,
}

/// Where and why an import stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvImportStop {
    /// Index of the refused block in the import's list.
    pub index: usize,
    pub error: KvImportError,
}

/// Why one block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvImportError {
    /// The block does not decode: damaged, another layout, or token ids that do not hash to its
    /// sequence hash (the block format's named error).
    #[error("{0}")]
    Block(#[from] BlockError),
    /// The block's parent is neither cached here nor the block before it.
    #[error("the parent block {parent:#018x} is not cached here")]
    MissingParent { parent: SequenceHash },
    /// The block does not continue the chain of the blocks before it in the same import.
    #[error("the block's parent is {got:x?}, not the block before it ({expected:#018x})")]
    NotAChain {
        expected: SequenceHash,
        got: Option<SequenceHash>,
    },
    /// Every pool block is held by running requests (or this import).
    #[error("no free KV block to import into")]
    PoolFull,
    /// The runner could not write the payload.
    #[error("{0}")]
    Runner(String),
}

/// Import refusals by cause, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvImportRejectReason {
    /// Damaged bytes: truncated, wrong magic or version, invalid header, checksum mismatch.
    Corrupt,
    /// Another model, shape, block size or KV dtype.
    Layout,
    /// Token ids that do not hash to the claimed sequence hash.
    TokenHash,
    /// A parent neither cached nor the block before it.
    MissingParent,
    PoolFull,
    Runner,
}

impl KvImportRejectReason {
    pub const ALL: [KvImportRejectReason; 6] = [
        KvImportRejectReason::Corrupt,
        KvImportRejectReason::Layout,
        KvImportRejectReason::TokenHash,
        KvImportRejectReason::MissingParent,
        KvImportRejectReason::PoolFull,
        KvImportRejectReason::Runner,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            KvImportRejectReason::Corrupt => "corrupt",
            KvImportRejectReason::Layout => "layout",
            KvImportRejectReason::TokenHash => "token_hash",
            KvImportRejectReason::MissingParent => "missing_parent",
            KvImportRejectReason::PoolFull => "pool_full",
            KvImportRejectReason::Runner => "runner",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl KvImportError {
    pub fn reason(&self) -> KvImportRejectReason {
        match self {
            KvImportError::Block(BlockError::BlockLayoutMismatch { .. }) => {
                KvImportRejectReason::Layout
            }
            KvImportError::Block(BlockError::BlockHashMismatch { .. }) => {
                KvImportRejectReason::TokenHash
            }
            KvImportError::Block(_) => KvImportRejectReason::Corrupt,
            KvImportError::MissingParent { .. } | KvImportError::NotAChain { .. } => {
                KvImportRejectReason::MissingParent
            }
            KvImportError::PoolFull => KvImportRejectReason::PoolFull,
            KvImportError::Runner(_) => KvImportRejectReason::Runner,
        }
    }
}

/// Why a whole export or import call was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvTransferError {
    /// The runner has no KV bytes to move (for example the scripted test runner).
    #[error("this engine's runner cannot export or import KV blocks")]
    Unsupported,
    /// Prefix caching is off, so no block is ever cached or could be hit.
    #[error("prefix caching is disabled on this engine")]
    PrefixCachingDisabled,
    /// Copying a block out of the runner failed.
    #[error("{0}")]
    Runner(String),
    /// The engine has stopped.
    #[error("the engine has stopped")]
    EngineStopped,
}

/// KV transfer counters since the engine started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvTransferStats {
    pub exported_blocks: u64,
    /// Blocks written and registered by imports (not those already cached).
    pub imported_blocks: u64,
    rejections: [u64; KvImportRejectReason::ALL.len()],
}

impl KvTransferStats {
    /// Import calls that stopped at a block refused for `reason`.
    pub fn rejections(&self, reason: KvImportRejectReason) -> u64 {
        self.rejections[reason.index()]
    }

    pub(crate) fn set_rejections(&mut self, reason: KvImportRejectReason, n: u64) {
        self.rejections[reason.index()] = n;
    }

    fn reject(&mut self, reason: KvImportRejectReason) {
        self.rejections[reason.index()] += 1;
    }
}

fn usable_layout(
    kv: &KvBlocks,
    runner: &dyn ModelRunner,
) -> Result<KvBlockLayout, KvTransferError> {
    if !kv.prefix_caching() {
        return Err(KvTransferError::PrefixCachingDisabled);
    }
    runner.kv_block_layout().ok_or(KvTransferError::Unsupported)
}

/// Exports the longest cached prefix of `selector`. See the module docs.
pub(crate) fn export(
    kv: &mut KvBlocks,
    runner: &dyn ModelRunner,
    selector: &KvExportSelector,
    stats: &mut KvTransferStats,
) -> Result<KvExport, KvTransferError> {
    let layout = usable_layout(kv, runner)?;
    let hashes = match selector {
        KvExportSelector::Tokens(tokens) => sequence_hashes(tokens, kv.pool().block_size_tokens()),
        KvExportSelector::SequenceHashes(h) => h.clone(),
    };
    let mut pinned: Vec<BlockId> = Vec::new();
    for &h in &hashes {
        let repeated = kv
            .pool()
            .cached_block(h)
            .is_some_and(|b| pinned.contains(&b));
        if repeated {
            break;
        }
        match kv.pin_cached(h) {
            Some(b) => pinned.push(b),
            None => break,
        }
    }
    let result = encode_pinned(kv, runner, &layout, &hashes, &pinned);
    kv.unpin(&pinned);
    let blocks = result?;
    stats.exported_blocks += blocks.len() as u64;
    Ok(KvExport {
        layout,
        sequence_hashes: hashes[..blocks.len()].to_vec(),
        blocks,
    })
}

fn encode_pinned(
    kv: &KvBlocks,
    runner: &dyn ModelRunner,
    layout: &KvBlockLayout,
    hashes: &[SequenceHash],
    pinned: &[BlockId],
) -> Result<Vec<Vec<u8>>, KvTransferError> {
    let size = layout.encoded_bytes().unwrap_or(0);
    let mut blocks = Vec::with_capacity(pinned.len());
    for (&block, &sequence_hash) in pinned.iter().zip(hashes) {
        let (parent_hash, tokens) = kv
            .cached_origin(block)
            .expect("invariant: a pinned cached block keeps its hash");
        let header = KvBlockHeader {
            layout: *layout,
            sequence_hash,
            parent_hash,
        };
        let mut out = Vec::with_capacity(size);
        encode_kv_block_with(&header, tokens, &mut out, |buf| {
            runner
                .read_kv_block(block, buf)
                .map_err(|e| KvTransferError::Runner(e.to_string()))
        })?;
        blocks.push(out);
    }
    Ok(blocks)
}

impl From<BlockError> for KvTransferError {
    /// Only a runner whose payload size disagrees with its own layout gets here.
    fn from(e: BlockError) -> Self {
        KvTransferError::Runner(e.to_string())
    }
}

/// Imports encoded blocks given in chain order. See the module docs. With offload `tiers`, a
/// cached block evicted to make room is written back before it is overwritten.
pub(crate) fn import(
    kv: &mut KvBlocks,
    runner: &mut dyn ModelRunner,
    blocks: &[Vec<u8>],
    stats: &mut KvTransferStats,
    tiers: Option<&KvTiers>,
) -> Result<KvImportReport, KvTransferError> {
    let layout = usable_layout(kv, runner)?;
    let mut report = KvImportReport {
        imported: 0,
        already_cached: 0,
        stopped: None,
    };
    let mut chain = ImportChain {
        layout,
        tiers,
        previous: None,
        held: Vec::new(),
    };
    for (index, bytes) in blocks.iter().enumerate() {
        match chain.import_one(kv, runner, bytes) {
            Ok(true) => report.imported += 1,
            Ok(false) => report.already_cached += 1,
            Err(error) => {
                stats.reject(error.reason());
                report.stopped = Some(KvImportStop { index, error });
                break;
            }
        }
    }
    kv.unpin(&chain.held);
    stats.imported_blocks += report.imported as u64;
    Ok(report)
}

/// One import in progress.
struct ImportChain<'t> {
    layout: KvBlockLayout,
    /// Offload tiers to write back blocks the import evicts.
    tiers: Option<&'t KvTiers>,
    /// The sequence hash of the last block accepted.
    previous: Option<SequenceHash>,
    /// Every block of the chain, held until the end (the first block's parent first).
    held: Vec<BlockId>,
}

impl ImportChain<'_> {
    /// Imports one block; true if it was written, false if it was already cached.
    fn import_one(
        &mut self,
        kv: &mut KvBlocks,
        runner: &mut dyn ModelRunner,
        bytes: &[u8],
    ) -> Result<bool, KvImportError> {
        let view = decode_kv_block_expecting(bytes, &self.layout)?;
        let hash = view.header.sequence_hash;
        let parent = view.header.parent_hash;
        match (parent, self.previous) {
            (None, None) => {}
            (Some(p), Some(prev)) if p == prev => {}
            (Some(p), None) => match kv.pool().cached_block(p) {
                Some(b) if self.held.contains(&b) => {}
                Some(_) => self.held.extend(kv.pin_cached(p)),
                None => return Err(KvImportError::MissingParent { parent: p }),
            },
            // A first block after others, or a parent other than the block before: not a chain.
            (got, Some(expected)) => return Err(KvImportError::NotAChain { expected, got }),
        }
        if let Some(b) = kv.pool().cached_block(hash) {
            if !self.held.contains(&b) {
                self.held.extend(kv.pin_cached(hash));
            }
            self.previous = Some(hash);
            return Ok(false);
        }
        let block = kv.allocate_one().ok_or(KvImportError::PoolFull)?;
        if let Some(tiers) = self.tiers {
            // The block may have been evicted for this: write it back before overwriting it.
            crate::kv_offload::offload_evicted(kv, runner, tiers);
        }
        if let Err(e) = runner.write_kv_block(block, view.payload) {
            kv.unpin(&[block]);
            return Err(KvImportError::Runner(e.to_string()));
        }
        let cached = kv.commit_imported(block, hash, view.local_hash, parent, &view.token_ids);
        debug_assert!(
            cached,
            "invariant: the hash was not cached before allocating"
        );
        self.held.push(block);
        self.previous = Some(hash);
        Ok(true)
    }
}
