//! The `file:DIR` store: discovery for processes on one machine with nothing installed.
//!
//! Layout (all writes are atomic: a temporary file in the same directory, then `rename`):
//! - `DIR/leases/<lease id hex>`: `{"ttl_ms":…,"expires_at_ms":…,"pid":…}`. The holder rewrites
//!   it every `ttl/3` with a new expiry (the heartbeat); one write refreshes all its keys.
//! - `DIR/keys/<key with '/' as '~'>@<lease id hex>`: the value. Naming the owning lease in the
//!   file name means a reader deleting a stale file can never delete the fresh copy its holder
//!   just wrote under a new lease (that one has another name).
//!
//! A key is live while its lease file exists and has not expired (wall clock, shared by every
//! process on the machine). Readers delete the key files and lease files they find expired, so
//! a process killed with `kill -9` vanishes within its TTL without anyone cleaning up for it.
//!
//! Watches rescan the directory every `poll_interval` and diff. Polling is deliberate: it needs
//! no inotify dependency, works on every filesystem (including network mounts, where inotify
//! does not see other hosts' writes), and its cost (a few small files per interval) is nothing
//! next to serving a model.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::store::{KeyValue, KvChange, KvStore, KvWatch, LeaseId};
use crate::error::{Error, Result};

/// A [`KvStore`] in a directory shared by the processes of one machine.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    poll_interval: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
struct LeaseRecord {
    ttl_ms: u64,
    expires_at_ms: u64,
    pid: u32,
}

impl FileStore {
    /// Uses (and creates if needed) `dir`; watches rescan every `poll_interval`.
    pub fn open(dir: impl Into<PathBuf>, poll_interval: Duration) -> Result<Self> {
        let store = Self {
            dir: dir.into(),
            poll_interval,
        };
        for sub in [store.leases_dir(), store.keys_dir()] {
            std::fs::create_dir_all(&sub).map_err(|source| Error::File { path: sub, source })?;
        }
        Ok(store)
    }

    fn leases_dir(&self) -> PathBuf {
        self.dir.join("leases")
    }

    fn keys_dir(&self) -> PathBuf {
        self.dir.join("keys")
    }

    fn lease_path(&self, lease: LeaseId) -> PathBuf {
        self.leases_dir().join(format!("{lease:016x}"))
    }

    fn key_path(&self, key: &str, lease: LeaseId) -> PathBuf {
        self.keys_dir()
            .join(format!("{}@{lease:016x}", key_to_file_name(key)))
    }

