//! Reading AdmissionReviews and writing responses.
//!
//! Malformed input gets a 4xx and a message; a request tierguard can read
//! but cannot judge gets `allowed: false` with the reason in enforce mode,
//! and a warning in audit mode.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1 as corev1;
use k8s_openapi::api::networking::v1 as netv1;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{Span, field, info, warn};

use super::{Ctx, Endpoint, mutate, validate};
use crate::engine::isolation::{Finding, SUMMARY_MAX, clip};
use crate::guardpolicy::Mode;
use crate::telemetry::labels;

/// The API version tierguard speaks.
pub const ADMISSION_V1: &str = "admission.k8s.io/v1";

/// What a validation decided.
#[derive(Debug)]
pub enum Verdict {
    /// Nothing wrong.
    Allow,
    /// Forbidden flows or forbidden label changes.
    Violations {
        /// `NetworkPolicy database/oops would open 1 forbidden flow`.
        headline: String,
        /// Problems that are not flows (a lying `name` label, an unallowed
        /// tier change, a baseline edit), each at most 256 characters.
        problems: Vec<String>,
        /// How to fix it.
        advice: String,
        /// The flows in full, for the audit annotation and the log.
        findings: Vec<Finding>,
    },
    /// The request cannot be judged (index not synced, unreadable object).
    CannotJudge {
        /// Why.
        reason: String,
        /// Whether retrying later can succeed.
        retriable: bool,
    },
}

fn bad_request(status: StatusCode, msg: impl Into<String>) -> Response {
    let msg = msg.into();
    warn!(status = status.as_u16(), error = %msg, "bad admission request");
    (status, format!("tierguard: {msg}\n")).into_response()
}

/// Reads the body, parses the review, dispatches, and writes the response.
#[tracing::instrument(
    name = "admission",
    skip_all,
    fields(uid = field::Empty, kind = field::Empty, operation = field::Empty, object = field::Empty,
           user = field::Empty, dry_run = field::Empty, verdict = field::Empty, duration_us = field::Empty)
)]
pub async fn serve(ctx: Arc<Ctx>, req: Request<Body>, endpoint: Endpoint) -> Response {
    let start = Instant::now();
    let bytes = match axum::body::to_bytes(req.into_body(), ctx.max_body).await {
        Ok(b) => b,
        Err(e) => {
            let too_big = std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("length limit"))
                || e.to_string().contains("length limit");
            return if too_big {
                bad_request(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body is over {} bytes", ctx.max_body),
                )
            } else {
                bad_request(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read request body: {e}"),
                )
            };
        }
    };
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return bad_request(
                StatusCode::BAD_REQUEST,
                format!("malformed AdmissionReview: {e}"),
            );
        }
    };
    if review.types.api_version != ADMISSION_V1 || review.types.kind != "AdmissionReview" {
        return bad_request(
            StatusCode::BAD_REQUEST,
            format!(
                "expected apiVersion {ADMISSION_V1} kind AdmissionReview, got {} {}",
                review.types.api_version, review.types.kind
            ),
        );
    }
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(_) => return bad_request(StatusCode::BAD_REQUEST, "AdmissionReview has no request"),
    };
    if request.uid.is_empty() {
        return bad_request(
            StatusCode::BAD_REQUEST,
            "AdmissionReview request has no uid",
        );
    }
    let span = Span::current();
    span.record("uid", request.uid.as_str());
    span.record("kind", request.kind.kind.as_str());
    let operation = operation_name(&request.operation);
    span.record("operation", operation);
    span.record("object", object_key(&request).as_str());
    span.record(
        "user",
        request.user_info.username.as_deref().unwrap_or_default(),
    );
    span.record("dry_run", request.dry_run);
    // Shared with the judgement, which runs on the blocking pool.
    let request = Arc::new(request);

    let (response, verdict_label) = match endpoint {
        Endpoint::Noop => (AdmissionResponse::from(request.as_ref()), "noop"),
        Endpoint::Mutate => mutate::review(&request),
        Endpoint::Validate => {
            let verdict = if validate::walks_cluster(&ctx, &request) {
                let budget = judge_budget(ctx.deadline, start.elapsed());
                let (ctx, request) = (ctx.clone(), request.clone());
                judge_within(budget, move || validate::review(&ctx, &request)).await
            } else {
                // Bounded by the request's own namespace: tens of
                // microseconds, less than a hand-off to another thread.
                validate::review(&ctx, &request)
            };
            respond(&ctx, &request, verdict)
        }
    };
    span.record("verdict", verdict_label);
    span.record("duration_us", start.elapsed().as_micros() as u64);
    ctx.metrics
        .requests
        .get_or_create(&labels(&[
            ("kind", request.kind.kind.as_str()),
            ("operation", operation),
            ("verdict", verdict_label),
            ("endpoint", endpoint_name(endpoint)),
        ]))
        .inc();
    info!("admission request judged");
    Json(response.into_review()).into_response()
}

