//! Mutation: every namespace carries `name=<its name>`.
//!
//! The patch adds only that label (creating the labels map only when it is
//! absent), with RFC 6901 escaping from `jsonptr`; a namespace that already
//! has a `name` label is left alone (validation refuses a lying one), so
//! reinvocation is idempotent and a correct namespace gets no patch.

use json_patch::{AddOperation, Patch, PatchOperation};
use jsonptr::PointerBuf;
use kube::core::admission::Operation;
use serde_json::{Value, json};

use super::outcome::Outcome;
use super::request::{Kind, Request};
use crate::engine::state::NAME_LABEL;

/// Mutates a request: a Namespace without a `name` label gets one.
pub fn review(req: &Request) -> Outcome {
    if req.kind != Kind::Namespace
        || !matches!(req.operation(), Operation::Create | Operation::Update)
    {
        return Outcome::Admit;
    }
    let Some(meta) = req.object_meta() else {
        return Outcome::Admit;
    };
    let name = meta.name.as_deref().unwrap_or(req.name());
    if name.is_empty() {
        return Outcome::Admit;
    }
    match name_label_patch(meta.labels.as_ref(), name) {
        Some(patch) => Outcome::Patch(patch),
        None => Outcome::Admit,
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
