//! `DiskStore`: the G3 tier — one file per encoded KV block in a directory, LRU-evicted under a
//! capacity in bytes, with a frequency filter on admission.
//!
//! Parameters and rules:
//! - `dir`: the directory (created if absent). A block is the file `{sequence_hash:016x}.kvb`
//!   holding exactly its encoded bytes (the block format carries its own checksum). A write goes
//!   to `{hash}.tmp` and is renamed into place, so a crash leaves no half file under a block's
//!   name; leftover `.tmp` files are removed at start-up.
//! - `capacity_bytes`: the sum of the blocks' file sizes never exceeds it; admitting a block
//!   first deletes least recently used blocks (reads and re-admissions touch).
//! - `admit_min_uses`: a block is admitted only once it has been used at least this many times
//!   (`note_use`: a prefix hit in any tier). 0 admits every block; 1 (KVBM's default filter) keeps
//!   blocks computed once and never reused off the disk. Use counts are kept for the most
//!   recent `USE_TABLE_LIMIT` hashes (the table is cleared when it fills).
//! - The index (hash → size, LRU order) is rebuilt at start-up by scanning the directory, the
//!   oldest modification time first in LRU order, so a restarted worker finds its blocks. A file
//!   whose name does not parse is left alone.
//! - Every I/O error is returned to the caller (which counts it and carries on); a failed write
//!   leaves the index as it was.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rotor_tokens::SequenceHash;

use crate::error::Error;

/// Hashes whose use counts are remembered for the admission filter.
const USE_TABLE_LIMIT: usize = 1 << 16;
const BLOCK_EXT: &str = "kvb";

#[derive(Debug, Default)]
struct DiskIndex {
    /// hash → (file bytes, LRU tick).
    entries: HashMap<SequenceHash, (u64, u64)>,
    /// LRU tick → hash, oldest first.
    lru: BTreeMap<u64, SequenceHash>,
    tick: u64,
    held_bytes: u64,
    uses: HashMap<SequenceHash, u32>,
}

impl DiskIndex {
    fn touch(&mut self, hash: SequenceHash) {
        if let Some((_, tick)) = self.entries.get_mut(&hash) {
            self.lru.remove(tick);
            self.tick += 1;
            *tick = self.tick;
            self.lru.insert(self.tick, hash);
        }
    }

    fn insert(&mut self, hash: SequenceHash, bytes: u64) {
        self.tick += 1;
        self.entries.insert(hash, (bytes, self.tick));
        self.lru.insert(self.tick, hash);
        self.held_bytes += bytes;
    }

    fn remove(&mut self, hash: SequenceHash) {
        if let Some((bytes, tick)) = self.entries.remove(&hash) {
            self.lru.remove(&tick);
            self.held_bytes -= bytes;
        }
    }
}

/// What `DiskStore::offer` did with a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskAdmission {
    /// Written; the `evicted` blocks were deleted to make room (least recently used first).
    Written { evicted: Vec<SequenceHash> },
    /// Already on disk (touched).
    AlreadyHeld,
    /// Used fewer than `admit_min_uses` times.
    Filtered,
    /// Larger than the whole capacity.
    TooLarge,
}

/// G3: blocks in files. See the module docs.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    capacity_bytes: u64,
    admit_min_uses: u32,
    index: Mutex<DiskIndex>,
}

fn io_error(path: &Path, op: &'static str, e: &std::io::Error) -> Error {
    Error::TierIo {
        path: path.to_path_buf(),
        op,
        kind: e.kind(),
        message: e.to_string(),
    }
}

