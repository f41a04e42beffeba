//! Shared-memory files for KV transfer between two workers on one host.
//!
//! The prefill worker writes a batch of encoded blocks (the block format with its checksum,
//! unchanged) into a new file `rotor-kv-{pid}-{n}-{nanos}.blk` in the shared-memory directory
//! (`/dev/shm` unless `--kv-shm-dir` says otherwise), created exclusively with mode 0600, and
//! sends the decode worker only a [`ShmBlockBatch`] descriptor. The decode worker reads the
//! blocks, removes the file and imports them through the usual checks.
//!
//! No file outlives its transfer: [`ShmFile`] removes it when dropped (after the import call
//! answered, failed, or was cancelled — a detached write's result is dropped by the runtime,
//! which removes the file too), the reader removes it after reading, a failed write removes it
//! at once, and [`sweep_stale`] removes files of this naming pattern older than a minute when a
//! worker starts (left by a killed process).
//!
//! The reader accepts only a file directly in its own shared-memory directory whose name has
//! this pattern and which is a regular file (not a symbolic link), so a request-plane peer
//! cannot make a worker read or remove anything else.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rotor_protocol::ShmBlockBatch;

/// The default shared-memory directory.
pub const DEFAULT_SHM_DIR: &str = "/dev/shm";
const PREFIX: &str = "rotor-kv-";
const SUFFIX: &str = ".blk";
/// Files of the pattern older than this are removed by [`sweep_stale`].
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// A batch written to a shared-memory file; the file is removed when this is dropped.
#[derive(Debug)]
pub struct ShmFile {
    path: PathBuf,
    pub descriptor: ShmBlockBatch,
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        remove_quietly(&self.path);
    }
}

fn remove_quietly(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => tracing::warn!(path = %path.display(), %error,
            "could not remove a KV shared-memory file"),
    }
}

fn is_ours(name: &str) -> bool {
    name.starts_with(PREFIX) && name.ends_with(SUFFIX) && name.len() > PREFIX.len() + SUFFIX.len()
}

/// Writes `blocks` (chain order) into a new file in `dir`. Blocking: call it off the async
/// threads. On any error the partial file is removed.
pub fn write_batch(dir: &Path, blocks: &[Vec<u8>]) -> std::io::Result<ShmFile> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!(
        "{PREFIX}{}-{}-{nanos}{SUFFIX}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let mut shm = ShmFile {
        descriptor: ShmBlockBatch {
            path: path.display().to_string(),
            blocks: Vec::with_capacity(blocks.len()),
        },
        path,
    };
    let mut offset = 0u64;
    for block in blocks {
        // An error drops `shm`, which removes the file.
        file.write_all(block)?;
        shm.descriptor.blocks.push((offset, block.len() as u64));
        offset += block.len() as u64;
    }
    Ok(shm)
}

/// Why a shared-memory batch could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ShmReadError {
    #[error("{path:?} is not a KV transfer file in this worker's shared-memory directory {dir:?}")]
    NotOurs { path: String, dir: PathBuf },
    #[error("block {index} ({offset} + {len} B) lies outside the {file_len} B file")]
    OutOfBounds {
        index: usize,
        offset: u64,
        len: u64,
        file_len: u64,
    },
    #[error("reading {path:?}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the blocks of `batch` from its file in `dir` and removes the file (also on error,
/// once the path is known to be ours). Blocking: call it off the async threads.
pub fn read_batch(dir: &Path, batch: &ShmBlockBatch) -> Result<Vec<Vec<u8>>, ShmReadError> {
    let path = Path::new(&batch.path);
    let ours = path.parent() == Some(dir)
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_ours);
    if !ours {
        return Err(ShmReadError::NotOurs {
            path: batch.path.clone(),
            dir: dir.to_path_buf(),
        });
    }
    let io = |source| ShmReadError::Io {
        path: batch.path.clone(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(ShmReadError::NotOurs {
            path: batch.path.clone(),
            dir: dir.to_path_buf(),
        });
    }
    let read = || -> Result<Vec<Vec<u8>>, ShmReadError> {
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut blocks = Vec::with_capacity(batch.blocks.len());
        let mut reader = std::io::BufReader::with_capacity(0, &file);
        let mut at = 0u64;
        for (index, &(offset, len)) in batch.blocks.iter().enumerate() {
            if offset.checked_add(len).is_none_or(|end| end > file_len) {
                return Err(ShmReadError::OutOfBounds {
                    index,
                    offset,
                    len,
                    file_len,
                });
            }
            if offset != at {
                reader.seek(SeekFrom::Start(offset)).map_err(io)?;
            }
            // Read into reserved, unzeroed capacity: one copy out of the page cache.
            let mut block = Vec::with_capacity(len as usize);
            let got = (&mut reader)
                .take(len)
                .read_to_end(&mut block)
                .map_err(io)?;
            if got as u64 != len {
                return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            at = offset + len;
            blocks.push(block);
        }
        Ok(blocks)
    };
    let blocks = read();
    remove_quietly(path);
    blocks
}

/// Removes files of this module's naming pattern in `dir` older than `older_than` (left by a
/// killed worker); the number removed. Blocking.
pub fn sweep_stale(dir: &Path, older_than: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_ours) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age > older_than);
        if old && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_batch_round_trips_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let blocks = vec![vec![1u8; 10], vec![], vec![7u8; 3]];
        let file = write_batch(dir.path(), &blocks).unwrap();
        let mode = std::fs::metadata(&file.descriptor.path).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        assert_eq!(file.descriptor.blocks, vec![(0, 10), (10, 0), (10, 3)]);
        assert_eq!(read_batch(dir.path(), &file.descriptor).unwrap(), blocks);
        assert!(files(dir.path()).is_empty());
        drop(file);
        assert!(files(dir.path()).is_empty());
    }

    #[test]
    fn a_dropped_file_is_removed_and_foreign_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_batch(dir.path(), &[vec![1u8; 4]]).unwrap();
        assert_eq!(files(dir.path()).len(), 1);
        let mut bad = file.descriptor.clone();
        bad.blocks = vec![(2, 4)];
        assert!(matches!(
            read_batch(dir.path(), &bad),
            Err(ShmReadError::OutOfBounds { index: 0, .. })
        ));
        // Refused as out of bounds, the file was still removed by the reader.
        assert!(files(dir.path()).is_empty());
        drop(file);
        let other = tempfile::tempdir().unwrap();
        let elsewhere = write_batch(other.path(), &[vec![1u8; 4]]).unwrap();
        assert!(matches!(
            read_batch(dir.path(), &elsewhere.descriptor),
            Err(ShmReadError::NotOurs { .. })
        ));
        let foreign = dir.path().join("precious.txt");
        std::fs::write(&foreign, b"keep").unwrap();
        let named = ShmBlockBatch {
            path: foreign.display().to_string(),
            blocks: vec![],
        };
        assert!(matches!(
            read_batch(dir.path(), &named),
            Err(ShmReadError::NotOurs { .. })
        ));
        assert!(foreign.exists());
        drop(elsewhere);
        assert!(files(other.path()).is_empty());
    }

    #[test]
    fn sweep_removes_only_old_files_of_the_pattern() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = write_batch(dir.path(), &[vec![1u8; 4]]).unwrap();
        std::fs::write(dir.path().join("other.blk"), b"x").unwrap();
        assert_eq!(sweep_stale(dir.path(), STALE_AFTER), 0);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(sweep_stale(dir.path(), Duration::ZERO), 1);
        assert_eq!(files(dir.path()), vec!["other.blk".to_string()]);
        drop(fresh);
    }
}
