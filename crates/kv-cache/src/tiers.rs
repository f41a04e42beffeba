//! `KvTiers`: the offload tiers behind an engine's block pool (G1) — G2, host memory shared by
//! the workers of a machine ([`SharedHostPool`]), and G3, local disk ([`DiskStore`]) — with a
//! writer thread of their own.
//!
//! Rules:
//! - **Offload** (`offload`): the engine hands over a block it evicts from G1, already encoded
//!   in the block format. The call never blocks: the block goes into a bounded queue (a full
//!   queue drops it, counted) and the writer thread ("rotor-kv-tiers") stores it in G2; the
//!   block G2 evicts for it is offered to G3. Without G2, G1 evictions are offered to G3
//!   directly. G3 admits per its frequency filter. Write errors are counted, never fatal.
//! - **Lookup** (`find_prefix`): the longest run of the given hashes held by G2 or G3 (G2
//!   first), as the tier of each block. It first checks that G2's file is still the mapped one
//!   (removed, replaced or truncated underneath → the blocks the old file held are counted as
//!   failed loads and a fresh file is attached).
//! - **Load** (`load`, or `start_load` on the loader thread "rotor-kv-loader" with the result
//!   picked up by `try_loaded` / `wait_loaded`): each block's bytes from its tier, decoded and
//!   verified against the receiver's layout and the expected hash (checksum, token ids chaining
//!   to the hash), in order, stopping at the first failure — a failed load (the bad G2 slot is
//!   emptied, the bad G3 file deleted); the caller recomputes from there.
//! - Counters per tier ([`KvTierStats`]) are atomics shared with the threads.
//! - **Changes** (`take_changes`): what this engine's threads did to the tiers, for its KV
//!   events — a block written to G2 or G3, or found already there (`Stored`: the router may
//!   not know it yet, e.g. after a restart), and a block G2 or G3 evicted or dropped as corrupt
//!   (`Removed`). Each worker reports what its own writer and loader did, so a G2 block another
//!   worker of the machine wrote is reported by that worker, and a block one worker's write
//!   evicted is reported removed by that worker whoever wrote it (the router keeps G2 per pool,
//!   not per worker). Changes wait in a list the engine drains every step; it grows by at most a
//!   few entries per offloaded or loaded block.
//!
//! No async runtime: the writer and the loader are plain threads fed by bounded
//! `std::sync::mpsc` channels; lookups run on the caller's thread.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rotor_protocol::{CacheTier, StoredBlock};
use rotor_tokens::SequenceHash;

use crate::block_format::{decode_kv_block, decode_kv_block_expecting, KvBlockLayout};
use crate::disk_store::{DiskAdmission, DiskStore};
use crate::error::Error;
use crate::host_pool::{PutOutcome, SegmentCheck, SharedHostPool};

/// Where shared host-memory files live.
pub const HOST_POOL_DIR: &str = "/dev/shm";

/// G2: host memory shared by the workers of one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTierConfig {
    /// The pool's name: the file is `{dir}/rotor-kv-{name}`. Workers with the same name (and
    /// the same model and block size) share blocks. Letters, digits, `-`, `_`, `.` only.
    pub name: String,
    /// Bytes of blocks the pool holds (rounded down to whole encoded blocks). The first worker
    /// to create the file fixes it.
    pub capacity_bytes: u64,
    /// The directory of the file: [`HOST_POOL_DIR`] in production.
    pub dir: PathBuf,
}

/// G3: blocks on local disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskTierConfig {
    pub dir: PathBuf,
    pub capacity_bytes: u64,
    /// Uses (prefix hits in any tier) a block needs before it is written to disk; 1 by
    /// default (blocks never reused stay off the disk), 0 admits every offered block.
    pub admit_min_uses: u32,
}

/// The offload tiers of one engine. Either may be absent; both absent = no tiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvTiersConfig {
    pub host: Option<HostTierConfig>,
    pub disk: Option<DiskTierConfig>,
    /// Blocks waiting for the writer thread before offloads are dropped.
    pub offload_queue_blocks: usize,
}

impl Default for KvTiersConfig {
    fn default() -> Self {
        Self {
            host: None,
            disk: None,
            offload_queue_blocks: 256,
        }
    }
}

impl KvTiersConfig {
    pub fn is_enabled(&self) -> bool {
        self.host.is_some() || self.disk.is_some()
    }

