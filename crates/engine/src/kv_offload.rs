//! The engine's side of the offload tiers (`rotor_kv_cache::KvTiers`: G2 shared host memory,
//! G3 disk): write-back of evicted G1 blocks and onboarding of a waiting request's prefix.
//!
//! Rules:
//! - **Write-back on eviction.** The pool records each cached block it evicts. Before anything
//!   can overwrite such a block — after the scheduler built a step and before the runner runs
//!   it, and inside an import between allocating a block and writing it — the engine encodes it
//!   in the KV block format (the block's KV bytes and its token ids are still intact) and
//!   queues it for the tiers' writer thread. The copy is on the engine thread (one memcpy of the
//!   block plus its checksum); the file and shared-memory writes are on the writer thread.
//! - **Onboarding at admission, without blocking the step loop.** Before each schedule, every
//!   waiting request the next admission could take (at most the free sequence slots) is looked
//!   up once per admission: the G1 prefix as the scheduler will find it, then the longest run of
//!   the following blocks held by G2/G3 (at most as many as the pool has free blocks). Those are
//!   loaded and verified (checksum, layout, token ids chaining to the hash) on the tiers' loader
//!   thread while the request waits in `TierLoad::Loading` — the scheduler passes over it, so
//!   running requests keep stepping and later ones are admitted. Before a later step the loaded
//!   blocks are imported into G1 through `kv_transfer::import` (the G1 prefix pinned meanwhile)
//!   and the request is admitted with an ordinary prefix hit, so onboarded tokens count as cached
//!   tokens in its usage. An engine with nothing else to do waits on the loader (`Engine`'s loop:
//!   a bounded wait on the load results, between checks of its inbox).
//! - **Failure.** A failed, short or corrupt load stops the onboarding at that block: the prefix
//!   before it is used and the rest is recomputed (counted as a failed load). Never wrong KV,
//!   never an error for the request.
//! - The import itself (a copy into the pool per block, plus a second verification) runs on the
//!   engine thread between steps.

use std::time::Instant;

use rotor_kv_cache::{
    encode_kv_block_with, BlockId, KvBlockHeader, KvLoadRequest, KvLoaded, KvTier, KvTiers,
};
use rotor_protocol::StoredBlock;
use rotor_tokens::SequenceHash;

use crate::kv_blocks::KvBlocks;
use crate::kv_transfer::{self, KvTransferStats};
use crate::runner::ModelRunner;
use crate::sequence::{Sequence, TierLoad};

/// Encodes every block evicted since the last call and queues it for the tiers. A block whose
/// KV cannot be read is skipped (it was only a cache entry).
pub(crate) fn offload_evicted(kv: &mut KvBlocks, runner: &dyn ModelRunner, tiers: &KvTiers) {
    let evicted = kv.take_evicted();
    for (block, hash) in evicted {
        if let Some(bytes) = encode_evicted(kv, runner, tiers, block, hash) {
            let tokens_hash = rotor_tokens::local_block_hash(kv.evicted_origin(block).1);
            let stored = StoredBlock {
                block_hash: hash,
                tokens_hash,
            };
            tiers.offload(stored, bytes);
        }
    }
}

fn encode_evicted(
    kv: &KvBlocks,
    runner: &dyn ModelRunner,
    tiers: &KvTiers,
    block: BlockId,
    hash: SequenceHash,
) -> Option<Vec<u8>> {
    let (parent_hash, tokens) = kv.evicted_origin(block);
    let header = KvBlockHeader {
        layout: *tiers.layout(),
        sequence_hash: hash,
        parent_hash,
    };
    let mut out = Vec::with_capacity(tiers.block_bytes());
    encode_kv_block_with(&header, tokens, &mut out, |buf| {
        runner.read_kv_block(block, buf).map_err(|_| Skipped)
    })
    .ok()?;
    Some(out)
}

/// An evicted block that could not be encoded (its KV unreadable): it is not offloaded.
struct Skipped;

impl From<rotor_kv_cache::Error> for Skipped {
    fn from(_: rotor_kv_cache::Error) -> Self {
        Skipped
    }
}

