//! `LocalConnector`: workers as processes on this machine (`rotor planner --connector local --
//! rotor worker …`). Scale-up spawns the command; scale-down sends SIGTERM to the newest worker
//! only — `rotor worker` then deregisters, drains its requests and exits — and never touches
//! the others (Dynamo #985 killed the whole deployment to remove one worker). Ready = spawned
//! and still running; exited workers are reaped and no longer counted.
//!
//! `/metrics`: `rotor_planner_local_workers_started_total`, `…_stopped_total` (SIGTERM sent),
//! `rotor_planner_local_worker_exits_total{status="ok"|"error"}` (a removed worker that drained
//! exits `ok`; a crash is an `error`) and the gauge `rotor_planner_local_workers_running`.

use std::fmt::Write;
use std::process::{Child, Command, Stdio};

use crate::connector::Connector;
use crate::error::Error;
use crate::observation::Replicas;
use crate::role::Role;

/// See the module docs.
#[derive(Debug)]
pub struct LocalConnector {
    program: String,
    args: Vec<String>,
    desired: usize,
    running: Vec<Child>,
    stopping: Vec<Child>,
    /// Processes started and asked to stop, for `/metrics` and tests.
    pub started: u64,
    pub stopped: u64,
    /// Reaped workers that exited with success, and otherwise (signal, error status).
    pub exited_ok: u64,
    pub exited_error: u64,
}

impl LocalConnector {
    /// `command` is the worker's program and arguments.
    pub fn new(command: &[String]) -> Result<Self, Error> {
        let Some((program, args)) = command.split_first() else {
            return Err(Error::Connector {
                connector: "local",
                message: "no worker command given (put it after `--`)".into(),
            });
        };
        Ok(Self {
            program: program.clone(),
            args: args.to_vec(),
            desired: 0,
            running: Vec::new(),
            stopping: Vec::new(),
            started: 0,
            stopped: 0,
            exited_ok: 0,
            exited_error: 0,
        })
    }

    /// Process ids of the running workers, oldest first.
    pub fn pids(&self) -> Vec<u32> {
        self.running.iter().map(Child::id).collect()
    }

    /// Workers asked to stop that have not exited yet.
    pub fn stopping(&mut self) -> usize {
        self.reap();
        self.stopping.len()
    }

    fn reap(&mut self) {
        let (mut ok, mut error) = (0, 0);
        let mut still_running = |c: &mut Child| match c.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) if status.success() => {
                ok += 1;
                false
            }
            Ok(Some(status)) => {
                tracing::warn!(pid = c.id(), %status, "worker exited with an error");
                error += 1;
                false
            }
            Err(e) => {
                tracing::warn!(pid = c.id(), error = %e, "cannot wait for worker");
                error += 1;
                false
            }
        };
        self.running.retain_mut(&mut still_running);
        self.stopping.retain_mut(&mut still_running);
        self.exited_ok += ok;
        self.exited_error += error;
    }

    fn spawn(&mut self) -> Result<(), Error> {
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| Error::Connector {
                connector: "local",
                message: format!("cannot start {}: {e}", self.program),
            })?;
        self.running.push(child);
        self.started += 1;
        Ok(())
    }

    fn terminate_newest(&mut self) -> Result<(), Error> {
        let Some(child) = self.running.pop() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .map_err(|e| Error::Connector {
                connector: "local",
                message: format!("cannot run kill: {e}"),
            })?;
        if !status.success() {
            tracing::warn!(pid = child.id(), "kill -TERM failed (already exited?)");
        }
        self.stopping.push(child);
        self.stopped += 1;
        Ok(())
    }
}

impl Connector for LocalConnector {
    fn name(&self) -> &'static str {
        "local"
    }

    fn replicas(&mut self, _role: Role) -> Result<Replicas, Error> {
        self.reap();
        Ok(Replicas {
            desired: self.desired,
            ready: self.running.len(),
        })
    }

    fn set_target(&mut self, _role: Role, target: usize) -> Result<(), Error> {
        self.reap();
        self.desired = target;
        while self.running.len() < target {
            self.spawn()?;
        }
        while self.running.len() > target {
            self.terminate_newest()?;
        }
        Ok(())
    }

    fn render_metrics(&self) -> String {
        let mut s = String::new();
        for (name, help, v) in [
            ("started", "Worker processes started.", self.started),
            (
                "stopped",
                "Worker processes sent SIGTERM (they deregister and drain).",
                self.stopped,
            ),
        ] {
            let _ = writeln!(s, "# HELP rotor_planner_local_workers_{name}_total {help}\n# TYPE rotor_planner_local_workers_{name}_total counter\nrotor_planner_local_workers_{name}_total {v}");
        }
        let _ = writeln!(s, "# HELP rotor_planner_local_worker_exits_total Worker processes reaped, by exit status.\n# TYPE rotor_planner_local_worker_exits_total counter");
        for (status, v) in [("ok", self.exited_ok), ("error", self.exited_error)] {
            let _ = writeln!(
                s,
                "rotor_planner_local_worker_exits_total{{status=\"{status}\"}} {v}"
            );
        }
        let _ = writeln!(s, "# HELP rotor_planner_local_workers_running Worker processes running (started, not asked to stop).\n# TYPE rotor_planner_local_workers_running gauge\nrotor_planner_local_workers_running {}", self.running.len());
        s
    }
}

impl Drop for LocalConnector {
    /// Stops every worker it started (they drain on SIGTERM).
    fn drop(&mut self) {
        while !self.running.is_empty() {
            let _ = self.terminate_newest();
        }
    }
}
