//! How the matrix names ends, cells, decisions and reasons.

use crate::engine::reach::{Decision, Endpoint, Exception, Verdict};

/// An end's name in the matrix: `namespace/name` (a workload with its kind),
/// an address, or `outside`.
pub(super) fn short(e: &Endpoint<'_>) -> String {
    match e {
        Endpoint::Pod(p) => match &p.workload {
            Some(w) => match w.split_once('/') {
                Some((kind, _)) => format!("{}/{} ({kind})", p.namespace, p.name),
                None => format!("{}/{}", p.namespace, p.name),
            },
            None => format!("{}/{}", p.namespace, p.name),
        },
        Endpoint::Future { namespace } => format!("{namespace}/*"),
        other => other.to_string(),
    }
}

pub(super) fn cell(v: &Verdict) -> &'static str {
    match (v.exception, v.decision) {
        (Some(Exception::Loopback), _) => "self",
        (Some(Exception::LocalNode), _) => "node",
        (None, Decision::Allowed) => "yes",
        (None, Decision::DependsOnAddress) => "ip?",
        (None, Decision::DependsOnPod) => "pod?",
        (None, Decision::Denied) => "no",
    }
}

pub(super) fn decision_word(d: Decision) -> &'static str {
    match d {
        Decision::Allowed => "allowed",
        Decision::DependsOnAddress => "depends-on-address",
        Decision::DependsOnPod => "depends-on-pod",
        Decision::Denied => "denied",
    }
}

pub(super) fn exception_word(e: Exception) -> &'static str {
    match e {
        Exception::Loopback => "loopback",
        Exception::LocalNode => "local-node",
    }
}

/// One side in a few words: what isolates it and what allows it.
pub(super) fn side_words(s: Option<&crate::engine::reach::SideVerdict>) -> String {
    let Some(s) = s else {
        return "no policy applies".to_string();
    };
    if let Some(by) = &s.decided_by {
        return format!("decided by {by}");
    }
    if !s.address_decides.is_empty() {
        return format!("the address decides: {}", s.address_decides.join("; "));
    }
    if !s.isolated {
        return "not isolated".to_string();
    }
    if !s.allowed_by.is_empty() {
        return format!("allowed by {}", s.allowed_by.join("; "));
    }
    if !s.allowed_if_address_in.is_empty() {
        return format!(
            "allowed if the address is in {}",
            s.allowed_if_address_in.join("; ")
        );
    }
    format!("isolated by {}; no rule matches", s.isolated_by.join("; "))
}

/// Why a connection was decided as it was, in one line.
pub(super) fn because(v: &Verdict) -> String {
    if let Some(e) = v.exception {
        return e.to_string();
    }
    if let Some(n) = &v.future {
        return n.to_string();
    }
    format!(
        "egress: {}; ingress: {}",
        side_words(v.egress.as_ref()),
        side_words(v.ingress.as_ref())
    )
}

pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub(super) fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

pub(super) fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
