//! Validation: judge a Namespace, NetworkPolicy or Pod request against a
//! snapshot of the index and the isolation policy.
//!
//! 1. Namespace CREATE/UPDATE ([`namespace`]): the `name` label must equal
//!    the namespace's name; tier membership (the tier label) may change only
//!    for the users and groups of `spec.membership`; the new labels must not
//!    open a forbidden flow.
//! 2. NetworkPolicy CREATE/UPDATE/DELETE ([`networkpolicy`]): the policy
//!    must be valid, must not open a forbidden flow, and a managed baseline
//!    policy may be changed or deleted only by the guard (or
//!    `--baseline-editors`).
//! 3. Pod CREATE in a tier namespace ([`pod`]): refused until the
//!    namespace's baseline policies are in the index (no window of open
//!    traffic).
//! 4. ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy
//!    CREATE/UPDATE/DELETE ([`clusterpolicy`]): valid, and opening no
//!    forbidden flow in any tier namespace, judged tier by tier.
//! 5. Calico NetworkPolicy and GlobalNetworkPolicy CREATE/UPDATE
//!    ([`calico`]): not judged yet, so refused in enforce mode when they may
//!    apply to tier pods with a rule that can let traffic through.
//! 6. IsolationPolicy CREATE/UPDATE ([`isolationpolicy`]): tierguard's own
//!    configuration must be valid, with the field paths `tierguard check`
//!    gives for a file; refused in every mode.
//!
//! In enforce mode a request that cannot be judged (index not synced, object
//! unreadable) is refused with the reason.

pub mod calico;
pub mod clusterpolicy;
pub mod isolationpolicy;
pub mod namespace;
pub mod networkpolicy;
pub mod pod;

use super::outcome::Outcome;
use super::request::{Kind, Request};
use crate::admission::context::Ctx;
use crate::engine::cluster::Api;
use crate::engine::isolation::Cost;
use crate::engine::state::State;
use crate::index::Index;
use crate::report::Unjudgeable;

/// Judges one request.
pub fn review(ctx: &Ctx, req: &Request) -> Outcome {
    match &req.kind {
        Kind::Namespace => with_index(ctx, req, |state| namespace::review(ctx, state, req)),
        Kind::NetworkPolicy => with_index(ctx, req, |state| networkpolicy::review(ctx, state, req)),
        Kind::Pod => with_index(ctx, req, |state| pod::review(ctx, state, req)),
        Kind::ClusterPolicy(api) => with_index(ctx, req, |state| {
            clusterpolicy::review(ctx, state, req, *api)
        }),
        Kind::Calico(kind) => with_index(ctx, req, |state| calico::review(ctx, state, req, *kind)),
        Kind::IsolationPolicy => isolationpolicy::review(req),
        Kind::Other { group, kind } => Outcome::cannot(Unjudgeable::Kind {
            group: group.clone(),
            kind: kind.clone(),
        }),
    }
}

/// What judging `req` costs, as the engine states it: a Namespace change
/// or a cluster policy change walks every tier namespace; a NetworkPolicy
/// change costs what the isolation policy's judgement makes it; a Pod is a
/// lookup.
pub fn cost(ctx: &Ctx, req: &Request) -> Cost {
    match req.kind {
        Kind::Namespace | Kind::ClusterPolicy(_) => Cost::Cluster,
        // Under cluster tiers a wall's search grows with the cluster
        // policies that may select it: judged off the request threads.
        Kind::NetworkPolicy if has_cluster_policies(ctx) => Cost::Cluster,
        Kind::NetworkPolicy => Cost::of_policy_change(&ctx.policy()),
        // A Calico policy is read, not judged: a few selector questions.
        Kind::Pod | Kind::Calico(_) | Kind::Other { .. } => Cost::Namespace,
        // Validating the configuration reads no cluster state.
        Kind::IsolationPolicy => Cost::Namespace,
    }
}

/// True when the index holds cluster policies (or cannot say).
fn has_cluster_policies(ctx: &Ctx) -> bool {
    ctx.index
        .read()
        .map_or(true, |i| i.state().has_cluster_policies())
}