/// Looks `seq` up once per admission: the G1 prefix the scheduler will find, then the longest
/// run of the following blocks held by G2/G3. If there is one, its load is queued on the
/// loader thread under `ticket` and `seq` waits in `TierLoad::Loading`; otherwise (or if the
/// loader's queue is full) it is `Done` and admitted as usual.
pub(crate) fn start_onboard(kv: &KvBlocks, tiers: &KvTiers, seq: &mut Sequence, ticket: u64) {
    seq.tier_load = TierLoad::Done;
    let bs = kv.pool().block_size_tokens();
    seq.hash_full_blocks(bs);
    let hashes = onboardable(seq, bs);
    let g1 = kv.pool().find_cached_prefix(hashes, seq.tokens.len()).len();
    let found = tiers.find_prefix(&hashes[g1..]);
    tiers.note_uses(&hashes[..g1 + found.len()]);
    // At most what the pool could take now; the import stops at a full pool anyway.
    let room = kv.pool().num_free();
    let blocks: Vec<_> = hashes[g1..].iter().copied().zip(found).take(room).collect();
    if blocks.is_empty() {
        return;
    }
    if tiers.start_load(KvLoadRequest { ticket, blocks }) {
        seq.tier_load = TierLoad::Loading {
            ticket,
            first_block: g1,
        };
    }
}

/// The full blocks `BlockPool::lookup` could reuse: never the block holding the last token.
fn onboardable(seq: &Sequence, block_size_tokens: usize) -> &[SequenceHash] {
    let max_blocks =
        (seq.tokens.len().saturating_sub(1) / block_size_tokens).min(seq.block_hashes.len());
    &seq.block_hashes[..max_blocks]
}

/// Where a finished load goes: the pool, the runner's KV, the tiers (for write-back of what
/// the import evicts) and the transfer counters.
pub(crate) struct Onboarding<'a> {
    pub kv: &'a mut KvBlocks,
    pub runner: &'a mut dyn ModelRunner,
    pub tiers: &'a KvTiers,
    pub transfer: &'a mut KvTransferStats,
}

/// Imports a finished load for `seq` (in `TierLoad::Loading`) into G1 and marks it `Done`.
/// The G1 blocks before the loaded ones are pinned during the import, so its allocations
/// cannot evict them; if one of them was evicted while loading, the import stops at the
/// missing parent and the rest is recomputed. Returns the blocks onboarded.
pub(crate) fn finish_onboard(to: Onboarding<'_>, seq: &mut Sequence, loaded: KvLoaded) -> usize {
    let Onboarding {
        kv,
        runner,
        tiers,
        transfer,
    } = to;
    let TierLoad::Loading { first_block, .. } = seq.tier_load else {
        return 0;
    };
    seq.tier_load = TierLoad::Done;
    let bs = kv.pool().block_size_tokens();
    let prefix = &onboardable(seq, bs)[..first_block];
    let mut pinned: Vec<BlockId> = Vec::with_capacity(prefix.len());
    for &h in prefix {
        match kv.pin_cached(h) {
            Some(b) => pinned.push(b),
            None => break,
        }
    }
    let started = Instant::now();
    let imported = match kv_transfer::import(kv, runner, &loaded.blocks, transfer, Some(tiers)) {
        Ok(report) => report.imported + report.already_cached,
        Err(_) => 0,
    };
    let import_time = started.elapsed();
    kv.unpin(&pinned);
    for tier in [KvTier::Host, KvTier::Disk] {
        let n = loaded.tiers[..imported]
            .iter()
            .filter(|&&t| t == tier)
            .count();
        if n > 0 {
            let share = import_time.mul_f64(n as f64 / imported as f64);
            tiers.record_onboard(tier, n as u64, loaded.load_time[tier.index()] + share);
        }
    }
    tracing::debug!(
        request = &*seq.id,
        g1_blocks = first_block,
        loaded = loaded.blocks.len(),
        onboarded = imported,
        "onboarded KV blocks from the offload tiers"
    );
    imported
}