impl DiskStore {
    /// Opens `dir` (creating it), rebuilds the index from its files and trims it to
    /// `capacity_bytes`.
    pub fn open(dir: &Path, capacity_bytes: u64, admit_min_uses: u32) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, "create dir", &e))?;
        let mut found: Vec<(std::time::SystemTime, SequenceHash, u64)> = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, "scan", &e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let ext = path.extension().and_then(|e| e.to_str());
            if ext == Some("tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let hash = path
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|s| s.len() == 16)
                .and_then(|s| u64::from_str_radix(s, 16).ok());
            let (Some(hash), Some(BLOCK_EXT)) = (hash, ext) else {
                continue;
            };
            if let Ok(meta) = entry.metadata() {
                let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                found.push((mtime, hash, meta.len()));
            }
        }
        found.sort();
        let mut index = DiskIndex::default();
        for (_, hash, bytes) in found {
            index.insert(hash, bytes);
        }
        let store = Self {
            dir: dir.to_path_buf(),
            capacity_bytes,
            admit_min_uses,
            index: Mutex::new(index),
        };
        store.evict_to(&mut store.index(), capacity_bytes);
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the block `hash`.
    pub fn block_path(&self, hash: SequenceHash) -> PathBuf {
        self.dir.join(format!("{hash:016x}.{BLOCK_EXT}"))
    }

    pub fn contains(&self, hash: SequenceHash) -> bool {
        self.index().entries.contains_key(&hash)
    }

    /// (blocks, bytes) on disk.
    pub fn held(&self) -> (usize, u64) {
        let index = self.index();
        (index.entries.len(), index.held_bytes)
    }

    /// Counts one use of `hash` for the admission filter.
    pub fn note_use(&self, hash: SequenceHash) {
        let mut index = self.index();
        if index.uses.len() >= USE_TABLE_LIMIT {
            index.uses.clear();
        }
        *index.uses.entry(hash).or_insert(0) += 1;
    }

    /// Reads the block's file (unverified: decode it). A read error drops the block from the
    /// index (its file is deleted when possible) and is returned.
    pub fn get(&self, hash: SequenceHash) -> Result<Vec<u8>, Error> {
        let path = self.block_path(hash);
        match std::fs::read(&path) {
            Ok(bytes) => {
                self.index().touch(hash);
                Ok(bytes)
            }
            Err(e) => {
                self.forget(hash);
                Err(io_error(&path, "read", &e))
            }
        }
    }

    /// Deletes a block (one that failed verification, or whose read failed).
    pub fn forget(&self, hash: SequenceHash) {
        self.index().remove(hash);
        let _ = std::fs::remove_file(self.block_path(hash));
    }

    /// Admits `bytes` under `hash` if the filter and capacity allow (see the module docs).
    pub fn offer(&self, hash: SequenceHash, bytes: &[u8]) -> Result<DiskAdmission, Error> {
        let mut index = self.index();
        if index.entries.contains_key(&hash) {
            index.touch(hash);
            return Ok(DiskAdmission::AlreadyHeld);
        }
        if index.uses.get(&hash).copied().unwrap_or(0) < self.admit_min_uses {
            return Ok(DiskAdmission::Filtered);
        }
        let len = bytes.len() as u64;
        if len > self.capacity_bytes {
            return Ok(DiskAdmission::TooLarge);
        }
        let evicted = self.evict_to(&mut index, self.capacity_bytes - len);
        let path = self.block_path(hash);
        let tmp = path.with_extension("tmp");
        let written = std::fs::write(&tmp, bytes)
            .map_err(|e| io_error(&tmp, "write", &e))
            .and_then(|()| std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, "rename", &e)));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        index.insert(hash, len);
        Ok(DiskAdmission::Written { evicted })
    }

    /// Deletes least recently used blocks until at most `limit` bytes are held.
    fn evict_to(&self, index: &mut DiskIndex, limit: u64) -> Vec<SequenceHash> {
        let mut evicted = Vec::new();
        while index.held_bytes > limit {
            let Some((_, hash)) = index.lru.pop_first() else {
                break;
            };
            if let Some((bytes, _)) = index.entries.remove(&hash) {
                index.held_bytes -= bytes;
            }
            let _ = std::fs::remove_file(self.block_path(hash));
            evicted.push(hash);
        }
        evicted
    }

    fn index(&self) -> MutexGuard<'_, DiskIndex> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_capacity_lru_and_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), 30, 1).unwrap();
        assert_eq!(store.offer(1, &[1; 10]).unwrap(), DiskAdmission::Filtered);
        for h in 1..=4 {
            store.note_use(h);
        }
        for h in 1..=3 {
            assert_eq!(
                store.offer(h, &[h as u8; 10]).unwrap(),
                DiskAdmission::Written { evicted: vec![] }
            );
        }
        assert_eq!(store.get(1).unwrap(), vec![1; 10]);
        // 2 is now the least recently used.
        assert_eq!(
            store.offer(4, &[4; 10]).unwrap(),
            DiskAdmission::Written { evicted: vec![2] }
        );
        assert!(!store.contains(2) && !store.block_path(2).exists());
        assert_eq!(store.held(), (3, 30));
        drop(store);
        std::fs::write(dir.path().join("0000000000000009.tmp"), b"half").unwrap();
        let again = DiskStore::open(dir.path(), 20, 1).unwrap();
        assert_eq!(again.held(), (2, 20), "rebuilt and trimmed to the capacity");
        assert!(!dir.path().join("0000000000000009.tmp").exists());
    }
}