/// Judges against a snapshot of the index. The lock is held only to take
/// the snapshot (a clone of persistent maps: a few reference counts), so
/// watch updates never wait for a judgement and a judgement sees one
/// consistent state.
///
/// It fails closed on what the index does not know: not synced yet, a watch
/// failing past its bound (stale), or, for a Namespace or NetworkPolicy
/// change, stored policies of that namespace tierguard cannot read (a change
/// to such a policy itself is judged: it replaces or removes it).
fn with_index(ctx: &Ctx, req: &Request, f: impl FnOnce(&State) -> Outcome) -> Outcome {
    let snapshot = {
        let index = ctx.index.read().unwrap_or_else(|e| e.into_inner());
        if !index.is_synced() {
            return Outcome::retry(Unjudgeable::NotSynced);
        }
        if let Some(stale) = index.stale() {
            return Outcome::retry(Unjudgeable::Stale {
                kind: stale.kind.as_str().into(),
                secs: stale.failing_for.as_secs(),
            });
        }
        // A write of a kind the index does not hold yet would be judged
        // alone and then missed by every later judgement.
        if let Kind::ClusterPolicy(api) = req.kind
            && !index.cluster_api_synced(api)
        {
            return Outcome::retry(Unjudgeable::KindNotWatched {
                kind: api.kind().into(),
            });
        }
        let (namespace, itself) = match req.kind {
            Kind::Namespace => (req.name(), None),
            Kind::NetworkPolicy => (req.namespace(), Some(req.name())),
            Kind::Pod
            | Kind::ClusterPolicy(_)
            | Kind::Calico(_)
            | Kind::IsolationPolicy
            | Kind::Other { .. } => ("", None),
        };
        if let Some(why) = unreadable(&index, namespace, itself) {
            return Outcome::cannot(why);
        }
        // The API server has the namespace (it checks before admission);
        // the index may not yet, right after the namespace was created: a
        // policy judged as if its namespace were in no tier could open one.
        // (A world loaded by `serve --world` has no watches: a namespace it
        // does not declare exists with its automatic label only.)
        if matches!(req.kind, Kind::NetworkPolicy)
            && index.is_watched()
            && !namespace.is_empty()
            && index.state().namespace(namespace).is_none()
        {
            return Outcome::retry(Unjudgeable::NamespaceUnknown {
                namespace: namespace.to_string(),
            });
        }
        let cluster_itself = match req.kind {
            Kind::ClusterPolicy(api) => Some((api, req.name())),
            _ => None,
        };
        if !matches!(req.kind, Kind::Pod | Kind::Calico(_) | Kind::Other { .. })
            && let Some(why) = unreadable_cluster(&index, cluster_itself)
        {
            return Outcome::cannot(why);
        }
        index.state().clone()
    };
    f(&snapshot)
}

/// The unreadable policies of `namespace` other than `itself`, if any.
fn unreadable(index: &Index, namespace: &str, itself: Option<&str>) -> Option<Unjudgeable> {
    if namespace.is_empty() {
        return None;
    }
    let others: Vec<(&str, &str)> = index
        .unreadable_in(namespace)
        .filter(|(name, _)| Some(*name) != itself)
        .collect();
    let (_, error) = others.first()?;
    Some(Unjudgeable::UnreadablePolicies {
        namespace: namespace.to_string(),
        policies: others.iter().take(3).map(|(n, _)| n.to_string()).collect(),
        count: others.len(),
        error: error.to_string(),
    })
}

/// The cluster policies tierguard cannot read other than `itself`, if any.
fn unreadable_cluster(index: &Index, itself: Option<(Api, &str)>) -> Option<Unjudgeable> {
    let others: Vec<(Api, &str, &str)> = index
        .unreadable_cluster_policies()
        .filter(|(api, name, _)| Some((*api, *name)) != itself)
        .collect();
    let (_, _, error) = others.first()?;
    Some(Unjudgeable::UnreadableClusterPolicies {
        policies: others
            .iter()
            .take(3)
            .map(|(api, name, _)| format!("{} {name}", api.kind()))
            .collect(),
        count: others.len(),
        error: error.to_string(),
    })
}

/// The problem of an UPDATE or DELETE of a baseline object tierguard keeps
/// (`old_managed`: the stored object carries the managed-by label;
/// `same`: the new object is managed and means the same), unless the user
/// may edit the baseline or the update changes nothing.
fn baseline_edit_problem(
    ctx: &Ctx,
    iso: &crate::engine::tiers::IsolationPolicy,
    req: &Request,
    object: String,
    old_managed: bool,
    same: impl FnOnce() -> bool,
) -> Option<crate::report::Problem> {
    if !old_managed || ctx.baseline_editors.contains(&req.user) {
        return None;
    }
    let delete = *req.operation() == kube::core::admission::Operation::Delete;
    (delete || !same()).then(|| crate::report::Problem::BaselineEdit {
        object,
        delete,
        user: req.user.clone(),
        policy: iso.name.clone(),
    })
}

/// Refuses with `refusal` when it holds a problem or a flow, else admits.
fn verdict(refusal: crate::report::kubectl::Refusal) -> Outcome {
    if refusal.problems.is_empty() && refusal.breaches.is_empty() {
        Outcome::Admit
    } else {
        Outcome::Refuse(refusal)
    }
}
