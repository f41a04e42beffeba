//! Connectors carry decisions out. The source of truth for replicas is the connector's view
//! (discovery, the orchestrator), read before every plan, so counts changed by hand are seen.

use crate::error::Error;
use crate::observation::Replicas;
use crate::role::{Role, RoleMap};

/// Where replicas are read and targets written.
pub trait Connector {
    fn name(&self) -> &'static str;
    /// The replicas of `role` as the source of truth has them now.
    fn replicas(&mut self, role: Role) -> Result<Replicas, Error>;
    /// Asks for `target` replicas of `role`. Returns at once: readiness is observed later, so an
    /// unfulfillable request never wedges the planner.
    fn set_target(&mut self, role: Role, target: usize) -> Result<(), Error>;
    /// The connector's own series in Prometheus text, appended to the planner's `/metrics`
    /// (the local connector's worker processes); none by default.
    fn render_metrics(&self) -> String {
        String::new()
    }
}

/// An in-memory connector: desired counts are kept as set, and at most `capacity` workers per
/// role become ready (the rest stay pending, like pods that cannot be scheduled). For tests, and
/// as the actuator of a simulation that reads the targets back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixedConnector {
    pub desired: RoleMap<usize>,
    pub capacity: RoleMap<usize>,
    /// `set_target` calls, for tests.
    pub sets: u64,
}

impl FixedConnector {
    pub fn new(initial: usize, capacity: usize) -> Self {
        Self {
            desired: RoleMap {
                aggregated: initial,
                prefill: initial,
                decode: initial,
            },
            capacity: RoleMap {
                aggregated: capacity,
                prefill: capacity,
                decode: capacity,
            },
            sets: 0,
        }
    }
}

impl Connector for FixedConnector {
    fn name(&self) -> &'static str {
        "fixed"
    }

    fn replicas(&mut self, role: Role) -> Result<Replicas, Error> {
        let desired = *self.desired.get(role);
        Ok(Replicas {
            desired,
            ready: desired.min(*self.capacity.get(role)),
        })
    }

    fn set_target(&mut self, role: Role, target: usize) -> Result<(), Error> {
        *self.desired.get_mut(role) = target;
        self.sets += 1;
        Ok(())
    }
}

impl<C: Connector + ?Sized> Connector for Box<C> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn replicas(&mut self, role: Role) -> Result<Replicas, Error> {
        (**self).replicas(role)
    }

    fn set_target(&mut self, role: Role, target: usize) -> Result<(), Error> {
        (**self).set_target(role, target)
    }

    fn render_metrics(&self) -> String {
        (**self).render_metrics()
    }
}

/// The `virtual` connector: the decision is published in a JSON file
/// (`{"aggregated": {"desired": N, "ready": M}, …}`) for an external orchestrator, which carries
/// it out and acknowledges by writing `ready`. The planner writes only `desired`; a `desired`
/// changed in the file by hand is observed like any manual change.
#[derive(Debug)]
pub struct VirtualConnector {
    path: std::path::PathBuf,
}

impl VirtualConnector {
    pub fn new(path: std::path::PathBuf) -> Self {
        Self { path }
    }

    fn read(&self) -> Result<RoleMap<Replicas>, Error> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| Error::Connector {
                connector: "virtual",
                message: format!("{}: {e}", self.path.display()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RoleMap::default()),
            Err(e) => Err(Error::Connector {
                connector: "virtual",
                message: format!("{}: {e}", self.path.display()),
            }),
        }
    }
}

impl Connector for VirtualConnector {
    fn name(&self) -> &'static str {
        "virtual"
    }

    fn replicas(&mut self, role: Role) -> Result<Replicas, Error> {
        Ok(*self.read()?.get(role))
    }

    fn set_target(&mut self, role: Role, target: usize) -> Result<(), Error> {
        let mut all = self.read()?;
        all.get_mut(role).desired = target;
        let text = serde_json::to_string_pretty(&all).map_err(|e| Error::Connector {
            connector: "virtual",
            message: e.to_string(),
        })?;
        // Write then rename, so the orchestrator never reads half a file.
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| Error::Connector {
                connector: "virtual",
                message: format!("{}: {e}", self.path.display()),
            })
    }
}
