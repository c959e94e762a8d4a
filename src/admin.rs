//! The admin listener's router (plain HTTP): `/healthz`, `/readyz`,
//! `/metrics`.
//!
//! ```text
//!  /healthz  200 while the process runs (the liveness probe: shutdown included)
//!  /readyz   503 "shutting down" from the first SIGTERM on (endpoints drop the
//!            replica while it still serves its drain period),
//!            503 "index not synced" until the watches have synced,
//!            503 "index stale: …" while a watch has been failing for longer
//!            than --index-stale-after, else 200
//!  /metrics  Prometheus text (OpenMetrics)
//! ```
//!
//! It needs only the index's sync status, the metrics and the shutdown
//! token ([`AdminState`]), not the webhook's context.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::index::SharedIndex;
use crate::telemetry::Metrics;

/// What the admin endpoints read.
pub struct AdminState {
    /// The cluster index: `/readyz` fails until it has synced.
    pub index: SharedIndex,
    /// What `/metrics` renders.
    pub metrics: Arc<Metrics>,
    /// The process's shutdown token (`server::shutdown_token`): once it is
    /// cancelled `/readyz` fails, so the replica leaves the Service's
    /// endpoints while it drains.
    pub shutdown: CancellationToken,
}

/// The admin router: `/healthz`, `/readyz`, `/metrics`.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AdminState>>) -> (StatusCode, String) {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    }
    let index = state.index.read().unwrap_or_else(|e| e.into_inner());
    if !index.is_synced() {
        (StatusCode::SERVICE_UNAVAILABLE, "index not synced".into())
    } else if let Some(stale) = index.stale() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("index stale: {stale}"),
        )
    } else {
        (StatusCode::OK, "ready".into())
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> axum::response::Response {
    match state.metrics.render() {
        Ok(text) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