/// How long a judgement may take: what is left of the request deadline,
/// less a tenth of it, so that a slow judgement is answered with a reason
/// rather than cut off by the deadline.
pub fn judge_budget(deadline: Duration, elapsed: Duration) -> Duration {
    deadline
        .saturating_sub(elapsed)
        .saturating_sub(deadline / 10)
}

/// Runs a judgement on tokio's blocking pool, so that a long one (a
/// namespace relabel in a large cluster) never stalls the threads serving
/// other requests, and gives up after `budget`: the request is then refused
/// (enforce) or admitted with a warning (audit) with that reason, and may be
/// retried. The abandoned judgement finishes on its own; it has no side
/// effects.
pub async fn judge_within<F>(budget: Duration, judge: F) -> Verdict
where
    F: FnOnce() -> Verdict + Send + 'static,
{
    match tokio::time::timeout(budget, tokio::task::spawn_blocking(judge)).await {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(e)) => Verdict::CannotJudge {
            reason: format!("the judgement failed: {e}"),
            retriable: true,
        },
        Err(_) => Verdict::CannotJudge {
            reason: format!(
                "the judgement did not finish within {} ms; retry, and report it if it persists",
                budget.as_millis()
            ),
            retriable: true,
        },
    }
}

fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "Create",
        Operation::Update => "Update",
        Operation::Delete => "Delete",
        Operation::Connect => "Connect",
    }
}

fn endpoint_name(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Mutate => "mutate",
        Endpoint::Validate => "validate",
        Endpoint::Noop => "noop",
    }
}

/// `namespace/name` or `name` of the request's object.
pub fn object_key(req: &AdmissionRequest<DynamicObject>) -> String {
    match &req.namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", req.name),
        _ => req.name.clone(),
    }
}

/// A resource tierguard reads from a request's object.
///
/// The AdmissionReview is parsed once: its object arrives as a
/// [`DynamicObject`] whose metadata is already typed and whose other fields
/// are parsed JSON. A resource takes the metadata as it is and deserializes
/// its other fields straight from that JSON, by reference, rather than
/// writing the object back out and parsing it again.
pub trait FromObject: Sized {
    /// The resource, or the path and reason of the field that cannot be read.
    fn from_object(obj: &DynamicObject) -> Result<Self, String>;
}

/// Field `key` of `obj` (absent or null: `None`), with the field path in the
/// error.
fn field<T: DeserializeOwned>(obj: &DynamicObject, key: &str) -> Result<Option<T>, String> {
    match obj.data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_path_to_error::deserialize(v).map(Some).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                format!("{key}: {}", e.inner())
            } else {
                format!("{key}.{path}: {}", e.inner())
            }
        }),
    }
}

impl FromObject for corev1::Namespace {
    fn from_object(obj: &DynamicObject) -> Result<Self, String> {
        Ok(Self {
            metadata: obj.metadata.clone(),
            spec: field(obj, "spec")?,
            status: field(obj, "status")?,
        })
    }
}

impl FromObject for netv1::NetworkPolicy {
    fn from_object(obj: &DynamicObject) -> Result<Self, String> {
        Ok(Self {
            metadata: obj.metadata.clone(),
            spec: field(obj, "spec")?,
        })
    }
}

/// The request's object (or old object) as a typed resource.
pub fn typed<T: FromObject>(obj: Option<&DynamicObject>, what: &str) -> Result<T, String> {
    let obj = obj.ok_or_else(|| format!("the request has no {what}"))?;
    T::from_object(obj).map_err(|e| format!("cannot read the {what}: {e}"))
}

