//! Validation: judge a Namespace, NetworkPolicy or Pod request against the
//! index and the isolation policy.
//!
//! 1. Namespace CREATE/UPDATE: the `name` label must equal the namespace's
//!    name; tier membership (the tier label) may change only for the users
//!    and groups of `spec.membership`; the new labels must not open a
//!    forbidden flow.
//! 2. NetworkPolicy CREATE/UPDATE/DELETE: the policy must be valid, must not
//!    open a forbidden flow, and a managed baseline policy may be changed or
//!    deleted only by the guard (or `--baseline-editors`).
//! 3. Pod CREATE in a tier namespace: refused until the namespace's baseline
//!    policies are in the index (no window of open traffic).
//!
//! In enforce mode a request that cannot be judged (index not synced, object
//! unreadable) is refused with the reason.

use k8s_openapi::api::core::v1 as corev1;
use k8s_openapi::api::networking::v1 as netv1;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, Operation};

use super::Ctx;
use super::review::{Verdict, object_key, typed};
use crate::engine::isolation::{
    Change, Finding, NAME_LABEL, SUMMARY_MAX, check_change, check_namespace_change, clip,
};
use crate::engine::policy::Policy;
use crate::engine::state::State;
use crate::guardpolicy::Judge;
use crate::guardpolicy::baseline::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::index::namespace_of;

/// Judges one request.
pub fn review(ctx: &Ctx, req: &AdmissionRequest<DynamicObject>) -> Verdict {
    match (req.kind.group.as_str(), req.kind.kind.as_str()) {
        ("", "Namespace") => with_index(ctx, |state| namespace(ctx, state, req)),
        ("networking.k8s.io", "NetworkPolicy") => {
            with_index(ctx, |state| network_policy(ctx, state, req))
        }
        ("", "Pod") => with_index(ctx, |state| pod(ctx, state, req)),
        (group, kind) => Verdict::CannotJudge {
            reason: format!(
                "tierguard judges Namespaces, NetworkPolicies and Pods, not {group}/{kind}; check the webhook's rules"
            ),
            retriable: false,
        },
    }
}

/// Whether judging `req` walks every tier namespace (a Namespace CREATE or
/// UPDATE, or any NetworkPolicy change under `judge: effective`), so that
/// its cost grows with the cluster. Such judgements run on the blocking pool
/// within the request deadline; the others (a NetworkPolicy change in walls
/// mode is judged on its own namespace's walls only, a Pod is a lookup) run
/// in place.
pub fn walks_cluster(ctx: &Ctx, req: &AdmissionRequest<DynamicObject>) -> bool {
    match (req.kind.group.as_str(), req.kind.kind.as_str()) {
        ("", "Namespace") => matches!(req.operation, Operation::Create | Operation::Update),
        ("networking.k8s.io", "NetworkPolicy") => ctx.policy.judge == Judge::Effective,
        _ => false,
    }
}

/// Judges against a snapshot of the index. The lock is held only to take
/// the snapshot (a clone of persistent maps: a few reference counts), so
/// watch updates never wait for a judgement and a judgement sees one
/// consistent state.
fn with_index(ctx: &Ctx, f: impl FnOnce(&State) -> Verdict) -> Verdict {
    let snapshot = {
        let index = ctx.index.read().unwrap_or_else(|e| e.into_inner());
        if !index.is_synced() {
            return Verdict::CannotJudge {
                reason: "tierguard is starting and has not synced namespaces and network policies yet; retry in a few seconds".into(),
                retriable: true,
            };
        }
        index.state().clone()
    };
    f(&snapshot)
}

fn user_may_change_membership(ctx: &Ctx, req: &AdmissionRequest<DynamicObject>) -> bool {
    let m = &ctx.policy.membership;
    let user = req.user_info.username.as_deref().unwrap_or_default();
    m.users.contains(user)
        || req
            .user_info
            .groups
            .iter()
            .flatten()
            .any(|g| m.groups.contains(g))
}

