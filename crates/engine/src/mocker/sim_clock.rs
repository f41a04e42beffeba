//! How a mocker spends a step's modelled time: sleeping it out on the wall clock (a live
//! engine), or adding it to a [`SimulatedClock`] that a simulator reads (offline replay:
//! `rotor replay` steps `EngineCore`s itself and never sleeps).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Where a mocker's step time goes.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum MockerClock {
    /// Each step sleeps until its modelled end (see the runner's pacing).
    #[default]
    WallClock,
    /// No sleeping: each step's modelled duration is added to the clock, and the caller that
    /// stepped the engine reads how long the step took with [`SimulatedClock::elapsed`].
    Simulated(SimulatedClock),
}

/// The total modelled time of every step a mocker ran, shared with its simulator. Clones share
/// the total; two clocks are equal when they are the same clock.
#[derive(Debug, Clone, Default)]
pub struct SimulatedClock(Arc<AtomicU64>);

impl SimulatedClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Total modelled step time so far.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }

    pub(crate) fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl PartialEq for SimulatedClock {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
