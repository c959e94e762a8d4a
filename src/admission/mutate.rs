//! Mutation: every namespace carries `name=<its name>`, and a namespace in a
//! tier by its tier label carries the stamp of that tier
//! (`tierguard.io/admitted-tier`, [`ADMITTED_TIER_ANNOTATION`]).
//!
//! The name patch adds only that label (creating the labels map only when
//! it is absent), with RFC 6901 escaping from `jsonptr`; a namespace that
//! already has a `name` label is left alone (validation refuses a lying one).
//!
//! The stamp is set to the namespace's label-made tier
//! ([`IsolationPolicy::tier_by_label`]: not a tier its name places it in,
//! which is the policy's decision) and removed when it is in none. Mutation
//! runs before validation, so a namespace stored through tierguard carries
//! the stamp of the tier validation judged it into; the baseline controller
//! reports a label-made tier that differs from its stamp, a join made while
//! the webhook was down.
//!
//! Both patches are computed from the object they are applied to, so
//! reinvocation is idempotent and a correct namespace gets no patch.

use std::collections::BTreeMap;

use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation};
use jsonptr::PointerBuf;
use kube::core::admission::Operation;
use serde_json::{Value, json};

use super::outcome::Outcome;
use super::request::{Kind, Request};
use crate::engine::state::{ADMITTED_TIER_ANNOTATION, NAME_LABEL};
use crate::engine::tiers::IsolationPolicy;

/// Mutates a request: a Namespace without a `name` label gets one, and its
/// tier stamp is made to match its label-made tier.
pub fn review(policy: &IsolationPolicy, req: &Request) -> Outcome {
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
    let labels = meta.labels.as_ref();
    let mut ops = Vec::new();
    if let Some(Patch(mut name_ops)) = name_label_patch(labels, name) {
        ops.append(&mut name_ops);
    }
    let tier = admitted_tier(policy, name, labels);
    if let Some(Patch(mut stamp_ops)) = stamp_patch(meta.annotations.as_ref(), tier.as_deref()) {
        ops.append(&mut stamp_ops);
    }
    if ops.is_empty() {
        Outcome::Admit
    } else {
        Outcome::Patch(Patch(ops))
    }
}

/// The stamp a namespace with these labels must carry: the name of the tier
/// its tier label alone places it in, or `None`.
pub fn admitted_tier(
    policy: &IsolationPolicy,
    name: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> Option<String> {
    let empty = BTreeMap::new();
    policy
        .tier_by_label(name, labels.unwrap_or(&empty))
        .and_then(|i| policy.tiers.get(i))
        .map(|t| t.name.clone())
}

/// The tier a namespace's stamp (`tierguard.io/admitted-tier`) names, if any.
pub fn stamp_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<String> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(ADMITTED_TIER_ANNOTATION))
        .cloned()
}

/// The JSON patch that adds `name=<name>`, or `None` when the label is there.
pub fn name_label_patch(labels: Option<&BTreeMap<String, String>>, name: &str) -> Option<Patch> {
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

/// The JSON patch that makes the stamp equal `tier` (sets it, or removes it
/// for `None`), or `None` when it already does.
pub fn stamp_patch(
    annotations: Option<&BTreeMap<String, String>>,
    tier: Option<&str>,
) -> Option<Patch> {
    let current = annotations.and_then(|a| a.get(ADMITTED_TIER_ANNOTATION));
    let op = match (tier, annotations) {
        (Some(t), _) if current.map(String::as_str) == Some(t) => return None,
        // `add` on an existing member replaces it (RFC 6902 §4.1).
        (Some(t), Some(_)) => PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations", ADMITTED_TIER_ANNOTATION]),
            value: Value::String(t.to_string()),
        }),
        (Some(t), None) => PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations"]),
            value: json!({ ADMITTED_TIER_ANNOTATION: t }),
        }),
        (None, _) if current.is_none() => return None,
        (None, _) => PatchOperation::Remove(RemoveOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations", ADMITTED_TIER_ANNOTATION]),
        }),
    };
    Some(Patch(vec![op]))
}