    /// Every key file as (key, lease, path), skipping temporaries and foreign files.
    fn list_key_files(&self) -> Result<Vec<(String, LeaseId, PathBuf)>> {
        let keys_dir = self.keys_dir();
        let listing = std::fs::read_dir(&keys_dir).map_err(|source| Error::File {
            path: keys_dir.clone(),
            source,
        })?;
        let mut files = Vec::new();
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue; // a temporary file mid-rename
            }
            match parse_file_name(&name) {
                Some((key, lease)) => files.push((key, lease, entry.path())),
                None => tracing::warn!(file = %entry.path().display(), "ignoring a foreign file"),
            }
        }
        Ok(files)
    }

    /// The lease record, or `None` if the file is missing or unreadable.
    fn read_lease(&self, lease: LeaseId) -> Option<LeaseRecord> {
        let bytes = std::fs::read(self.lease_path(lease)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn lease_alive(&self, lease: LeaseId, now_ms: u64) -> bool {
        self.read_lease(lease)
            .is_some_and(|record| record.expires_at_ms > now_ms)
    }

    fn write_lease(&self, lease: LeaseId, ttl: Duration) -> Result<()> {
        let record = LeaseRecord {
            ttl_ms: ttl.as_millis() as u64,
            expires_at_ms: now_ms() + ttl.as_millis() as u64,
            pid: std::process::id(),
        };
        let bytes = serde_json::to_vec(&record).expect("invariant: lease record serializes");
        write_atomically(&self.lease_path(lease), &bytes)
    }

    /// Reads every live key under `prefix`, deleting expired ones (and their lease files) on
    /// the way.
    fn scan(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let now = now_ms();
        let mut alive: HashMap<LeaseId, bool> = HashMap::new();
        let mut found = BTreeMap::new();
        for (key, lease, path) in self.list_key_files()? {
            if !key.starts_with(prefix) {
                continue;
            }
            let live = *alive
                .entry(lease)
                .or_insert_with(|| self.lease_alive(lease, now));
            if !live {
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(self.lease_path(lease));
                continue;
            }
            // Vanished between listing and reading: deleted or revoked, skip it.
            if let Ok(value) = std::fs::read(&path) {
                found.insert(key, value);
            }
        }
        Ok(found.into_iter().collect())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Keys are made of `[A-Za-z0-9_.%-]` and `/`; `/` becomes `~`, which keys never contain.
fn key_to_file_name(key: &str) -> String {
    key.replace('/', "~")
}

fn file_name_to_key(name: &str) -> String {
    name.replace('~', "/")
}

/// Splits `"<escaped key>@<lease hex>"`.
fn parse_file_name(name: &str) -> Option<(String, LeaseId)> {
    let (key, lease) = name.rsplit_once('@')?;
    let lease = u64::from_str_radix(lease, 16).ok()?;
    Some((file_name_to_key(key), lease))
}

/// Writes `bytes` to a hidden temporary file beside `path`, then renames it over `path`, so a
/// reader sees the old content or the new one, never a torn write.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.{:016x}.tmp", rand::random::<u64>()));
    let io = |source| Error::File {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        io(source)
    })
}

#[async_trait::async_trait]
impl KvStore for FileStore {
    fn describe(&self) -> String {
        format!("file:{}", self.dir.display())
    }

    fn max_value_bytes(&self) -> Option<usize> {
        None
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        let lease = loop {
            let id: u64 = rand::random();
            if id != 0 && !self.lease_path(id).exists() {
                break id;
            }
        };
        self.write_lease(lease, ttl)?;
        Ok(lease)
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<bool> {
        // A missing or expired lease file means a reader may already have deleted our keys:
        // report the lease gone so the holder writes everything again under a new one.
        match self.read_lease(lease) {
            Some(record) if record.expires_at_ms > now_ms() => {
                self.write_lease(lease, Duration::from_millis(record.ttl_ms))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        for (_, owner, path) in self.list_key_files()? {
            if owner == lease {
                let _ = std::fs::remove_file(path);
            }
        }
        let _ = std::fs::remove_file(self.lease_path(lease));
        Ok(())
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<()> {
        if !self.lease_alive(lease, now_ms()) {
            return Err(Error::LeaseGone { lease_id: lease });
        }
        write_atomically(&self.key_path(key, lease), &value)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        for (found, _, path) in self.list_key_files()? {
            if found == key {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(Error::File { path, source }),
                }
            }
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let now = now_ms();
        for (found, lease, path) in self.list_key_files()? {
            if found == key && self.lease_alive(lease, now) {
                if let Ok(value) = std::fs::read(&path) {
                    return Ok(Some(value));
                }
            }
        }
        Ok(None)
    }

    async fn get_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        self.scan(prefix)
    }

    async fn watch_prefix(&self, prefix: &str) -> Result<KvWatch> {
        let snapshot = self.scan(prefix)?;
        let state = WatchState {
            store: self.clone(),
            prefix: prefix.to_string(),
            seen: snapshot.iter().cloned().collect(),
            pending: Vec::new(),
        };
        let changes = futures::stream::unfold(state, |mut state| async move {
            loop {
                if let Some(change) = state.pending.pop() {
                    return Some((Ok(change), state));
                }
                tokio::time::sleep(state.store.poll_interval).await;
                match state.store.scan(&state.prefix) {
                    Ok(now) => state.diff(now.into_iter().collect()),
                    Err(e) => return Some((Err(e), state)),
                }
            }
        })
        .boxed();
        Ok(KvWatch { snapshot, changes })
    }
}

struct WatchState {
    store: FileStore,
    prefix: String,
    seen: BTreeMap<String, Vec<u8>>,
    /// Changes found by the last scan, not yet yielded (popped from the back).
    pending: Vec<KvChange>,
}

impl WatchState {
    fn diff(&mut self, now: BTreeMap<String, Vec<u8>>) {
        let mut changes = Vec::new();
        for key in self.seen.keys() {
            if !now.contains_key(key) {
                changes.push(KvChange::Delete { key: key.clone() });
            }
        }
        for (key, value) in &now {
            if self.seen.get(key) != Some(value) {
                changes.push(KvChange::Put {
                    key: key.clone(),
                    value: value.clone(),
                });
            }
        }
        changes.reverse();
        self.pending = changes;
        self.seen = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn expired_lease_files_are_deleted_by_readers() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path(), Duration::from_millis(50)).unwrap();
        let lease = store.grant_lease(Duration::from_millis(200)).await.unwrap();
        store.put("a/b", b"v".to_vec(), lease).await.unwrap();
        assert_eq!(
            store.get_prefix("a/").await.unwrap(),
            vec![("a/b".to_string(), b"v".to_vec())]
        );
        let key_file = store.key_path("a/b", lease);
        assert!(key_file.ends_with(format!("keys/a~b@{lease:016x}")));
        assert!(key_file.exists());
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(store.get_prefix("a/").await.unwrap(), vec![]);
        assert!(!key_file.exists(), "stale key file removed");
        assert!(
            !store.lease_path(lease).exists(),
            "stale lease file removed"
        );
        assert!(!store.keep_alive(lease).await.unwrap());
        assert!(matches!(
            store.put("a/c", b"v".to_vec(), lease).await,
            Err(Error::LeaseGone { .. })
        ));
    }

    #[test]
    fn entry_format_round_trips() {
        assert_eq!(
            parse_file_name("a~b@00000000000000ff"),
            Some(("a/b".to_string(), 255))
        );
        assert_eq!(parse_file_name("a~b@zz"), None);
        assert_eq!(parse_file_name("a~b"), None);
        assert_eq!(file_name_to_key(&key_to_file_name("x/y/z")), "x/y/z");
    }
}
