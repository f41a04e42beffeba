//! `--discovery` values: `mem`, `file:DIR`, `etcd://HOST:PORT[,HOST:PORT…]`.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// Lease TTL unless configured: a crashed process leaves routing within this time, and holders
/// refresh every third of it.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(6);

/// How often a `file:` watcher rescans the directory unless configured.
pub const DEFAULT_FILE_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Which store backs discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryBackend {
    /// One process: an in-memory registry shared through the returned handle.
    Mem,
    /// Processes on one machine: one file per key in `dir`, leases refreshed as heartbeats.
    File { dir: PathBuf },
    /// A cluster: etcd at these `http://host:port` endpoints.
    Etcd { endpoints: Vec<String> },
}

/// A validated discovery configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    pub backend: DiscoveryBackend,
    /// TTL of the leases this process grants.
    pub lease_ttl: Duration,
    /// Rescan interval of `file:` watches (unused by other backends).
    pub file_poll_interval: Duration,
}

impl DiscoveryConfig {
    /// Parses `mem`, `file:DIR` or `etcd://HOST:PORT[,HOST:PORT…]`, with default timings.
    pub fn parse(spec: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidDiscoverySpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let backend = if spec == "mem" {
            DiscoveryBackend::Mem
        } else if let Some(dir) = spec.strip_prefix("file:") {
            if dir.is_empty() {
                return Err(invalid("file: needs a directory, e.g. file:/tmp/rotor"));
            }
            DiscoveryBackend::File { dir: dir.into() }
        } else if let Some(hosts) = spec.strip_prefix("etcd://") {
            let endpoints = hosts
                .split(',')
                .map(|host| {
                    let host = host.trim_end_matches('/');
                    match host.rsplit_once(':') {
                        Some((name, port)) if !name.is_empty() && port.parse::<u16>().is_ok() => {
                            Ok(format!("http://{host}"))
                        }
                        _ => Err(invalid("etcd endpoints are HOST:PORT, comma-separated")),
                    }
                })
                .collect::<Result<Vec<_>>>()?;
            DiscoveryBackend::Etcd { endpoints }
        } else {
            return Err(invalid("expected mem, file:DIR or etcd://HOST:PORT"));
        };
        Ok(Self {
            backend,
            lease_ttl: DEFAULT_LEASE_TTL,
            file_poll_interval: DEFAULT_FILE_POLL_INTERVAL,
        })
    }

    /// The same configuration with another lease TTL.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The same configuration with another `file:` rescan interval.
    pub fn with_file_poll_interval(mut self, interval: Duration) -> Self {
        self.file_poll_interval = interval;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_backends() {
        assert_eq!(
            DiscoveryConfig::parse("mem").unwrap().backend,
            DiscoveryBackend::Mem
        );
        assert_eq!(
            DiscoveryConfig::parse("file:/tmp/x").unwrap().backend,
            DiscoveryBackend::File {
                dir: "/tmp/x".into()
            }
        );
        assert_eq!(
            DiscoveryConfig::parse("etcd://127.0.0.1:2379,10.0.0.2:2379")
                .unwrap()
                .backend,
            DiscoveryBackend::Etcd {
                endpoints: vec![
                    "http://127.0.0.1:2379".into(),
                    "http://10.0.0.2:2379".into()
                ]
            }
        );
        assert_eq!(
            DiscoveryConfig::parse("mem").unwrap().lease_ttl,
            DEFAULT_LEASE_TTL
        );
    }

    #[test]
    fn rejects_malformed_specs() {
        for spec in [
            "",
            "file:",
            "etcd://",
            "etcd://host",
            "etcd://host:notaport",
            "redis://x:1",
        ] {
            assert!(
                matches!(
                    DiscoveryConfig::parse(spec),
                    Err(Error::InvalidDiscoverySpec { .. })
                ),
                "{spec:?} should be rejected"
            );
        }
    }
}
