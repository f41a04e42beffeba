//! The KV offload tier flags shared by `rotor serve` and `rotor worker` ([`KvTierArgs`]), and
//! their validation into [`KvTierSettings`], which becomes an engine's
//! [`rotor_engine::KvTiersConfig`] once the model's name is known.
//!
//! - G2, `--kv-host-memory SIZE`: one shared-memory file `/dev/shm/rotor-kv-{pool}` for the
//!   workers of a host. `--kv-host-pool NAME` names it; by default it is
//!   `{namespace}-{model name}` (namespace `rotor` for `rotor serve`), with every character
//!   other than letters, digits, `-`, `_`, `.` replaced by `_`, so the workers of one model in
//!   one namespace share a pool.
//! - G3, `--kv-disk-dir DIR` with `--kv-disk-capacity SIZE` (required: disk use is the
//!   operator's decision); blocks are admitted after one reuse unless `--kv-disk-admit-all`.
//!   Several engines of one `rotor serve` each get `DIR/worker-{index}`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use rotor_engine::{DiskTierConfig, HostTierConfig, KvTiersConfig};

use crate::args::parse_memory;

/// KV offload tier flags.
#[derive(Debug, Clone, Default, Args)]
pub struct KvTierArgs {
    /// G2 offload tier: bytes of host memory (512MiB, 2GB, or a fraction of RAM such as 0.1)
    /// for KV blocks evicted from the KV cache, in a shared-memory pool the workers of this host
    /// share (/dev/shm/rotor-kv-NAME). A returning prompt's blocks are loaded back instead of
    /// recomputed.
    #[arg(long, value_name = "SIZE")]
    pub kv_host_memory: Option<String>,
    /// Name of the shared host-memory pool (letters, digits, '-', '_', '.'). Workers with the
    /// same name, model and block size share blocks. Default: NAMESPACE-MODEL_NAME.
    #[arg(long, value_name = "NAME")]
    pub kv_host_pool: Option<String>,
    /// G3 offload tier: a directory for KV blocks evicted from the KV cache (or from the host
    /// pool), one checksummed file per block, found again after a restart. Needs
    /// --kv-disk-capacity.
    #[arg(long, value_name = "DIR")]
    pub kv_disk_dir: Option<PathBuf>,
    /// Bytes of blocks --kv-disk-dir may hold (e.g. 20GiB); the least recently used go first.
    #[arg(long, value_name = "SIZE")]
    pub kv_disk_capacity: Option<String>,
    /// Write every offloaded block to disk; by default only blocks reused at least once are.
    #[arg(long)]
    pub kv_disk_admit_all: bool,
}

/// Validated tier flags; the host pool's default name is filled in at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvTierSettings {
    pub host: Option<HostTierSettings>,
    pub disk: Option<DiskTierConfig>,
    /// The namespace part of the default pool name.
    pub namespace: String,
}

/// G2 as given: the pool name (`None`: derived from the namespace and model name) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTierSettings {
    pub pool: Option<String>,
    pub capacity_bytes: u64,
}

impl KvTierArgs {
    pub fn validate(&self, total_ram_bytes: Option<u64>) -> Result<KvTierSettings> {
        let host = match &self.kv_host_memory {
            Some(text) => {
                let bytes = parse_memory(text, total_ram_bytes)
                    .with_context(|| format!("--kv-host-memory {text:?}"))?;
                Some(HostTierSettings {
                    pool: self.kv_host_pool.clone(),
                    capacity_bytes: bytes,
                })
            }
            None if self.kv_host_pool.is_some() => bail!("--kv-host-pool needs --kv-host-memory"),
            None => None,
        };
        let disk = match (&self.kv_disk_dir, &self.kv_disk_capacity) {
            (Some(dir), Some(text)) => Some(DiskTierConfig {
                dir: dir.clone(),
                capacity_bytes: parse_memory(text, None)
                    .with_context(|| format!("--kv-disk-capacity {text:?}"))?,
                admit_min_uses: if self.kv_disk_admit_all { 0 } else { 1 },
            }),
            (Some(_), None) => bail!("--kv-disk-dir needs --kv-disk-capacity SIZE"),
            (None, Some(_)) => bail!("--kv-disk-capacity needs --kv-disk-dir"),
            (None, None) if self.kv_disk_admit_all => {
                bail!("--kv-disk-admit-all needs --kv-disk-dir")
            }
            (None, None) => None,
        };
        let settings = KvTierSettings {
            host,
            disk,
            namespace: rotor_protocol::worker::DEFAULT_NAMESPACE.to_string(),
        };
        // Names and sizes are checked now, with a placeholder for a derived pool name.
        settings.config("model", None)?;
        Ok(settings)
    }
}

impl KvTierSettings {
    pub fn is_enabled(&self) -> bool {
        self.host.is_some() || self.disk.is_some()
    }

