//! [`Frontend`]: the served models, settings and metrics; [`serve`] runs it on a listener.

use std::future::Future;
use std::sync::Arc;

use axum::serve::ListenerExt;

use crate::backend::ServedModel;
use crate::config::FrontendConfig;
use crate::error::FrontendError;
use crate::metrics::Metrics;
use crate::registry::{ModelEntry, ModelRegistry};
use crate::responses_api::store::ResponseStore;
use crate::routes::{build_router, AppState};

/// The OpenAI-compatible frontend. Cheap to clone; clones share models and metrics.
#[derive(Clone)]
pub struct Frontend {
    state: AppState,
}

impl Frontend {
    pub fn new(cfg: FrontendConfig) -> Frontend {
        Frontend {
            state: AppState {
                registry: ModelRegistry::default(),
                metrics: Arc::new(Metrics::with_busy_thresholds(cfg.busy)),
                responses: Arc::new(ResponseStore::new(cfg.max_stored_responses)),
                config: Arc::new(cfg),
            },
        }
    }

    /// Starts serving a model: builds its tokenizer and chat template from the card.
    pub fn add_model(&self, model: ServedModel) -> Result<(), FrontendError> {
        let cfg = &self.state.config;
        let entry =
            ModelEntry::build_with_parsers(model, cfg.tool_call_parser, cfg.reasoning_parser)?;
        let describe = |choice: Option<(&str, crate::parsers::ParserSource)>| match choice {
            Some((name, source)) => format!("{name} ({})", source.as_str()),
            None => "none".to_string(),
        };
        tracing::info!(
            model = %entry.card.name,
            tool_call_parser = %describe(entry.parsers.tool.map(|(k, s)| (k.name(), s))),
            reasoning_parser = %describe(entry.parsers.reasoning.map(|(k, s)| (k.name(), s))),
            "model added"
        );
        self.state.registry.insert(entry)
    }

    /// Stops routing new requests to `name`; running requests finish.
    pub fn remove_model(&self, name: &str) {
        self.state.registry.remove(name);
    }

    /// Names of the served models, sorted.
    pub fn model_names(&self) -> Vec<String> {
        self.state
            .registry
            .list()
            .iter()
            .map(|entry| entry.card.name.clone())
            .collect()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.state.metrics)
    }

    pub fn router(&self) -> axum::Router {
        build_router(self.state.clone())
    }
}

/// Serves `frontend` on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish. Every accepted connection gets TCP_NODELAY: streamed chunks are
/// small and must not wait for Nagle's algorithm (which costs tens of ms on keep-alive
/// connections).
pub async fn serve(
    listener: tokio::net::TcpListener,
    frontend: Frontend,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|socket| {
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an HTTP connection");
        }
    });
    axum::serve(listener, frontend.router())
        .with_graceful_shutdown(shutdown)
        .await
}
