//! The router service's errors.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{op}: {source}")]
    Runtime {
        op: &'static str,
        #[source]
        source: rotor_runtime::Error,
    },
    #[error("{op}: {source}")]
    Routing {
        op: &'static str,
        #[source]
        source: rotor_frontend::FrontendError,
    },
    #[error("the router component must differ from the routed component `{component}`: the router would route to itself")]
    RoutesToItself { component: String },
    #[error("binding the HTTP listener on {addr}: {source}")]
    HttpBind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn runtime(op: &'static str) -> impl FnOnce(rotor_runtime::Error) -> Self {
        move |source| Self::Runtime { op, source }
    }
}
