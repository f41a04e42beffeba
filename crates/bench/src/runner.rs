//! Issuing a workload's requests: a closed loop of `concurrency` workers, or an open loop that
//! sends each request at its `send_at` (Poisson or trace schedule), optionally capped in flight.
//! Every run is bounded twice: by the number of requests and by `max_duration`, after which no
//! request is sent and those in flight are cancelled (recorded as cancelled, not as errors).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::{self, RequestRecord, Target};
use crate::config::LoadMode;
use crate::progress::Progress;
use crate::workload::{RequestSpec, Workload};

/// The records of a run, and how long it took (first send to last answer, or the deadline).
#[derive(Debug)]
pub struct RunOutcome {
    pub records: Vec<RequestRecord>,
    pub duration: Duration,
}

/// Runs `workload` against `target` until done, `max_duration` passes, or `shutdown` fires.
pub async fn drive(
    target: Arc<Target>,
    workload: Arc<Workload>,
    max_duration: Duration,
    progress: Progress,
    shutdown: CancellationToken,
) -> RunOutcome {
    let run = shutdown.child_token();
    let start = Instant::now();
    let deadline = tokio::spawn({
        let run = run.clone();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(max_duration) => run.cancel(),
                _ = run.cancelled() => {}
            }
        }
    });
    let ctx = Ctx {
        target,
        workload: workload.clone(),
        start,
        cancel: run.clone(),
        progress,
    };
    let mut records = match workload.mode {
        LoadMode::Closed { concurrency } => closed_loop(ctx, concurrency).await,
        LoadMode::Poisson { max_in_flight, .. } | LoadMode::FixedSchedule { max_in_flight, .. } => {
            open_loop(ctx, max_in_flight).await
        }
    };
    let duration = start.elapsed();
    run.cancel();
    let _ = deadline.await;
    records.sort_by_key(|r| r.index);
    RunOutcome { records, duration }
}

#[derive(Clone)]
struct Ctx {
    target: Arc<Target>,
    workload: Arc<Workload>,
    start: Instant,
    cancel: CancellationToken,
    progress: Progress,
}

impl Ctx {
    async fn send(&self, spec: &RequestSpec) -> RequestRecord {
        let prompts = &self.workload.prompts;
        let record = client::send(
            &self.target,
            spec.index,
            prompts.build(&spec.prompt),
            prompts.expected_input_tokens(&spec.prompt),
            spec.output_tokens,
            self.start,
            &self.cancel,
        )
        .await;
        self.progress.record(&record);
        record
    }
}

async fn closed_loop(ctx: Ctx, concurrency: usize) -> Vec<RequestRecord> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.min(ctx.workload.requests.len()) {
        let ctx = ctx.clone();
        let next = next.clone();
        workers.spawn(async move {
            let mut mine = Vec::new();
            while !ctx.cancel.is_cancelled() {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(spec) = ctx.workload.requests.get(i) else {
                    break;
                };
                mine.push(ctx.send(spec).await);
            }
            mine
        });
    }
    let mut records = Vec::new();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(mine) => records.extend(mine),
            Err(e) => tracing::error!(error = %e, "bench worker task failed"),
        }
    }
    records
}

async fn open_loop(ctx: Ctx, max_in_flight: Option<usize>) -> Vec<RequestRecord> {
    let limit = max_in_flight.map(|n| Arc::new(Semaphore::new(n)));
    let mut in_flight = JoinSet::new();
    let mut records = Vec::new();
    for (i, spec) in ctx.workload.requests.iter().enumerate() {
        let at = ctx.start + spec.send_at.unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep_until(at.into()) => {}
            _ = ctx.cancel.cancelled() => break,
        }
        let permit = match &limit {
            Some(sem) => tokio::select! {
                p = sem.clone().acquire_owned() => match p {
                    Ok(p) => Some(p),
                    Err(_) => break, // the semaphore is never closed
                },
                _ = ctx.cancel.cancelled() => break,
            },
            None => None,
        };
        let ctx = ctx.clone();
        in_flight.spawn(async move {
            let spec = &ctx.workload.requests[i];
            let record = ctx.send(spec).await;
            drop(permit);
            record
        });
        // Collect finished requests as we go so the set does not grow with the trace.
        while let Some(joined) = in_flight.try_join_next() {
            collect(joined, &mut records);
        }
    }
    while let Some(joined) = in_flight.join_next().await {
        collect(joined, &mut records);
    }
    records
}

fn collect(
    joined: Result<RequestRecord, tokio::task::JoinError>,
    records: &mut Vec<RequestRecord>,
) {
    match joined {
        Ok(r) => records.push(r),
        Err(e) => tracing::error!(error = %e, "bench request task failed"),
    }
}
