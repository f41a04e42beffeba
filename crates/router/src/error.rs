//! The router service's errors.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// Watching the workers (discovery, event plane) or serving a model's endpoint failed.
    #[error("{op}: {source}")]
    Routing {
        op: &'static str,
        #[source]
        source: rotor_frontend::FrontendError,
    },
    #[error("the router component must differ from the routed component `{component}`: the router would route to itself")]
    RoutesToItself { component: String },
}