fn flows_verdict(what: String, findings: Vec<Finding>, policy_name: &str) -> Verdict {
    if findings.is_empty() {
        return Verdict::Allow;
    }
    let n = findings.len();
    Verdict::Violations {
        headline: format!(
            "{what} would open {n} forbidden flow{}",
            if n == 1 { "" } else { "s" }
        ),
        problems: Vec::new(),
        advice: format!(
            "Narrow the rule's peers or ports, or allow the flow in the isolation policy {policy_name} (spec.flows). \
             `tierguard check` shows the full report."
        ),
        findings,
    }
}

fn namespace(ctx: &Ctx, state: &State, req: &AdmissionRequest<DynamicObject>) -> Verdict {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Verdict::Allow;
    }
    let obj: corev1::Namespace = match typed(req.object.as_ref(), "object") {
        Ok(o) => o,
        Err(reason) => {
            return Verdict::CannotJudge {
                reason,
                retriable: false,
            };
        }
    };
    let Some(ns) = namespace_of(&obj) else {
        return Verdict::CannotJudge {
            reason: "the namespace has no metadata.name".into(),
            retriable: false,
        };
    };
    let iso = &ctx.policy;
    // Each problem with the advice that fixes it.
    let mut problems: Vec<(String, String)> = Vec::new();
    if let Some(v) = ns.labels.get(NAME_LABEL)
        && *v != ns.name
    {
        problems.push((
            format!(
                "namespace {}: label {NAME_LABEL}={v} must equal the namespace's name ({NAME_LABEL}={}); selectors written for {v} would match it",
                ns.name, ns.name
            ),
            format!("Leave the {NAME_LABEL} label to tierguard (it sets {NAME_LABEL}=<namespace>)."),
        ));
    }
    let new_tier = ns.labels.get(&iso.tier_label).cloned();
    let old_tier = match req.operation {
        Operation::Update => typed::<corev1::Namespace>(req.old_object.as_ref(), "old object")
            .ok()
            .and_then(|o| {
                o.metadata
                    .labels
                    .and_then(|l| l.get(&iso.tier_label).cloned())
            }),
        _ => None,
    };
    if new_tier != old_tier && !user_may_change_membership(ctx, req) {
        let user = req
            .user_info
            .username
            .as_deref()
            .unwrap_or("<unknown user>");
        problems.push((
            clip(
                &format!(
                    "namespace {}: changing label {} ({} -> {}) changes tier membership, which only spec.membership of {} may do (user {user} may not)",
                    ns.name,
                    iso.tier_label,
                    old_tier.as_deref().unwrap_or("none"),
                    new_tier.as_deref().unwrap_or("none"),
                    iso.name
                ),
                SUMMARY_MAX,
            ),
            format!(
                "Ask a user listed in spec.membership of {} to change tiers.",
                iso.name
            ),
        ));
    }
    if let Err(c) = iso.tier_of(&ns.name, new_tier.as_deref()) {
        problems.push((
            format!("namespace {}: {c}", ns.name),
            "A namespace belongs to one tier: remove the conflicting tier label.".into(),
        ));
    }
    let findings = check_namespace_change(iso, state, &ns);
    if problems.is_empty() {
        return flows_verdict(format!("Namespace {}", ns.name), findings, &iso.name);
    }
    let (problems, advice): (Vec<String>, Vec<String>) = problems.into_iter().unzip();
    Verdict::Violations {
        headline: format!("Namespace {} is refused", ns.name),
        problems,
        advice: advice.join(" "),
        findings,
    }
}

fn is_managed(np: &netv1::NetworkPolicy) -> bool {
    np.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL))
        .is_some_and(|v| v == MANAGED_BY_VALUE)
}