    /// Checks names and sizes.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(host) = &self.host {
            let ok = !host.name.is_empty()
                && host
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && !host.name.starts_with('.');
            if !ok {
                return Err(Error::InvalidTierConfig {
                    field: "host name",
                    reason: "letters, digits, '-', '_', '.' only (not leading '.')",
                });
            }
            if host.capacity_bytes == 0 {
                return Err(Error::InvalidTierConfig {
                    field: "host capacity_bytes",
                    reason: "must be positive",
                });
            }
        }
        if matches!(&self.disk, Some(d) if d.capacity_bytes == 0) {
            return Err(Error::InvalidTierConfig {
                field: "disk capacity_bytes",
                reason: "must be positive",
            });
        }
        if self.offload_queue_blocks == 0 {
            return Err(Error::InvalidTierConfig {
                field: "offload_queue_blocks",
                reason: "must be at least 1",
            });
        }
        Ok(())
    }
}

impl HostTierConfig {
    /// The shared file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(format!("rotor-kv-{}", self.name))
    }
}

/// Which offload tier holds a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KvTier {
    /// G2: shared host memory.
    Host,
    /// G3: local disk.
    Disk,
}

impl KvTier {
    /// 0 for G2, 1 for G3 (per-tier arrays such as `KvLoaded::load_time`).
    pub fn index(self) -> usize {
        match self {
            KvTier::Host => 0,
            KvTier::Disk => 1,
        }
    }
}

impl From<KvTier> for CacheTier {
    fn from(tier: KvTier) -> Self {
        match tier {
            KvTier::Host => CacheTier::Host,
            KvTier::Disk => CacheTier::Disk,
        }
    }
}

/// What the tiers' threads did to a tier, for the engine's KV events (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierChange {
    /// The blocks are held by `tier` (written now, or found already there).
    Stored {
        tier: KvTier,
        blocks: Vec<StoredBlock>,
    },
    /// `tier` no longer holds the blocks (evicted, or dropped after a failed verification).
    Removed {
        tier: KvTier,
        hashes: Vec<SequenceHash>,
    },
}

/// One tier's counters since start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Blocks held now (G2: every worker's blocks in the shared file).
    pub blocks_held: u64,
    pub bytes_held: u64,
    /// Blocks a lookup found here, beyond the G1 prefix.
    pub hits: u64,
    /// Blocks written here.
    pub offloads: u64,
    /// Blocks loaded from here, verified and imported into G1.
    pub onboards: u64,
    /// Time spent loading, verifying and importing those blocks.
    pub onboard_time: Duration,
    /// Blocks found here that could not be delivered: read error, torn or corrupt bytes, a
    /// segment removed underneath. The request recomputed them.
    pub failed_loads: u64,
    /// Writes that failed (disk full, I/O error, G2 contention) and were skipped.
    pub write_errors: u64,
    /// Blocks offered but not written: G3's frequency filter or too large.
    pub not_admitted: u64,
}

/// Counters of both tiers, plus offloads dropped because the writer's queue was full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvTierStats {
    pub host: TierStats,
    pub disk: TierStats,
    pub offloads_dropped: u64,
}

#[derive(Debug, Default)]
struct TierCounters {
    hits: AtomicU64,
    offloads: AtomicU64,
    onboards: AtomicU64,
    onboard_time_ns: AtomicU64,
    failed_loads: AtomicU64,
    write_errors: AtomicU64,
    not_admitted: AtomicU64,
}

