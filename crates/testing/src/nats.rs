//! A real NATS server for tests.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::port::free_port;
use crate::process::{ServerProcess, ServerProcessError};

/// How long a fresh nats-server may take to greet a client before the test fails.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// A core-NATS server (no JetStream) on a free loopback port. Dropping the guard kills it.
///
/// The binary is `nats-server` on `PATH`, or the path in `ROTOR_TEST_NATS_BIN`.
#[derive(Debug)]
pub struct NatsGuard {
    process: Option<ServerProcess>,
    addr: SocketAddr,
    log_dir: tempfile::TempDir,
}

impl NatsGuard {
    /// Starts nats-server and waits (polling for its `INFO` greeting with a deadline) until it
    /// accepts clients.
    pub fn start() -> Result<Self, ServerProcessError> {
        let log_dir = tempfile::Builder::new().prefix("rotor-nats-").tempdir()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut guard = Self {
            process: None,
            addr,
            log_dir,
        };
        guard.spawn_and_wait()?;
        Ok(guard)
    }

    /// `host:port` of the client port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The client URL, e.g. `nats://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// The server's process id, if it is running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// Kills the server (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts a new server on the same port and waits until it greets clients.
    pub fn start_again(&mut self) -> Result<(), ServerProcessError> {
        self.stop();
        self.spawn_and_wait()
    }

    /// [`stop`](Self::stop) then [`start_again`](Self::start_again).
    pub fn restart(&mut self) -> Result<(), ServerProcessError> {
        self.start_again()
    }

    fn spawn_and_wait(&mut self) -> Result<(), ServerProcessError> {
        let program =
            std::env::var_os("ROTOR_TEST_NATS_BIN").unwrap_or_else(|| "nats-server".into());
        let mut command = Command::new(program);
        command
            .arg("-a")
            .arg("127.0.0.1")
            .arg("-p")
            .arg(self.addr.port().to_string());
        let log_path: PathBuf = self.log_dir.path().join("nats.log");
        let mut process = ServerProcess::spawn(command, &log_path)?;
        let addr = self.addr;
        process.wait_ready(READY_DEADLINE, || greets(addr))?;
        self.process = Some(process);
        Ok(())
    }
}

impl Drop for NatsGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// True if a NATS server at `addr` sends its `INFO {...}` greeting.
fn greets(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .is_err()
    {
        return false;
    }
    let mut greeting = [0u8; 5];
    stream.read_exact(&mut greeting).is_ok() && &greeting == b"INFO "
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nats_starts_restarts_and_stops() {
        let mut nats = NatsGuard::start().expect("nats-server starts (apt install nats-server)");
        let addr = nats.addr();
        assert_eq!(nats.url(), format!("nats://{addr}"));
        let first_pid = nats.pid().expect("running");
        assert!(greets(addr));
        nats.restart()
            .expect("nats-server restarts on the same port");
        assert_ne!(nats.pid(), Some(first_pid));
        assert!(greets(addr));
        nats.stop();
        assert_eq!(nats.pid(), None);
        assert!(!greets(addr), "no greeting after stop");
    }
}
