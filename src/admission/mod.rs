//! The admission webhook: `POST /mutate` and `POST /validate`, taking and
//! returning `admission.k8s.io/v1` AdmissionReviews.
//!
//! ```text
//!  body ─(limit, deadline)─► request::Request::parse ─► Request (kind, operation, user, objects)
//!                                  │ 4xx on malformed input
//!      /mutate   ─► mutate::review   (Namespace: name=<namespace>, tier stamp) ─► Outcome
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

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http_body_util::BodyExt;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use tracing::{Span, field, info, warn};

use crate::engine::isolation::Cost;
use crate::report::Unjudgeable;
use crate::telemetry::{LogLimiter, labels};
pub use context::{BodyBudget, Ctx};
use outcome::VerdictLabel;
use pool::judge_budget;
use request::{BadRequest, Request};

/// Default limit on a request body (the API server sends at most 3 MiB objects).
pub const DEFAULT_MAX_BODY: usize = 3 * 1024 * 1024;

/// The default bound on request bodies held at once (`--max-inflight-body-bytes`).
pub const DEFAULT_MAX_INFLIGHT_BODY: usize = 32 * 1024 * 1024;
/// Default per-request deadline in milliseconds, well under the webhook
/// timeout (5 s).
pub const DEFAULT_DEADLINE_MS: u64 = 2_000;

/// How long a NetworkPolicy in a namespace the index has not seen yet waits
/// for the namespace's watch event (at most a quarter of the deadline).
const NAMESPACE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// A NetworkPolicy created right after its namespace can reach the webhook
/// before the namespace's watch event reaches the index: wait for it a
/// little, polling every 5 ms, so that the policy is judged rather than
/// refused for retry (`Unjudgeable::NamespaceUnknown`, still the answer if
/// the wait runs out).
async fn await_namespace(ctx: &Ctx, req: &Request, start: Instant) {
    if !matches!(req.kind, request::Kind::NetworkPolicy) || req.namespace().is_empty() {
        return;
    }
    let wait = NAMESPACE_WAIT.min(ctx.deadline / 4);
    loop {
        let seen = {
            let index = ctx.index.read().unwrap_or_else(|e| e.into_inner());
            !index.is_watched()
                || !index.is_synced()
                || index.state().namespace(req.namespace()).is_some()
        };
        if seen || start.elapsed() >= wait {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
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
    // The uid, once read: a request that overruns the deadline after that is
    // still answered with an AdmissionReview, so a webhook whose
    // failurePolicy is Ignore cannot let it through unjudged.
    let uid = Arc::new(OnceLock::new());
    let work = serve(ctx.clone(), req, endpoint, uid.clone());
    let resp = match tokio::time::timeout(deadline, work).await {
        Ok(r) => r,
        Err(_) => {
            let why = Unjudgeable::Deadline {
                ms: deadline.as_millis(),
            };
            match uid.get() {
                Some(uid) => outcome::unjudged(&ctx, uid, &why),
                None => {
                    static LIMIT: LogLimiter = LogLimiter::new(20);
                    if let Some(suppressed) = LIMIT.allow() {
                        warn!(reason = %why, suppressed, "request without a readable review");
                    }
                    (StatusCode::REQUEST_TIMEOUT, format!("tierguard: {why}\n")).into_response()
                }
            }
        }
    };
    ctx.metrics.latency.observe(start.elapsed().as_secs_f64());
    resp
}

fn bad_request(e: BadRequest) -> Response {
    static LIMIT: LogLimiter = LogLimiter::new(20);
    if let Some(suppressed) = LIMIT.allow() {
        warn!(status = e.status.as_u16(), error = %crate::report::clip(&e.message, 512), suppressed, "bad admission request");
    }
    (e.status, format!("tierguard: {}\n", e.message)).into_response()
}

/// Why a body could not be read.
enum BodyError {
    /// Over the limit; the review's uid when its first bytes name one.
    TooLarge { uid: Option<String> },
    /// The connection failed.
    Read(String),
}

/// How far into a body the uid of an API server's review is looked for.
const UID_PREFIX: usize = 4096;

/// The `request.uid` of an AdmissionReview, from its first bytes. The API
/// server writes `request` with `uid` as its first field; anything else
/// (another `uid` deeper in the object, say) is not taken for it.
fn uid_in(prefix: &[u8]) -> Option<String> {
    let prefix = &prefix[..prefix.len().min(UID_PREFIX)];
    // A prefix may end inside a UTF-8 sequence: only its valid part counts.
    let text = match std::str::from_utf8(prefix) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&prefix[..e.valid_up_to()]).ok()?,
    };
    let after_request = &text[text.find("\"request\"")? + 9..];
    let open = after_request.trim_start().strip_prefix(':')?.trim_start();
    let after_uid = open
        .strip_prefix('{')?
        .trim_start()
        .strip_prefix("\"uid\"")?;
    let value = after_uid.trim_start().strip_prefix(':')?.trim_start();
    let value = value.strip_prefix('"')?;
    let uid = &value[..value.find('"')?];
    let plausible = !uid.is_empty()
        && uid.len() <= 128
        && uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    plausible.then(|| uid.to_string())
}

