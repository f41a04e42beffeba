//! `LocalConnector`: workers as processes on this machine (`rotor planner --connector local --
//! rotor worker …`). Scale-up spawns the command; scale-down sends SIGTERM to the newest worker
//! only — `rotor worker` then deregisters, drains its requests and exits — and never touches
//! the others (Dynamo #985 killed the whole deployment to remove one worker). Ready = spawned
//! and still running; exited workers are reaped and no longer counted.

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
        self.running
            .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
        self.stopping
            .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
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
}

impl Drop for LocalConnector {
    /// Stops every worker it started (they drain on SIGTERM).
    fn drop(&mut self) {
        while !self.running.is_empty() {
            let _ = self.terminate_newest();
        }
    }
}