    /// The tiers of the engine serving `model_name`; `worker` is the engine's index when one
    /// process runs several (each gets its own disk subdirectory: a disk index is per engine).
    pub fn config(&self, model_name: &str, worker: Option<usize>) -> Result<KvTiersConfig> {
        let host = self.host.as_ref().map(|host| HostTierConfig {
            name: host
                .pool
                .clone()
                .unwrap_or_else(|| default_pool_name(&self.namespace, model_name)),
            capacity_bytes: host.capacity_bytes,
            dir: PathBuf::from(rotor_kv_cache::HOST_POOL_DIR),
        });
        let disk = self.disk.clone().map(|mut disk| {
            if let Some(index) = worker {
                disk.dir = disk.dir.join(format!("worker-{index}"));
            }
            disk
        });
        let config = KvTiersConfig {
            host,
            disk,
            ..KvTiersConfig::default()
        };
        config.validate().map_err(|e| match e {
            e @ rotor_kv_cache::Error::InvalidTierConfig { field, .. } => {
                let flag = match field {
                    "host name" => "--kv-host-pool",
                    "host capacity_bytes" => "--kv-host-memory",
                    "disk capacity_bytes" => "--kv-disk-capacity",
                    _ => "KV tiers",
                };
                anyhow::anyhow!("{flag}: {e}")
            }
            other => anyhow::anyhow!(other),
        })?;
        Ok(config)
    }

    /// One line for the start-up log, e.g. `KV tiers: host pool /dev/shm/rotor-kv-x 64.0 MiB;
    /// disk /var/kv 1.0 GiB (admit after 1 use)`.
    pub fn describe(config: &KvTiersConfig) -> String {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        let mut parts = Vec::new();
        if let Some(host) = &config.host {
            parts.push(format!(
                "host pool {} {:.1} MiB",
                host.path().display(),
                mib(host.capacity_bytes)
            ));
        }
        if let Some(disk) = &config.disk {
            parts.push(format!(
                "disk {} {:.1} MiB (admit after {} use{})",
                disk.dir.display(),
                mib(disk.capacity_bytes),
                disk.admit_min_uses,
                if disk.admit_min_uses == 1 { "" } else { "s" }
            ));
        }
        format!("KV tiers: {}", parts.join("; "))
    }
}

/// `{namespace}-{model}` with characters a pool name may not hold replaced by `_`.
fn default_pool_name(namespace: &str, model_name: &str) -> String {
    format!("{namespace}-{model_name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> KvTierArgs {
        KvTierArgs::default()
    }

    #[test]
    fn no_flags_no_tiers() {
        let s = args().validate(None).unwrap();
        assert!(!s.is_enabled());
        assert!(!s.config("m", None).unwrap().is_enabled());
    }

    #[test]
    fn host_pool_name_defaults_to_namespace_and_model() {
        let a = KvTierArgs {
            kv_host_memory: Some("64MiB".into()),
            ..args()
        };
        let cfg = a
            .validate(None)
            .unwrap()
            .config("Qwen/Qwen3 0.6B", None)
            .unwrap();
        let host = cfg.host.unwrap();
        assert_eq!(host.name, "rotor-Qwen_Qwen3_0.6B");
        assert_eq!(host.capacity_bytes, 64 << 20);
        assert_eq!(
            host.path(),
            PathBuf::from("/dev/shm/rotor-kv-rotor-Qwen_Qwen3_0.6B")
        );
    }

    #[test]
    fn disk_flags() {
        let a = KvTierArgs {
            kv_disk_dir: Some("/tmp/kv".into()),
            kv_disk_capacity: Some("1GiB".into()),
            ..args()
        };
        let s = a.validate(None).unwrap();
        assert_eq!(s.config("m", None).unwrap().disk.unwrap().admit_min_uses, 1);
        let disk = s.config("m", Some(2)).unwrap().disk.unwrap();
        assert_eq!(disk.dir, PathBuf::from("/tmp/kv/worker-2"));
        assert_eq!(disk.capacity_bytes, 1 << 30);
        let all = KvTierArgs {
            kv_disk_admit_all: true,
            ..a
        };
        let disk = all.validate(None).unwrap().config("m", None).unwrap().disk;
        assert_eq!(disk.unwrap().admit_min_uses, 0);
    }

    #[test]
    fn bad_combinations_name_the_flag() {
        let err = |a: KvTierArgs| format!("{:#}", a.validate(Some(1 << 30)).unwrap_err());
        let e = err(KvTierArgs {
            kv_disk_dir: Some("/tmp/kv".into()),
            ..args()
        });
        assert!(e.contains("--kv-disk-dir needs --kv-disk-capacity"), "{e}");
        let e = err(KvTierArgs {
            kv_disk_capacity: Some("1GiB".into()),
            ..args()
        });
        assert!(e.contains("--kv-disk-capacity needs --kv-disk-dir"), "{e}");
        let e = err(KvTierArgs {
            kv_host_pool: Some("p".into()),
            ..args()
        });
        assert!(e.contains("--kv-host-pool needs --kv-host-memory"), "{e}");
        let e = err(KvTierArgs {
            kv_host_memory: Some("64MiB".into()),
            kv_host_pool: Some("../etc".into()),
            ..args()
        });
        assert!(e.contains("--kv-host-pool"), "{e}");
        let e = err(KvTierArgs {
            kv_host_memory: Some("lots".into()),
            ..args()
        });
        assert!(e.contains("--kv-host-memory"), "{e}");
        let e = err(KvTierArgs {
            kv_disk_dir: Some("/tmp/kv".into()),
            kv_disk_capacity: Some("0.1".into()),
            ..args()
        });
        assert!(e.contains("--kv-disk-capacity"), "{e}");
    }
}
