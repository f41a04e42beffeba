//! The router's HTTP side: `/metrics` (Prometheus text: the routing figures) and `/health`.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use rotor_frontend::{MetricsSource, RoutingMetrics};
use tokio::net::TcpListener;

/// Serves `/metrics` and `/health` on `listener` until `shutdown` completes.
pub async fn serve_http(
    listener: TcpListener,
    metrics: Arc<RoutingMetrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .with_state(metrics);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn render_metrics(State(metrics): State<Arc<RoutingMetrics>>) -> impl IntoResponse {
    let mut out = String::new();
    metrics.render(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
