//! What a review decided, and the one place it becomes an
//! AdmissionResponse, a metric label and log lines.
//!
//! ```text
//!  Outcome::Admit ─────────────► allowed
//!  Outcome::Patch(patch) ──────► allowed + JSONPatch                    "patched"
//!  Outcome::Refuse(Refusal) ───► enforce: denied with the message       "refused"
//!                                audit:   allowed + Warning: lines       "warned"
//!  Outcome::CannotJudge ───────► enforce: denied (503 when retriable)   "refused"
//!                                audit:   allowed + a warning            "warned"
//! ```
//! Refusals and warnings carry audit annotations; every forbidden flow is
//! counted in `tierguard_violations_total` and logged.

use json_patch::Patch;
use kube::core::admission::AdmissionResponse;
use tracing::warn;

use super::context::Ctx;
use super::request::Request;
use crate::engine::tiers::Mode;
use crate::report::kubectl::{Refusal, cannot_judge, flow_summary};
use crate::report::{SUMMARY_MAX, Unjudgeable, clip, metric_class};
use crate::telemetry::{LogLimiter, labels};

/// What a review decided.
#[derive(Debug)]
pub enum Outcome {
    /// Nothing wrong.
    Admit,
    /// Admit with this patch (mutation).
    Patch(Patch),
    /// Forbidden flows or forbidden changes.
    Refuse(Refusal),
    /// tierguard's own configuration is invalid (each error with its field
    /// path): refused in every mode.
    Invalid(Vec<String>),
    /// The request cannot be judged.
    CannotJudge {
        /// Why.
        why: Unjudgeable,
        /// Whether retrying later can succeed.
        retriable: bool,
    },
}

impl Outcome {
    /// Cannot judge, and retrying may help.
    pub fn retry(why: Unjudgeable) -> Self {
        Outcome::CannotJudge {
            why,
            retriable: true,
        }
    }

    /// Cannot judge, and retrying the same request will not help.
    pub fn cannot(why: Unjudgeable) -> Self {
        Outcome::CannotJudge {
            why,
            retriable: false,
        }
    }
}

/// The verdict label of `tierguard_admission_requests_total` and the span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictLabel {
    /// Admitted.
    Allowed,
    /// Admitted with a patch.
    Patched,
    /// Denied.
    Refused,
    /// Admitted with warnings (audit mode).
    Warned,
    /// `/noop`.
    Noop,
}

impl VerdictLabel {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictLabel::Allowed => "allowed",
            VerdictLabel::Patched => "patched",
            VerdictLabel::Refused => "refused",
            VerdictLabel::Warned => "warned",
            VerdictLabel::Noop => "noop",
        }
    }
}

