//! A real etcd server for tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::port::free_port;
use crate::process::{http_get, ServerProcess, ServerProcessError};

/// How long a fresh etcd may take to answer `/health` before the test fails.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A single-member etcd cluster on free loopback ports with its data in a temporary directory.
/// Dropping the guard kills the server and removes the directory.
///
/// The binary is `etcd` on `PATH`, or the path in `ROTOR_TEST_ETCD_BIN`.
#[derive(Debug)]
pub struct EtcdGuard {
    process: Option<ServerProcess>,
    client_addr: SocketAddr,
    peer_port: u16,
    data_dir: tempfile::TempDir,
}

impl EtcdGuard {
    /// Starts etcd and waits (polling `/health` with a deadline) until it serves requests.
    pub fn start() -> Result<Self, ServerProcessError> {
        let data_dir = tempfile::Builder::new().prefix("rotor-etcd-").tempdir()?;
        let client_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let peer_port = free_port();
        let mut guard = Self {
            process: None,
            client_addr,
            peer_port,
            data_dir,
        };
        guard.spawn_and_wait()?;
        Ok(guard)
    }

    /// `host:port` of the client endpoint, e.g. `127.0.0.1:40123`.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// The client URL, e.g. `http://127.0.0.1:40123`.
    pub fn client_url(&self) -> String {
        format!("http://{}", self.client_addr)
    }

    /// The data directory (kept across [`restart`](Self::restart)).
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The server's process id, if it is running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// Kills the server (SIGKILL). The data directory stays for [`start_again`](Self::start_again).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts a new server on the same ports and data directory and waits until it is healthy.
    pub fn start_again(&mut self) -> Result<(), ServerProcessError> {
        self.stop();
        self.spawn_and_wait()
    }

    /// [`stop`](Self::stop) then [`start_again`](Self::start_again).
    pub fn restart(&mut self) -> Result<(), ServerProcessError> {
        self.start_again()
    }

    fn spawn_and_wait(&mut self) -> Result<(), ServerProcessError> {
        let program = std::env::var_os("ROTOR_TEST_ETCD_BIN").unwrap_or_else(|| "etcd".into());
        let client_url = self.client_url();
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(program);
        command
            .arg("--name")
            .arg("rotor-test")
            .arg("--data-dir")
            .arg(self.data_dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&client_url)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(format!("rotor-test={peer_url}"))
            .arg("--log-level")
            .arg("warn");
        let log_path: PathBuf = self.data_dir.path().join("etcd.log");
        let mut process = ServerProcess::spawn(command, &log_path)?;
        let addr = self.client_addr;
        process.wait_ready(READY_DEADLINE, || {
            http_get(addr, "/health").is_some_and(|r| r.contains("\"health\":\"true\""))
        })?;
        self.process = Some(process);
        Ok(())
    }
}

impl Drop for EtcdGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_starts_restarts_and_stops() {
        let mut etcd = EtcdGuard::start().expect("etcd starts (apt install etcd-server)");
        let addr = etcd.client_addr();
        let first_pid = etcd.pid().expect("running");
        etcd.restart()
            .expect("etcd restarts on the same port and data dir");
        assert_ne!(etcd.pid(), Some(first_pid));
        assert!(http_get(addr, "/health").is_some_and(|r| r.contains("\"health\":\"true\"")));
        etcd.stop();
        assert_eq!(etcd.pid(), None);
        assert!(!crate::wait_for_tcp(addr), "port closed after stop");
    }
}
