//! Replay errors.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid replay config: {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("engine: {0}")]
    Engine(#[from] rotor_engine::Error),
    #[error("mocker: {0}")]
    Mocker(#[from] rotor_engine::mocker::MockerError),
    #[error("router: {0}")]
    Router(#[from] rotor_kv_router::Error),
    #[error("planner: {0}")]
    Planner(#[from] rotor_planner::Error),
    #[error("the trace is empty")]
    EmptyTrace,
}
