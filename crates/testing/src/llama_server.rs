//! A real llama.cpp `llama-server` child on a free loopback port, killed on drop: the external
//! engine of the `rotor worker --engine llama.cpp` tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `ROTOR_TEST_LLAMA_SERVER`, else the binary `scripts/build-llama-cpp llama-server` builds into
/// the default `LLAMA_BUILD_DIR`; panics with how to get one when it is missing.
pub fn llama_server_bin() -> PathBuf {
    let path = std::env::var_os("ROTOR_TEST_LLAMA_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/llama-build/build/bin/llama-server"));
    assert!(
        path.exists(),
        "llama-server not found at {} (set ROTOR_TEST_LLAMA_SERVER or run scripts/build-llama-cpp llama-server)",
        path.display()
    );
    path
}

/// A running `llama-server -m MODEL -c 4096 -np 2 -t 1`, ready (its `/health` says ok).
pub struct LlamaServerGuard {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl LlamaServerGuard {
    /// Starts the server on `model` and waits up to 60 s for it to be ready.
    pub fn start(model: &Path) -> LlamaServerGuard {
        Self::start_on(model, crate::free_port())
    }

    /// [`start`](Self::start) on a given port (a restarted engine at its old address).
    pub fn start_on(model: &Path, port: u16) -> LlamaServerGuard {
        let child = Command::new(llama_server_bin())
            .arg("-m")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", "4096", "-np", "2", "-t", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn llama-server");
        let mut guard = LlamaServerGuard {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let addr = format!("127.0.0.1:{port}")
            .parse()
            .expect("loopback address");
        let start = Instant::now();
        while crate::process::http_get(addr, "/health").is_none_or(|b| !b.contains("ok")) {
            if start.elapsed() > Duration::from_secs(60) {
                guard.kill();
                panic!("llama-server did not become ready within 60 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        guard
    }

    /// Kills the server now (also done on drop).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LlamaServerGuard {
    fn drop(&mut self) {
        self.kill();
    }
}
