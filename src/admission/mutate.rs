//! Mutation: every namespace carries `name=<its name>`.
//!
//! The patch adds only that label (creating the labels map only when it is
//! absent), with RFC 6901 escaping from `jsonptr`; a namespace that already
//! has a `name` label is left alone (validation refuses a lying one), so
//! reinvocation is idempotent and a correct namespace gets no patch.

use json_patch::{AddOperation, Patch, PatchOperation};
use jsonptr::PointerBuf;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde_json::{Value, json};
use tracing::warn;

use crate::engine::isolation::NAME_LABEL;

/// Mutates a request; returns the response and a verdict label.
pub fn review(req: &AdmissionRequest<DynamicObject>) -> (AdmissionResponse, &'static str) {
    let resp = AdmissionResponse::from(req);
    let is_namespace = req.kind.group.is_empty() && req.kind.kind == "Namespace";
    if !is_namespace || !matches!(req.operation, Operation::Create | Operation::Update) {
        return (resp, "allowed");
    }
    let Some(obj) = &req.object else {
        return (resp, "allowed");
    };
    let name = obj
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| req.name.clone());
    if name.is_empty() {
        return (resp, "allowed");
    }
    let Some(patch) = name_label_patch(obj.metadata.labels.as_ref(), &name) else {
        return (resp, "allowed");
    };
    match resp.clone().with_patch(patch) {
        Ok(r) => (r, "patched"),
        Err(e) => {
            warn!(error = %e, "cannot serialise patch");
            (resp, "allowed")
        }
    }
}

/// The JSON patch that adds `name=<name>`, or `None` when the label is there.
pub fn name_label_patch(
    labels: Option<&std::collections::BTreeMap<String, String>>,
    name: &str,
) -> Option<Patch> {
    let op = match labels {
        Some(l) if l.contains_key(NAME_LABEL) => return None,
        Some(_) => AddOperation {
            path: PointerBuf::from_tokens(["metadata", "labels", NAME_LABEL]),
            value: Value::String(name.to_string()),
        },
        None => AddOperation {
            path: PointerBuf::from_tokens(["metadata", "labels"]),
            value: json!({ NAME_LABEL: name }),
        },
    };
    Some(Patch(vec![PatchOperation::Add(op)]))
}
