//! The HTTP listener beside a server's gRPC one (`--http-listen`):
//! - `GET /metrics`: every metric of the process, in the Prometheus text format (0.0.4);
//! - `GET /healthz`: liveness, 200 "ok" whenever the process answers;
//! - `GET /readyz`: readiness, 200 "ready", or 503 with the reason (see [`Health`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::health::Health;

/// What `/metrics` shows: a registry, and a function that brings the gauges read from the
/// server's state up to date before each scrape. It must be cheap: a scrape may come every
/// second, and Prometheus retries a slow one.
pub struct Metrics {
    pub registry: Registry,
    pub refresh: Box<dyn Fn() + Send + Sync>,
}

struct Shared {
    metrics: Metrics,
    health: Health,
}

/// Serves on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Arc::new(Shared { metrics, health }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn scrape(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (shared.metrics.refresh)();
    let mut text = String::new();
    match prometheus_text::encode(&mut text, &shared.metrics.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot encode the metrics: {e}\n"),
        ),
    }
}

async fn ready(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match shared.health.not_ready() {
        None => (StatusCode::OK, "ready\n".to_string()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}
