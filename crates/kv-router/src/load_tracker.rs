//! `LoadTracker`: each worker's active load as the router sees it.
//!
//! Two sources, merged:
//! - The router's own decisions (and those other router replicas share). A routed request adds
//!   its *new* prompt tokens (those not served from the worker's prefix cache) to the worker's
//!   pending prefill; when its first token arrives the prefill is done and the request's blocks
//!   count as decode blocks instead; when it finishes they are released.
//! - What the worker reports (`WorkerLoad`): the blocks its pool has in use, its capacity and how
//!   many requests wait in its queue. A worker also serves requests this router never saw, and
//!   its sequences grow while decoding, so its report can exceed the router's own count; the
//!   router's count can exceed a report that predates its latest decisions. The effective decode
//!   blocks are therefore `max(tracked, reported)`, which never counts a request twice.

use std::collections::HashMap;

use rotor_protocol::WorkerId;
pub use rotor_protocol::WorkerLoad;

use crate::error::Error;

/// The effective load of one worker, as the cost function consumes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActiveLoad {
    /// Prompt tokens routed to the worker whose prefill has not completed.
    pub prefill_tokens: u64,
    /// Blocks of requests in decode: `max(tracked, reported active_blocks)`.
    pub decode_blocks: u64,
    /// Requests the worker reported as waiting (0 without a report).
    pub waiting: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Prefill,
    Decode,
}

#[derive(Debug, Clone)]
struct TrackedRequest {
    worker: WorkerId,
    prefill_tokens: u64,
    blocks: u64,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, Default)]
struct WorkerTally {
    prefill_tokens: u64,
    decode_blocks: u64,
    reported: Option<WorkerLoad>,
}

/// Per-worker active load. See the module docs for the merge rule.
#[derive(Debug, Default)]
pub struct LoadTracker {
    requests: HashMap<String, TrackedRequest>,
    workers: HashMap<WorkerId, WorkerTally>,
}

impl LoadTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A request was routed to `worker`: `prefill_tokens` new tokens to compute, `blocks` blocks
    /// it will occupy once decoding.
    pub fn add_request(
        &mut self,
        request_id: &str,
        worker: WorkerId,
        prefill_tokens: u64,
        blocks: u64,
    ) -> Result<(), Error> {
        if let Some(existing) = self.requests.get(request_id) {
            return Err(Error::DuplicateRequest {
                request_id: request_id.to_owned(),
                worker: existing.worker,
            });
        }
        self.workers.entry(worker).or_default().prefill_tokens += prefill_tokens;
        self.requests.insert(
            request_id.to_owned(),
            TrackedRequest {
                worker,
                prefill_tokens,
                blocks,
                phase: Phase::Prefill,
            },
        );
        Ok(())
    }

    /// The request's first token arrived: its prefill tokens leave, its blocks enter decode.
    /// Calling it again for a request already in decode changes nothing.
    pub fn mark_prefill_completed(&mut self, request_id: &str) -> Result<(), Error> {
        let request = self
            .requests
            .get_mut(request_id)
            .ok_or_else(|| Error::UnknownRequest {
                request_id: request_id.to_owned(),
            })?;
        if request.phase == Phase::Decode {
            return Ok(());
        }
        request.phase = Phase::Decode;
        let tally = self.workers.entry(request.worker).or_default();
        tally.prefill_tokens -= request.prefill_tokens;
        tally.decode_blocks += request.blocks;
        Ok(())
    }

    /// The request ended (finished, failed or cancelled): release whatever it still holds.
    /// Returns the worker it ran on.
    pub fn mark_finished(&mut self, request_id: &str) -> Result<WorkerId, Error> {
        let request = self
            .requests
            .remove(request_id)
            .ok_or_else(|| Error::UnknownRequest {
                request_id: request_id.to_owned(),
            })?;
        let tally = self.workers.entry(request.worker).or_default();
        match request.phase {
            Phase::Prefill => tally.prefill_tokens -= request.prefill_tokens,
            Phase::Decode => tally.decode_blocks -= request.blocks,
        }
        Ok(request.worker)
    }

    /// Records the load `worker` reported about itself, replacing its previous report.
    pub fn update_reported(&mut self, worker: WorkerId, load: WorkerLoad) {
        self.workers.entry(worker).or_default().reported = Some(load);
    }

    /// The effective load of `worker` (all zero when nothing is known).
    pub fn load(&self, worker: WorkerId) -> ActiveLoad {
        let Some(tally) = self.workers.get(&worker) else {
            return ActiveLoad::default();
        };
        let reported = tally.reported.unwrap_or_default();
        ActiveLoad {
            prefill_tokens: tally.prefill_tokens,
            decode_blocks: tally.decode_blocks.max(reported.active_blocks),
            waiting: reported.waiting,
        }
    }

    /// The last report of `worker`, if any.
    pub fn reported(&self, worker: WorkerId) -> Option<WorkerLoad> {
        self.workers.get(&worker).and_then(|t| t.reported)
    }

    /// The worker a tracked request was routed to.
    pub fn worker_of(&self, request_id: &str) -> Option<WorkerId> {
        self.requests.get(request_id).map(|r| r.worker)
    }

    /// Requests currently tracked.
    pub fn active_requests(&self) -> usize {
        self.requests.len()
    }

    /// Forgets `worker`, its report and every request routed to it.
    pub fn remove_worker(&mut self, worker: WorkerId) {
        self.workers.remove(&worker);
        self.requests.retain(|_, r| r.worker != worker);
    }
}
