//! A server child process stopped by PID on drop, plus readiness polling.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a test server could not be started or reached.
#[derive(Debug, thiserror::Error)]
pub enum ServerProcessError {
    /// The binary could not be spawned (not installed, not executable).
    #[error("cannot start {program}: {source} (is it installed? see docs/dependencies)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The server did not become ready before the deadline; `log` holds its output tail.
    #[error("{program} not ready after {waited:?}; log {log_path}:\n{log}")]
    NotReady {
        program: String,
        waited: Duration,
        log_path: PathBuf,
        log: String,
    },
    /// The server process exited while we waited for it.
    #[error("{program} exited with {status} before becoming ready; log {log_path}:\n{log}")]
    Exited {
        program: String,
        status: std::process::ExitStatus,
        log_path: PathBuf,
        log: String,
    },
    /// Setting up the temporary directory or log file failed.
    #[error("test server setup: {0}")]
    Io(#[from] std::io::Error),
}

/// A running child process, killed (SIGKILL via its PID) and reaped when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    program: String,
    child: Child,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Spawns `command`, sending stdout and stderr to `log_path` (appended, so restarts keep
    /// the earlier output).
    pub fn spawn(mut command: Command, log_path: &Path) -> Result<Self, ServerProcessError> {
        let program = command.get_program().to_string_lossy().into_owned();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        let child = command
            .spawn()
            .map_err(|source| ServerProcessError::Spawn {
                program: program.clone(),
                source,
            })?;
        Ok(Self {
            program,
            child,
            log_path: log_path.to_path_buf(),
        })
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `probe` every 50 ms until it returns true, the process exits, or `deadline` passes.
    pub fn wait_ready(
        &mut self,
        deadline: Duration,
        mut probe: impl FnMut() -> bool,
    ) -> Result<(), ServerProcessError> {
        let start = Instant::now();
        loop {
            if probe() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(ServerProcessError::Exited {
                    program: self.program.clone(),
                    status,
                    log_path: self.log_path.clone(),
                    log: self.log_tail(),
                });
            }
            if start.elapsed() > deadline {
                return Err(ServerProcessError::NotReady {
                    program: self.program.clone(),
                    waited: start.elapsed(),
                    log_path: self.log_path.clone(),
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process (SIGKILL by PID) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// The last 4 KiB of the process log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let start = text.len().saturating_sub(4096);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True if a TCP connection to `addr` succeeds within 200 ms.
pub fn wait_for_tcp(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Sends `GET path` over plain HTTP/1.0 to `addr` and returns the whole response (status line,
/// headers, body), or `None` if the server is not answering yet.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}
