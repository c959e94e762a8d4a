//! The admission webhook: `POST /mutate` and `POST /validate`, taking and
//! returning `admission.k8s.io/v1` AdmissionReviews.
//!
//! ```text
//!  body ─(limit, deadline)─► request::Request::parse ─► Request (kind, operation, user, objects)
//!                                  │ 4xx on malformed input
//!      /mutate   ─► mutate::review   (Namespace: add name=<namespace>)  ─► Outcome
//!      /validate ─► validate::review (Namespace, NetworkPolicy, Pod)    ─► Outcome
//!                     │ judged against a snapshot of the index (O(1) clone);
//!                     │ where the engine's cost says: in place (one namespace)
//!                     │ or on the bounded pool (pool.rs) within the deadline
//!  Outcome ─► outcome::respond: enforce = deny with the flows; audit = admit +
//!             warnings, audit annotations, a log line and a metric per violation
//!             (all text from `report`)
//! ```

mod context;
pub mod mutate;
pub mod outcome;
pub mod pool;
pub mod request;
pub mod validate;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use kube::core::admission::AdmissionResponse;
use tracing::{Span, field, info, warn};

use crate::engine::isolation::Cost;
use crate::telemetry::labels;
pub use context::Ctx;
use outcome::VerdictLabel;
use pool::judge_budget;
use request::{BadRequest, Request};

/// Default limit on a request body (the API server sends at most 3 MiB objects).
pub const DEFAULT_MAX_BODY: usize = 3 * 1024 * 1024;
/// Default per-request deadline in milliseconds, well under the webhook
/// timeout (5 s).
pub const DEFAULT_DEADLINE_MS: u64 = 2_000;

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

impl Endpoint {
    fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
            Endpoint::Noop => "noop",
        }
    }
}

async fn handle(
    State(ctx): State<Arc<Ctx>>,
    req: axum::http::Request<Body>,
    endpoint: Endpoint,
) -> Response {
    let start = Instant::now();
    let deadline = ctx.deadline;
    let work = serve(ctx.clone(), req, endpoint);
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

fn bad_request(e: BadRequest) -> Response {
    warn!(status = e.status.as_u16(), error = %e.message, "bad admission request");
    (e.status, format!("tierguard: {}\n", e.message)).into_response()
}

/// The body, or why it cannot be read; an over-long body is told apart by
/// its error's type.
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, BadRequest> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return BadRequest {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    message: format!("request body is over {limit} bytes"),
                };
            }
            source = s.source();
        }
        BadRequest {
            status: StatusCode::BAD_REQUEST,
            message: format!("cannot read request body: {inner}"),
        }
    })
}

/// Reads the body, parses the review, judges it, and writes the response.
#[tracing::instrument(
    name = "admission",
    skip_all,
    fields(uid = field::Empty, kind = field::Empty, operation = field::Empty, object = field::Empty,
           user = field::Empty, dry_run = field::Empty, verdict = field::Empty, duration_us = field::Empty)
)]
async fn serve(ctx: Arc<Ctx>, req: axum::http::Request<Body>, endpoint: Endpoint) -> Response {
    let start = Instant::now();
    let request = match read_body(req.into_body(), ctx.max_body)
        .await
        .and_then(|bytes| Request::parse(&bytes))
    {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let span = Span::current();
    span.record("uid", request.inner.uid.as_str());
    span.record("kind", request.kind.name());
    span.record("operation", request.operation_name());
    span.record("object", request.object_key.as_str());
    span.record("user", request.user.as_str());
    span.record("dry_run", request.dry_run());
    // Shared with the judgement, which may run on the blocking pool.
    let request = Arc::new(request);

    let (response, verdict) = match endpoint {
        Endpoint::Noop => (AdmissionResponse::from(&request.inner), VerdictLabel::Noop),
        Endpoint::Mutate => outcome::respond(&ctx, &request, mutate::review(&request)),
        Endpoint::Validate => {
            let judged = match validate::cost(&ctx, &request) {
                // Bounded by the request's own namespace: tens of
                // microseconds, less than a hand-off to another thread.
                Cost::Namespace => validate::review(&ctx, &request),
                Cost::Cluster => {
                    let budget = judge_budget(ctx.deadline, start.elapsed());
                    let (c, r) = (ctx.clone(), request.clone());
                    ctx.pool
                        .judge(budget, move || validate::review(&c, &r))
                        .await
                        .unwrap_or_else(outcome::Outcome::retry)
                }
            };
            outcome::respond(&ctx, &request, judged)
        }
    };
    span.record("verdict", verdict.as_str());
    span.record("duration_us", start.elapsed().as_micros() as u64);
    ctx.metrics
        .requests
        .get_or_create(&labels(&[
            ("kind", request.kind.name()),
            ("operation", request.operation_name()),
            ("verdict", verdict.as_str()),
            ("endpoint", endpoint.as_str()),
        ]))
        .inc();
    info!("admission request judged");
    Json(response.into_review()).into_response()
}