fn respond(
    ctx: &Ctx,
    req: &AdmissionRequest<DynamicObject>,
    verdict: Verdict,
) -> (AdmissionResponse, &'static str) {
    let resp = AdmissionResponse::from(req);
    let audit = ctx.policy.mode == Mode::Audit;
    match verdict {
        Verdict::Allow => (resp, "allowed"),
        Verdict::CannotJudge { reason, retriable } => {
            let msg = format!(
                "tierguard cannot judge {} {}: {reason}",
                req.kind.kind,
                object_key(req)
            );
            warn!(reason = %reason, retriable, "cannot judge");
            if audit {
                let mut r = resp;
                r.warnings = Some(vec![clip(&msg, SUMMARY_MAX)]);
                r.audit_annotations.insert("cannot-judge".into(), reason);
                (r, "warned")
            } else {
                let mut r = resp.deny(msg);
                if retriable {
                    r.result.code = 503;
                    r.result.reason = "ServiceUnavailable".into();
                }
                (r, "refused")
            }
        }
        Verdict::Violations {
            headline,
            problems,
            advice,
            findings,
        } => {
            for f in &findings {
                let (from, to) = f.classes();
                ctx.metrics
                    .violations
                    .get_or_create(&labels(&[
                        ("from", from),
                        ("to", to),
                        ("mode", if audit { "audit" } else { "enforce" }),
                    ]))
                    .inc();
                warn!(flow = %f.summary(), wall_namespace = %f.namespace, direction = %f.direction,
                      ports = %f.ports, dry_run = req.dry_run, audit, "forbidden flow");
            }
            for p in &problems {
                warn!(problem = %p, dry_run = req.dry_run, audit, "forbidden change");
            }
            // One line per problem, then one per flow (each ≤ 256 characters).
            let mut lines = problems;
            lines.extend(findings.iter().map(Finding::summary));
            let mut annotations = HashMap::new();
            annotations.insert(
                "verdict".to_string(),
                if audit { "warned" } else { "refused" }.to_string(),
            );
            annotations.insert("problems".to_string(), lines.join("\n"));
            if let Ok(json) = serde_json::to_string(&findings) {
                annotations.insert("flows".to_string(), json);
            }
            if audit {
                let mut r = resp;
                r.warnings = Some(
                    lines
                        .iter()
                        .map(|l| format!("tierguard (audit): {l}"))
                        .map(|l| clip(&l, SUMMARY_MAX))
                        .collect(),
                );
                r.audit_annotations = annotations;
                (r, "warned")
            } else {
                let body: Vec<String> = lines.iter().map(|l| format!("  - {l}")).collect();
                let mut r = resp.deny(format!(
                    "tierguard: {headline}:\n{}\n{advice}",
                    body.join("\n")
                ));
                r.audit_annotations = annotations;
                (r, "refused")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_a_tenth_of_the_deadline() {
        let d = Duration::from_millis(2000);
        assert_eq!(judge_budget(d, Duration::ZERO), Duration::from_millis(1800));
        assert_eq!(
            judge_budget(d, Duration::from_millis(500)),
            Duration::from_millis(1300)
        );
        assert_eq!(judge_budget(d, Duration::from_secs(3)), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_judgement_in_time_is_returned() {
        let v = judge_within(Duration::from_secs(5), || Verdict::Allow).await;
        assert!(matches!(v, Verdict::Allow), "{v:?}");
    }

    #[tokio::test]
    async fn a_slow_judgement_is_answered_with_a_retriable_reason() {
        let started = Instant::now();
        let v = judge_within(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(2));
            Verdict::Allow
        })
        .await;
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "the answer did not wait for the judgement"
        );
        match v {
            Verdict::CannotJudge { reason, retriable } => {
                assert!(retriable);
                assert!(reason.contains("did not finish within 50 ms"), "{reason}");
            }
            other => panic!("expected CannotJudge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_panicking_judgement_is_answered_not_propagated() {
        let v = judge_within(Duration::from_secs(5), || -> Verdict {
            panic!("engine bug");
        })
        .await;
        match v {
            Verdict::CannotJudge { reason, .. } => {
                assert!(reason.contains("judgement failed"), "{reason}")
            }
            other => panic!("expected CannotJudge, got {other:?}"),
        }
    }
}