/// The body, up to `limit` bytes, in one buffer sized from Content-Length
/// (never more than the limit), so a body costs its own size in memory.
/// Once the first bytes name the review's uid it is put in `seen`, so a body
/// that stalls after it and runs into the deadline is still answered as an
/// AdmissionReview.
///
/// The bytes beyond the first [`UID_PREFIX`] are taken from `budget` as
/// they arrive (waiting while it is spent); the permit returned holds them
/// until it is dropped, after the response.
async fn read_body(
    mut body: Body,
    hint: Option<usize>,
    limit: usize,
    seen: &OnceLock<String>,
    budget: &context::BodyBudget,
) -> Result<(Vec<u8>, Option<tokio::sync::OwnedSemaphorePermit>), BodyError> {
    let mut held = None;
    let mut held_kib: u32 = 0;
    let want = hint.unwrap_or(0).min(limit);
    // Only the uid's prefix is allocated before the budget is taken.
    let mut buf = Vec::with_capacity(want.min(UID_PREFIX));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limit {
            if buf.len() < UID_PREFIX {
                let room = UID_PREFIX - buf.len();
                buf.extend_from_slice(&data[..data.len().min(room)]);
            }
            return Err(BodyError::TooLarge { uid: uid_in(&buf) });
        }
        // The prefix first, so the uid is known before any wait below.
        let head = data.len().min(UID_PREFIX.saturating_sub(buf.len()));
        if head > 0 {
            buf.extend_from_slice(&data[..head]);
            if seen.get().is_none()
                && let Some(uid) = uid_in(&buf)
            {
                let _ = seen.set(uid);
            }
        }
        let rest = &data[head..];
        if rest.is_empty() {
            continue;
        }
        // Take the body's size (as Content-Length announces it, or as it
        // grows) from the budget before holding it.
        let kib = kib_beyond_prefix((buf.len() + rest.len()).max(want));
        if kib > held_kib {
            budget.take(kib - held_kib, &mut held).await;
            held_kib = kib;
            buf.reserve_exact(want.saturating_sub(buf.len()));
        }
        buf.extend_from_slice(rest);
    }
    Ok((buf, held))
}

/// KiB of a body of `len` bytes beyond its first [`UID_PREFIX`] bytes.
fn kib_beyond_prefix(len: usize) -> u32 {
    u32::try_from(len.saturating_sub(UID_PREFIX).div_ceil(1024)).unwrap_or(u32::MAX)
}

/// Reads the body, parses the review, judges it, and writes the response.
#[tracing::instrument(
    name = "admission",
    skip_all,
    fields(uid = field::Empty, kind = field::Empty, operation = field::Empty, object = field::Empty,
           user = field::Empty, dry_run = field::Empty, verdict = field::Empty, duration_us = field::Empty)
)]
async fn serve(
    ctx: Arc<Ctx>,
    req: axum::http::Request<Body>,
    endpoint: Endpoint,
    uid: Arc<OnceLock<String>>,
) -> Response {
    let start = Instant::now();
    let hint = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let (bytes, _held) =
        match read_body(req.into_body(), hint, ctx.max_body, &uid, &ctx.bodies).await {
            Ok(b) => b,
            Err(BodyError::TooLarge { uid: Some(uid) }) => {
                let why = Unjudgeable::TooLarge {
                    limit: ctx.max_body,
                };
                return outcome::unjudged(&ctx, &uid, &why);
            }
            Err(BodyError::TooLarge { uid: None }) => {
                return bad_request(BadRequest {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    message: format!("request body is over {} bytes", ctx.max_body),
                });
            }
            Err(BodyError::Read(e)) => {
                return bad_request(BadRequest {
                    status: StatusCode::BAD_REQUEST,
                    message: format!("cannot read request body: {e}"),
                });
            }
        };
    let request = match Request::parse(&bytes) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    drop(bytes);
    let _ = uid.set(request.inner.uid.clone());
    let span = Span::current();
    span.record("uid", crate::report::clip(&request.inner.uid, 128).as_str());
    span.record("kind", request.kind.name());
    span.record("operation", request.operation_name());
    // Bounded: a request from anything but the API server may carry a name
    // or user of megabytes.
    span.record(
        "object",
        crate::report::clip(&request.object_key, 300).as_str(),
    );
    span.record("user", crate::report::clip(&request.user, 300).as_str());
    span.record("dry_run", request.dry_run());
    // Shared with the judgement, which may run on the blocking pool.
    let request = Arc::new(request);

    let (response, verdict) = match endpoint {
        Endpoint::Noop => (request.response(), VerdictLabel::Noop),
        Endpoint::Mutate => {
            outcome::respond(&ctx, &request, mutate::review(&ctx.policy(), &request))
        }
        Endpoint::Validate => {
            await_namespace(&ctx, &request, start).await;
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
            ("kind", request.kind.metric_label()),
            ("operation", request.operation_name()),
            ("verdict", verdict.as_str()),
            ("endpoint", endpoint.as_str()),
        ]))
        .inc();
    info!("admission request judged");
    Json(response.into_review()).into_response()
}

#[cfg(test)]
mod tests {
    use super::uid_in;

    #[test]
    fn the_uid_is_read_only_as_the_first_field_of_request() {
        let ok = br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request": { "uid" : "0a-1B","kind":{}}}"#;
        assert_eq!(uid_in(ok).as_deref(), Some("0a-1B"));
        // A uid elsewhere (inside the object) is not the review's.
        let deep = br#"{"request":{"object":{"metadata":{"uid":"not-it"}},"uid":"real"}}"#;
        assert_eq!(uid_in(deep), None);
        // Not plausible as a uid: quotes, spaces, too long.
        assert_eq!(uid_in(br#"{"request":{"uid":"a b"}}"#), None);
        let long = format!(r#"{{"request":{{"uid":"{}"}}}}"#, "a".repeat(129));
        assert_eq!(uid_in(long.as_bytes()), None);
        // A prefix cut inside a UTF-8 sequence still yields the uid before it.
        let mut cut = br#"{"request":{"uid":"u1","x":""#.to_vec();
        cut.push(0xE2);
        assert_eq!(uid_in(&cut).as_deref(), Some("u1"));
        // Not yet complete.
        assert_eq!(uid_in(br#"{"request":{"uid":"u1"#), None);
    }
}