/// The response for `outcome`, and its verdict label.
pub fn respond(ctx: &Ctx, req: &Request, outcome: Outcome) -> (AdmissionResponse, VerdictLabel) {
    let resp = req.response();
    // tierguard's own configuration is refused in every mode, whatever
    // stops it from being judged.
    let audit = ctx.policy().mode == Mode::Audit
        && !matches!(req.kind, super::request::Kind::IsolationPolicy);
    match outcome {
        Outcome::Admit => (resp, VerdictLabel::Allowed),
        Outcome::Patch(patch) => match resp.clone().with_patch(patch) {
            Ok(r) => (r, VerdictLabel::Patched),
            Err(e) => {
                warn!(error = %e, "cannot serialise patch");
                (resp, VerdictLabel::Allowed)
            }
        },
        Outcome::Invalid(errors) => {
            let mut msg = format!("{} {} is invalid:", req.kind.name(), req.object_key);
            for e in &errors {
                msg.push_str("\n  ");
                msg.push_str(&clip(e, SUMMARY_MAX));
            }
            let mut r = resp.deny(msg);
            r.result.reason = "Invalid".into();
            r.result.code = 422;
            (r, VerdictLabel::Refused)
        }
        Outcome::CannotJudge { why, retriable } => {
            let msg = cannot_judge(req.kind.name(), &req.object_key, &why);
            let reason = why.to_string();
            ctx.metrics
                .cannot_judge
                .get_or_create(&labels(&[
                    ("kind", req.kind.metric_label()),
                    ("retriable", if retriable { "true" } else { "false" }),
                ]))
                .inc();
            static LIMIT: LogLimiter = LogLimiter::new(50);
            if let Some(suppressed) = LIMIT.allow() {
                warn!(reason = %clip(&reason, SUMMARY_MAX), retriable, suppressed, "cannot judge");
            }
            if audit {
                let mut r = resp;
                r.warnings = Some(vec![clip(&msg, SUMMARY_MAX)]);
                r.audit_annotations.insert("cannot-judge".into(), reason);
                (r, VerdictLabel::Warned)
            } else {
                let mut r = resp.deny(msg);
                if retriable {
                    r.result.code = 503;
                    r.result.reason = "ServiceUnavailable".into();
                }
                (r, VerdictLabel::Refused)
            }
        }
        Outcome::Refuse(refusal) => {
            let mode = if audit { "audit" } else { "enforce" };
            for b in &refusal.breaches {
                let (from, to) = (metric_class(&b.from), metric_class(&b.to));
                ctx.metrics
                    .violations
                    .get_or_create(&labels(&[("from", &from), ("to", &to), ("mode", mode)]))
                    .inc();
                static LIMIT: LogLimiter = LogLimiter::new(200);
                if let Some(suppressed) = LIMIT.allow() {
                    warn!(flow = %flow_summary(b), wall_namespace = %b.namespace, direction = %b.wall,
                          dry_run = req.dry_run(), audit, suppressed, "forbidden flow");
                }
            }
            for line in refusal.lines().iter().take(refusal.problems.len()) {
                static LIMIT: LogLimiter = LogLimiter::new(100);
                if let Some(suppressed) = LIMIT.allow() {
                    warn!(problem = %clip(line, SUMMARY_MAX), dry_run = req.dry_run(), audit, suppressed, "forbidden change");
                }
            }
            let verdict = if audit {
                VerdictLabel::Warned
            } else {
                VerdictLabel::Refused
            };
            let annotations = refusal.annotations(verdict.as_str());
            let mut r = if audit {
                let mut r = resp;
                r.warnings = Some(refusal.warnings());
                r
            } else {
                resp.deny(refusal.message())
            };
            r.audit_annotations = annotations;
            (r, verdict)
        }
    }
}

/// The answer to a request whose review could not be read in full (over
/// the deadline or the size limit) but whose uid is known: refused in
/// enforce mode, admitted with a warning in audit mode, as an
/// AdmissionReview (HTTP 200), so that no webhook configuration admits it
/// by its failure policy.
pub fn unjudged(ctx: &Ctx, uid: &str, why: &Unjudgeable) -> axum::response::Response {
    use axum::response::IntoResponse;
    let reason = why.to_string();
    ctx.metrics
        .cannot_judge
        .get_or_create(&labels(&[("kind", "unknown"), ("retriable", "false")]))
        .inc();
    static LIMIT: LogLimiter = LogLimiter::new(20);
    if let Some(suppressed) = LIMIT.allow() {
        warn!(reason = %clip(&reason, SUMMARY_MAX), uid, suppressed, "cannot judge an unreadable request");
    }
    let mut resp =
        AdmissionResponse::invalid(format!("tierguard cannot judge this request: {reason}"));
    resp.uid = uid.to_string();
    let verdict = if ctx.policy().mode == Mode::Audit {
        resp.allowed = true;
        resp.result = Default::default();
        resp.warnings = Some(vec![clip(
            &format!("tierguard (audit) cannot judge this request: {reason}"),
            SUMMARY_MAX,
        )]);
        VerdictLabel::Warned
    } else {
        VerdictLabel::Refused
    };
    ctx.metrics
        .requests
        .get_or_create(&labels(&[
            ("kind", "unknown"),
            ("operation", "unknown"),
            ("verdict", verdict.as_str()),
            ("endpoint", "unknown"),
        ]))
        .inc();
    axum::Json(resp.into_review()).into_response()
}