impl TierCounters {
    fn snapshot(&self, blocks_held: u64, bytes_held: u64) -> TierStats {
        let r = Ordering::Relaxed;
        TierStats {
            blocks_held,
            bytes_held,
            hits: self.hits.load(r),
            offloads: self.offloads.load(r),
            onboards: self.onboards.load(r),
            onboard_time: Duration::from_nanos(self.onboard_time_ns.load(r)),
            failed_loads: self.failed_loads.load(r),
            write_errors: self.write_errors.load(r),
            not_admitted: self.not_admitted.load(r),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    host: TierCounters,
    disk: TierCounters,
    dropped: AtomicU64,
}

impl Counters {
    fn tier(&self, tier: KvTier) -> &TierCounters {
        match tier {
            KvTier::Host => &self.host,
            KvTier::Disk => &self.disk,
        }
    }
}

enum Job {
    Offload(StoredBlock, Vec<u8>),
    Flush(SyncSender<()>),
}

/// Blocks to load in the background, in chain order (a prefix found by `find_prefix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvLoadRequest {
    /// The caller's id for the result.
    pub ticket: u64,
    pub blocks: Vec<(SequenceHash, KvTier)>,
}

/// The result of a [`KvLoadRequest`]: the verified leading blocks, up to the first that
/// failed (counted as a failed load).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvLoaded {
    pub ticket: u64,
    /// Encoded, verified blocks: a prefix of the request's.
    pub blocks: Vec<Vec<u8>>,
    /// The tier of each loaded block.
    pub tiers: Vec<KvTier>,
    /// Time spent reading and verifying, per tier: `[host, disk]`.
    pub load_time: [Duration; 2],
}

/// Loads the loader thread has not answered yet.
const LOAD_QUEUE: usize = 64;

/// The stores shared by `KvTiers` and its threads.
#[derive(Debug)]
struct Stores {
    host: Option<SharedHostPool>,
    disk: Option<DiskStore>,
    layout: KvBlockLayout,
    counters: Counters,
    changes: Mutex<Vec<TierChange>>,
}

/// The offload tiers of one engine. See the module docs.
#[derive(Debug)]
pub struct KvTiers {
    stores: Arc<Stores>,
    block_bytes: usize,
    queue: Option<SyncSender<Job>>,
    writer: Option<JoinHandle<()>>,
    loads: Option<SyncSender<KvLoadRequest>>,
    loaded: Receiver<KvLoaded>,
    loader: Option<JoinHandle<()>>,
}

impl KvTiers {
    /// Opens (or creates) the configured stores for blocks of `layout` and starts the writer.
    pub fn open(cfg: &KvTiersConfig, layout: KvBlockLayout) -> Result<Self, Error> {
        cfg.validate()?;
        let block_bytes = layout.encoded_bytes().ok_or(Error::BlockLayoutTooLarge)?;
        // Slots are 8-byte multiples so the table's words stay aligned; blocks are shorter.
        let slot_bytes = block_bytes.div_ceil(8) * 8;
        let host = match &cfg.host {
            Some(h) => Some(SharedHostPool::open(
                &h.path(),
                slot_bytes,
                h.capacity_bytes,
            )?),
            None => None,
        };
        let disk = match &cfg.disk {
            Some(d) => Some(DiskStore::open(&d.dir, d.capacity_bytes, d.admit_min_uses)?),
            None => None,
        };
        let stores = Arc::new(Stores {
            host,
            disk,
            layout,
            counters: Counters::default(),
            changes: Mutex::new(Vec::new()),
        });
        let spawn_error = |e: std::io::Error| Error::TierIo {
            path: PathBuf::new(),
            op: "spawn tier thread",
            kind: e.kind(),
            message: e.to_string(),
        };
        let (tx, rx) = sync_channel(cfg.offload_queue_blocks);
        let thread_stores = stores.clone();
        let writer = std::thread::Builder::new()
            .name("rotor-kv-tiers".into())
            .spawn(move || write_loop(&thread_stores, rx))
            .map_err(spawn_error)?;
        let (load_tx, load_rx) = sync_channel(LOAD_QUEUE);
        // Unbounded: the engine takes results before every step and has at most one load in
        // flight per waiting request.
        let (loaded_tx, loaded_rx) = channel();
        let thread_stores = stores.clone();
        let loader = std::thread::Builder::new()
            .name("rotor-kv-loader".into())
            .spawn(move || load_loop(&thread_stores, load_rx, loaded_tx))
            .map_err(spawn_error)?;
        Ok(Self {
            stores,
            block_bytes,
            queue: Some(tx),
            writer: Some(writer),
            loads: Some(load_tx),
            loaded: loaded_rx,
            loader: Some(loader),
        })
    }

    /// The layout of the blocks these tiers hold.
    pub fn layout(&self) -> &KvBlockLayout {
        &self.stores.layout
    }

    /// Bytes of one encoded block.
    pub fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    pub fn has_host(&self) -> bool {
        self.stores.host.is_some()
    }

    pub fn has_disk(&self) -> bool {
        self.stores.disk.is_some()
    }

