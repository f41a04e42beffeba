//! A simulated worker: a mocker `EngineCore` stepped on the simulated clock.

use rotor_engine::mocker::{MockerClock, MockerConfig, MockerRunner, MockerTiming, SimulatedClock};
use rotor_engine::{EngineConfig, EngineCore};
use rotor_protocol::{EngineOutput, GenerateRequest, WireError};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use crate::error::Error;

pub(crate) type OutputReceiver = UnboundedReceiver<Result<EngineOutput, WireError>>;

/// What the model stands in for, and how an engine is built.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSpec {
    pub timing: MockerTiming,
    pub engine: EngineConfig,
    pub vocab_size: usize,
    pub context_length: usize,
}

impl EngineSpec {
    /// A mocker engine core and the clock its steps advance.
    pub fn build(&self) -> Result<(EngineCore, SimulatedClock), Error> {
        let clock = SimulatedClock::new();
        let mut cfg = MockerConfig::new(
            self.timing,
            &self.engine,
            self.vocab_size,
            self.context_length,
        );
        cfg.clock = MockerClock::Simulated(clock.clone());
        let runner = MockerRunner::new(cfg)?;
        let core = EngineCore::new(Box::new(runner), &self.engine)?;
        Ok((core, clock))
    }
}

pub(crate) struct InFlight {
    pub request: usize,
    pub rx: OutputReceiver,
}

/// One worker's life on the simulated clock (seconds).
pub(crate) struct SimWorker {
    pub id: u64,
    pub core: EngineCore,
    clock: SimulatedClock,
    pub launched_at: f64,
    pub ready_at: f64,
    pub ready: bool,
    pub draining: bool,
    pub stopped_at: Option<f64>,
    pub busy_until: f64,
    pub inflight: Vec<InFlight>,
}

/// What a step produced: (request, output) pairs stamped at `end`.
pub(crate) struct StepOutcome {
    pub end: f64,
    pub outputs: Vec<(usize, Result<EngineOutput, WireError>)>,
}

impl SimWorker {
    pub fn launch(id: u64, spec: &EngineSpec, now: f64, startup_s: f64) -> Result<Self, Error> {
        let (core, clock) = spec.build()?;
        Ok(Self {
            id,
            core,
            clock,
            launched_at: now,
            ready_at: now + startup_s,
            ready: false,
            draining: false,
            stopped_at: None,
            busy_until: now,
            inflight: Vec::new(),
        })
    }

    pub fn alive(&self) -> bool {
        self.stopped_at.is_none()
    }

    /// Counted as a replica (starting or ready, not draining, not stopped).
    pub fn counted(&self) -> bool {
        self.alive() && !self.draining
    }

    pub fn serving(&self) -> bool {
        self.counted() && self.ready
    }

    /// When this worker next steps, if it has work.
    pub fn next_step_at(&self, now: f64) -> Option<f64> {
        (self.alive() && self.ready && self.core.has_work()).then(|| self.busy_until.max(now))
    }

    pub fn submit(&mut self, request: usize, req: GenerateRequest) -> Result<(), WireError> {
        let (tx, rx) = unbounded_channel();
        self.core.submit(req, tx)?;
        self.inflight.push(InFlight { request, rx });
        Ok(())
    }

    /// Runs one engine step at `now`; its outputs arrive at the step's modelled end.
    pub fn step(&mut self, now: f64) -> StepOutcome {
        let before = self.clock.elapsed();
        let stepped = self.core.step();
        let end = now + (self.clock.elapsed() - before).as_secs_f64();
        if !stepped && self.core.has_work() {
            let err = WireError::new(
                rotor_protocol::ErrorKind::Internal,
                "the simulated engine cannot schedule its requests".to_owned(),
            );
            self.core.fail_all(&err);
        }
        self.busy_until = end;
        let mut outputs = Vec::new();
        self.inflight.retain_mut(|f| {
            let mut open = true;
            while let Ok(out) = f.rx.try_recv() {
                let last = match &out {
                    Ok(o) => o.finish_reason.is_some(),
                    Err(_) => true,
                };
                outputs.push((f.request, out));
                if last {
                    open = false;
                    break;
                }
            }
            open
        });
        StepOutcome { end, outputs }
    }

    /// Stops a draining worker once its last request is done.
    pub fn stop_if_drained(&mut self, now: f64) {
        if self.draining && self.alive() && self.inflight.is_empty() && !self.core.has_work() {
            self.stopped_at = Some(now.max(self.busy_until));
        }
    }
}
