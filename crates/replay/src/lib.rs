//! rotor-replay: offline replay of a request trace against mocker engine cores, the KV router
//! and the planner on a simulated clock (engine cores stepped directly, nothing sleeps), so an
//! hour of trace replays in seconds and the same seed gives the same decisions (`rotor replay`).
//!
//! Key types: [`ReplayConfig`] (engine spec, [`Policy`], SLA, start-up delay, interval),
//! [`replay`] → [`ReplayReport`] (SLA attainment, worker-seconds, scaling events, TTFT/ITL
//! percentiles, the decision log); [`profile_mocker`] sweeps a mocker engine core into a
//! `rotor_planner::PerfProfile` (`rotor profile --engine mocker`).
//!
//! Depends on the engine (it runs engine cores) and on the planner and router cores; nothing
//! here does I/O.

mod error;
mod policy;
mod profile;
mod sim;
mod stats;
mod worker;
mod workload;

pub use error::Error;
pub use policy::{LoggedDecision, Policy};
pub use profile::{profile_mocker, ProfileGrid};
pub use sim::{replay, ReplayConfig, ReplayReport, ScalingEvent};
pub use stats::Percentiles;
pub use worker::EngineSpec;
pub use workload::{prompt_tokens, ReplayRequest, HASH_BLOCK_TOKENS};
