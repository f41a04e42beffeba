//! Overload protection: when every worker that could take a model's request is busy, new
//! requests get 503 with `Retry-After` instead of queueing without bound.
//!
//! [`BusyThresholds`] (`--busy-kv-threshold`, `--busy-queue-threshold`; both off by default)
//! say when one worker is busy:
//! - `kv_usage`: KV blocks in use by running sequences ÷ the worker's blocks ≥ this fraction
//!   (0 < f ≤ 1), as Dynamo's `--active-decode-blocks-threshold`;
//! - `waiting_requests`: more than this many requests queued for admission on the worker.
//!
//! A worker is busy when either holds. The loads come from the model's backend
//! ([`Backend::worker_loads`](crate::Backend::worker_loads)): live figures for in-process
//! engines, the last load report (every 200 ms over the event plane) for remote workers. A
//! worker without a report yet counts as free, and a backend that cannot tell never refuses, so
//! missing figures never turn traffic away. Refusals are counted in
//! `rotor_frontend_overload_rejected_total{model}`; the thresholds are gauges
//! `rotor_frontend_busy_kv_threshold` and `rotor_frontend_busy_queue_threshold`.

use rotor_protocol::WorkerLoad;

use crate::error::{ApiError, FrontendError};
use crate::registry::ModelEntry;
use crate::routes::AppState;

/// When a worker counts as busy. Both `None`: never (overload protection off).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BusyThresholds {
    /// Fraction of the KV cache in use at which a worker is busy, in (0, 1].
    pub kv_usage: Option<f64>,
    /// Queued requests beyond which a worker is busy (0: busy as soon as one waits).
    pub waiting_requests: Option<u64>,
}

impl BusyThresholds {
    /// Checks the ranges.
    pub fn validate(self) -> Result<Self, FrontendError> {
        if let Some(fraction) = self.kv_usage {
            if !(fraction > 0.0 && fraction <= 1.0) {
                return Err(FrontendError::InvalidBusyThreshold {
                    field: "kv_usage",
                    value: fraction.to_string(),
                    reason: "must be a fraction in (0, 1], e.g. 0.95",
                });
            }
        }
        Ok(self)
    }

    pub fn is_off(&self) -> bool {
        self.kv_usage.is_none() && self.waiting_requests.is_none()
    }

    pub fn is_busy(&self, load: &WorkerLoad) -> bool {
        let kv_full = self
            .kv_usage
            .is_some_and(|fraction| load.total_blocks > 0 && load.kv_usage() >= fraction);
        let queue_long = self
            .waiting_requests
            .is_some_and(|limit| load.waiting > limit);
        kv_full || queue_long
    }

    /// Whether every worker in `loads` is known to be busy; `false` for no workers (the backend
    /// cannot tell, or has none: it answers that itself) and for a worker without figures.
    pub fn all_busy(&self, loads: &[Option<WorkerLoad>]) -> bool {
        !loads.is_empty()
            && loads
                .iter()
                .all(|load| load.is_some_and(|load| self.is_busy(&load)))
    }
}

/// A 503 (counted) when thresholds are set and every worker of `entry` is busy.
pub(crate) fn refuse_if_overloaded(state: &AppState, entry: &ModelEntry) -> Result<(), ApiError> {
    let busy = &state.config.busy;
    if busy.is_off() {
        return Ok(());
    }
    let loads = entry.backend.worker_loads();
    if !busy.all_busy(&loads) {
        return Ok(());
    }
    state.metrics.count_overload_rejected(&entry.card.name);
    tracing::debug!(
        model = %entry.card.name,
        workers = loads.len(),
        ?loads,
        "every worker is busy; refusing"
    );
    Err(ApiError::overloaded(&entry.card.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(active_blocks: u64, total_blocks: u64, waiting: u64) -> WorkerLoad {
        WorkerLoad {
            active_blocks,
            total_blocks,
            waiting,
            running: 1,
        }
    }

    #[test]
    fn kv_threshold_is_reached_at_the_fraction() {
        let busy = BusyThresholds {
            kv_usage: Some(0.9),
            waiting_requests: None,
        };
        assert!(!busy.is_busy(&load(89, 100, 50)));
        assert!(busy.is_busy(&load(90, 100, 0)));
        assert!(busy.is_busy(&load(100, 100, 0)));
        assert!(
            !busy.is_busy(&load(0, 0, 0)),
            "unknown capacity is not busy"
        );
    }

    #[test]
    fn queue_threshold_counts_requests_beyond_it() {
        let busy = BusyThresholds {
            kv_usage: None,
            waiting_requests: Some(2),
        };
        assert!(!busy.is_busy(&load(100, 100, 2)));
        assert!(busy.is_busy(&load(0, 100, 3)));
        let zero = BusyThresholds {
            kv_usage: None,
            waiting_requests: Some(0),
        };
        assert!(!zero.is_busy(&load(0, 100, 0)));
        assert!(zero.is_busy(&load(0, 100, 1)));
    }

    #[test]
    fn all_busy_needs_every_worker_known_and_busy() {
        let busy = BusyThresholds {
            kv_usage: Some(0.5),
            waiting_requests: Some(0),
        };
        let full = Some(load(60, 100, 0));
        let queued = Some(load(0, 100, 1));
        let free = Some(load(10, 100, 0));
        assert!(busy.all_busy(&[full, queued]));
        assert!(!busy.all_busy(&[full, free]));
        assert!(!busy.all_busy(&[full, None]), "no report yet: free");
        assert!(!busy.all_busy(&[]));
        assert!(!BusyThresholds::default().all_busy(&[full]), "off");
    }

    #[test]
    fn validate_ranges() {
        for bad in [0.0, -0.5, 1.5, f64::NAN] {
            let t = BusyThresholds {
                kv_usage: Some(bad),
                waiting_requests: None,
            };
            assert!(t.validate().is_err(), "{bad}");
        }
        let ok = BusyThresholds {
            kv_usage: Some(1.0),
            waiting_requests: Some(0),
        };
        assert_eq!(ok.validate().unwrap(), ok);
    }
}