fn network_policy(ctx: &Ctx, state: &State, req: &AdmissionRequest<DynamicObject>) -> Verdict {
    let iso = &ctx.policy;
    let namespace = req.namespace.clone().unwrap_or_default();
    // Managed baseline policies: only the guard (or configured editors) may change or delete them.
    if matches!(req.operation, Operation::Update | Operation::Delete)
        && iso.baseline_names().contains(&req.name.as_str())
        && let Ok(old) = typed::<netv1::NetworkPolicy>(req.old_object.as_ref(), "old object")
        && is_managed(&old)
    {
        let user = req.user_info.username.clone().unwrap_or_default();
        let still_managed = match req.operation {
            Operation::Update => typed::<netv1::NetworkPolicy>(req.object.as_ref(), "object")
                .map(|o| is_managed(&o) && o.spec == old.spec)
                .unwrap_or(false),
            _ => false,
        };
        if !ctx.baseline_editors.contains(&user) && !still_managed {
            let verb = if req.operation == Operation::Delete {
                "deleting"
            } else {
                "changing"
            };
            return Verdict::Violations {
                headline: format!("NetworkPolicy {} is tierguard's baseline", object_key(req)),
                problems: vec![format!(
                    "{verb} {} is refused: it is the baseline tierguard keeps in every tier namespace (user {user} may not change it)",
                    object_key(req)
                )],
                advice: format!(
                    "Change the baseline in the isolation policy {} (spec.baseline); tierguard applies it to every tier namespace.",
                    iso.name
                ),
                findings: Vec::new(),
            };
        }
    }
    match req.operation {
        Operation::Create | Operation::Update => {
            let np: netv1::NetworkPolicy = match typed(req.object.as_ref(), "object") {
                Ok(o) => o,
                Err(reason) => {
                    return Verdict::CannotJudge {
                        reason,
                        retriable: false,
                    };
                }
            };
            let policy = match Policy::from_k8s(&np, &namespace) {
                Ok(p) => p,
                Err(errs) => {
                    let list: Vec<String> = errs.iter().map(ToString::to_string).collect();
                    return Verdict::CannotJudge {
                        reason: format!(
                            "NetworkPolicy {} is invalid: {}",
                            object_key(req),
                            list.join("; ")
                        ),
                        retriable: false,
                    };
                }
            };
            let findings = check_change(
                iso,
                state,
                &Change::ApplyPolicy(std::sync::Arc::new(policy)),
            );
            flows_verdict(
                format!("NetworkPolicy {}", object_key(req)),
                findings,
                &iso.name,
            )
        }
        Operation::Delete => {
            let findings = check_change(
                iso,
                state,
                &Change::DeletePolicy {
                    namespace,
                    name: req.name.clone(),
                },
            );
            flows_verdict(
                format!("Deleting NetworkPolicy {}", object_key(req)),
                findings,
                &iso.name,
            )
        }
        Operation::Connect => Verdict::Allow,
    }
}

fn pod(ctx: &Ctx, state: &State, req: &AdmissionRequest<DynamicObject>) -> Verdict {
    if !ctx.pod_guard || req.operation != Operation::Create {
        return Verdict::Allow;
    }
    let namespace = req.namespace.clone().unwrap_or_default();
    let Some(ns) = state.namespace(&namespace) else {
        return Verdict::CannotJudge {
            reason: format!(
                "namespace {namespace} is not in tierguard's index yet; retry in a few seconds"
            ),
            retriable: true,
        };
    };
    if ctx.policy.tier_of_namespace(&ns.name, &ns.labels).is_none() {
        return Verdict::Allow;
    }
    let missing: Vec<&str> = ctx
        .policy
        .baseline_names()
        .into_iter()
        .filter(|name| state.policy(&namespace, name).is_none())
        .collect();
    if missing.is_empty() {
        return Verdict::Allow;
    }
    Verdict::CannotJudge {
        reason: format!(
            "namespace {namespace} is a tier namespace whose baseline ({}) is not in place yet; \
             tierguard admits pods once it is, so nothing runs unisolated. Retry in a few seconds",
            missing.join(", ")
        ),
        retriable: true,
    }
}
