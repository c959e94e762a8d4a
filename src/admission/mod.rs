//! The admission webhook: `POST /mutate` and `POST /validate`, taking and
//! returning `admission.k8s.io/v1` AdmissionReviews.
//!
//! ```text
//!  body ─(limit, deadline)─► review::parse ─► AdmissionRequest
//!                                  │ 4xx on malformed input
//!      /mutate   ─► mutate::review   (Namespace: add name=<namespace>)
//!      /validate ─► validate::review (Namespace, NetworkPolicy, Pod) ─► Verdict
//!                     │ judged against a snapshot of the index (O(1) clone);
//!                     │ in place when bounded by one namespace, otherwise on
//!                     │ the blocking pool within the deadline
//!  Verdict ─► respond: enforce = deny with the flows; audit = admit + warnings,
//!             audit annotations, a log line and a metric per violation
//! ```

pub mod mutate;
pub mod review;
pub mod validate;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::guardpolicy::IsolationPolicy;
use crate::index::SharedIndex;
use crate::telemetry::Metrics;

/// Default limit on a request body (the API server sends at most 3 MiB objects).
pub const DEFAULT_MAX_BODY: usize = 3 * 1024 * 1024;
/// Default per-request deadline in milliseconds, well under the webhook
/// timeout (5 s).
pub const DEFAULT_DEADLINE_MS: u64 = 2_000;

/// Everything a handler needs.
pub struct Ctx {
    /// The isolation policy (its mode already overridden by `--mode`).
    pub policy: IsolationPolicy,
    /// The cluster index.
    pub index: SharedIndex,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Per-request deadline.
    pub deadline: Duration,
    /// Body size limit in bytes.
    pub max_body: usize,
    /// Users allowed to change or delete managed baseline policies (the
    /// guard's own service account, plus `--baseline-editors`).
    pub baseline_editors: BTreeSet<String>,
    /// Refuse pods in tier namespaces whose baseline is not in place yet.
    pub pod_guard: bool,
}

/// Which review a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/mutate`.
    Mutate,
    /// `/validate`.
    Validate,
    /// `/noop`: parses and admits (benchmarks measure the hop with it).
    Noop,
}

/// The webhook router. `noop` adds `POST /noop`, which parses the review and
/// admits it, for benchmarks.
pub fn router(ctx: Arc<Ctx>, noop: bool) -> Router {
    let mut r = Router::new()
        .route("/mutate", post(|s, r| handle(s, r, Endpoint::Mutate)))
        .route("/validate", post(|s, r| handle(s, r, Endpoint::Validate)));
    if noop {
        r = r.route("/noop", post(|s, r| handle(s, r, Endpoint::Noop)));
    }
    r.with_state(ctx)
}

/// The admin router (plain HTTP): `/healthz`, `/readyz`, `/metrics`.
pub fn admin_router(ctx: Arc<Ctx>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(ctx): State<Arc<Ctx>>| async move {
                let synced = ctx.index.read().map(|i| i.is_synced()).unwrap_or(false);
                if synced {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "index not synced")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(ctx): State<Arc<Ctx>>| async move {
                match ctx.metrics.render() {
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
            }),
        )
        .with_state(ctx)
}

async fn handle(State(ctx): State<Arc<Ctx>>, req: Request<Body>, endpoint: Endpoint) -> Response {
    let start = Instant::now();
    let deadline = ctx.deadline;
    let work = review::serve(ctx.clone(), req, endpoint);
    let resp = match tokio::time::timeout(deadline, work).await {
        Ok(r) => r,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "tierguard: the request did not complete within {} ms",
                deadline.as_millis()
            ),
        )
            .into_response(),
    };
    ctx.metrics.latency.observe(start.elapsed().as_secs_f64());
    resp
}