    /// Queues an evicted block (encoded) for the tiers; never blocks. False if it was dropped.
    pub fn offload(&self, block: StoredBlock, encoded: Vec<u8>) -> bool {
        let Some(queue) = &self.queue else {
            return false;
        };
        match queue.try_send(Job::Offload(block, encoded)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stores.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Waits until every offload queued before this call is written (tests, shutdown).
    pub fn flush(&self) {
        let Some(queue) = &self.queue else {
            return;
        };
        let (tx, rx) = sync_channel(1);
        if queue.send(Job::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// What the tiers' threads changed since the last call, in order (see the module docs).
    pub fn take_changes(&self) -> Vec<TierChange> {
        std::mem::take(&mut *self.stores.changes())
    }

    /// Counts a use of each block (a prefix hit), for G3's admission filter.
    pub fn note_uses(&self, hashes: &[SequenceHash]) {
        if let Some(disk) = &self.stores.disk {
            for &h in hashes {
                disk.note_use(h);
            }
        }
    }

    /// The tier of each block of the longest run of `hashes` held by G2 or G3.
    pub fn find_prefix(&self, hashes: &[SequenceHash]) -> Vec<KvTier> {
        let counters = &self.stores.counters;
        if let Some(host) = &self.stores.host {
            match host.check_segment(hashes) {
                Ok(SegmentCheck::Intact) => {}
                Ok(SegmentCheck::Reattached { lost_blocks }) => {
                    counters
                        .host
                        .failed_loads
                        .fetch_add(lost_blocks as u64, Ordering::Relaxed);
                }
                Err(_) => {
                    counters.host.failed_loads.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let mut tiers = Vec::new();
        for &h in hashes {
            let tier = if self.stores.host.as_ref().is_some_and(|p| p.contains(h)) {
                KvTier::Host
            } else if self.stores.disk.as_ref().is_some_and(|d| d.contains(h)) {
                KvTier::Disk
            } else {
                break;
            };
            counters.tier(tier).hits.fetch_add(1, Ordering::Relaxed);
            tiers.push(tier);
        }
        tiers
    }

    /// The verified encoded block `hash` from `tier`, or `None` (counted as a failed load).
    pub fn load(&self, tier: KvTier, hash: SequenceHash) -> Option<Vec<u8>> {
        self.stores.load(tier, hash)
    }

    /// Queues `request` for the loader thread; false (nothing queued) if its queue is full.
    pub fn start_load(&self, request: KvLoadRequest) -> bool {
        self.loads
            .as_ref()
            .is_some_and(|loads| loads.try_send(request).is_ok())
    }

    /// A finished load, if one is ready.
    pub fn try_loaded(&self) -> Option<KvLoaded> {
        self.loaded.try_recv().ok()
    }

    /// Waits up to `timeout` for a finished load.
    pub fn wait_loaded(&self, timeout: Duration) -> Option<KvLoaded> {
        self.loaded.recv_timeout(timeout).ok()
    }

    /// Records blocks of `tier` imported into G1 and the time it took.
    pub fn record_onboard(&self, tier: KvTier, blocks: u64, time: Duration) {
        let c = self.stores.counters.tier(tier);
        c.onboards.fetch_add(blocks, Ordering::Relaxed);
        c.onboard_time_ns.fetch_add(
            u64::try_from(time.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Counters of both tiers, with what each holds now.
    pub fn stats(&self) -> KvTierStats {
        let c = &self.stores.counters;
        let host = match &self.stores.host {
            Some(p) => {
                let n = p.blocks_held() as u64;
                c.host.snapshot(n, n * self.block_bytes as u64)
            }
            None => c.host.snapshot(0, 0),
        };
        let disk = match &self.stores.disk {
            Some(d) => {
                let (n, bytes) = d.held();
                c.disk.snapshot(n as u64, bytes)
            }
            None => c.disk.snapshot(0, 0),
        };
        KvTierStats {
            host,
            disk,
            offloads_dropped: c.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Drop for KvTiers {
    /// Writes what is queued, then stops the writer and the loader.
    fn drop(&mut self) {
        self.queue = None;
        self.loads = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        if let Some(loader) = self.loader.take() {
            let _ = loader.join();
        }
    }
}

impl Stores {
    fn changes(&self) -> std::sync::MutexGuard<'_, Vec<TierChange>> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, change: TierChange) {
        self.changes().push(change);
    }

    fn load(&self, tier: KvTier, hash: SequenceHash) -> Option<Vec<u8>> {
        let bytes = match tier {
            KvTier::Host => self.host.as_ref().and_then(|p| p.get(hash)),
            KvTier::Disk => self.disk.as_ref().and_then(|d| d.get(hash).ok()),
        };
        let verified = bytes.filter(|b| {
            decode_kv_block_expecting(b, &self.layout)
                .is_ok_and(|view| view.header.sequence_hash == hash)
        });
        if verified.is_none() {
            self.counters
                .tier(tier)
                .failed_loads
                .fetch_add(1, Ordering::Relaxed);
            match tier {
                KvTier::Host => self.host.iter().for_each(|p| p.forget(hash)),
                KvTier::Disk => self.disk.iter().for_each(|d| d.forget(hash)),
            }
            self.record(TierChange::Removed {
                tier,
                hashes: vec![hash],
            });
        }
        verified
    }
}

fn load_loop(stores: &Stores, requests: Receiver<KvLoadRequest>, done: Sender<KvLoaded>) {
    while let Ok(request) = requests.recv() {
        let mut loaded = KvLoaded {
            ticket: request.ticket,
            blocks: Vec::with_capacity(request.blocks.len()),
            tiers: Vec::with_capacity(request.blocks.len()),
            load_time: [Duration::ZERO; 2],
        };
        for (hash, tier) in request.blocks {
            let started = std::time::Instant::now();
            let block = stores.load(tier, hash);
            loaded.load_time[tier.index()] += started.elapsed();
            match block {
                Some(bytes) => {
                    loaded.blocks.push(bytes);
                    loaded.tiers.push(tier);
                }
                None => break,
            }
        }
        if done.send(loaded).is_err() {
            return;
        }
    }
}

fn write_loop(stores: &Stores, jobs: Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Offload(block, bytes) => write_block(stores, block, &bytes),
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

fn write_block(stores: &Stores, block: StoredBlock, bytes: &[u8]) {
    let c = &stores.counters;
    let hash = block.block_hash;
    let demoted = match &stores.host {
        Some(host) => match host.put(hash, bytes) {
            Ok(PutOutcome::Written { evicted }) => {
                c.host.offloads.fetch_add(1, Ordering::Relaxed);
                stores.record(TierChange::Stored {
                    tier: KvTier::Host,
                    blocks: vec![block],
                });
                if let Some((old, _)) = &evicted {
                    stores.record(TierChange::Removed {
                        tier: KvTier::Host,
                        hashes: vec![*old],
                    });
                }
                // The block G2 displaced goes down to G3 if it decodes (its tokens' own hash, for
                // the event, is in it).
                evicted.and_then(|(old, bytes)| {
                    let tokens_hash = decode_kv_block(&bytes).ok()?.local_hash;
                    let block = StoredBlock {
                        block_hash: old,
                        tokens_hash,
                    };
                    Some((block, bytes))
                })
            }
            Ok(PutOutcome::AlreadyHeld) => {
                stores.record(TierChange::Stored {
                    tier: KvTier::Host,
                    blocks: vec![block],
                });
                None
            }
            Ok(PutOutcome::Contended) | Err(_) => {
                c.host.write_errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        },
        None => Some((block, bytes.to_vec())),
    };
    let (Some(disk), Some((block, bytes))) = (&stores.disk, demoted) else {
        return;
    };
    match disk.offer(block.block_hash, &bytes) {
        Ok(DiskAdmission::Written { evicted }) => {
            c.disk.offloads.fetch_add(1, Ordering::Relaxed);
            stores.record(TierChange::Stored {
                tier: KvTier::Disk,
                blocks: vec![block],
            });
            if !evicted.is_empty() {
                stores.record(TierChange::Removed {
                    tier: KvTier::Disk,
                    hashes: evicted,
                });
            }
        }
        Ok(DiskAdmission::AlreadyHeld) => {
            stores.record(TierChange::Stored {
                tier: KvTier::Disk,
                blocks: vec![block],
            });
        }
        Ok(DiskAdmission::Filtered) | Ok(DiskAdmission::TooLarge) => {
            c.disk.not_admitted.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {
            c.disk.write_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}
