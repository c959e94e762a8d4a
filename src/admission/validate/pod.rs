//! Pod CREATE in a tier namespace: refused, retriably, until both baseline
//! policies are in the index (and, with `via: clusterNetworkPolicy`, every
//! baseline ClusterNetworkPolicy that selects the namespace), so no pod runs
//! before its namespace is isolated.

use kube::core::admission::Operation;

use crate::admission::context::Ctx;
use crate::admission::outcome::Outcome;
use crate::admission::request::Request;
use crate::engine::state::State;
use crate::report::Unjudgeable;

/// Judges a Pod request.
pub fn review(ctx: &Ctx, state: &State, req: &Request) -> Outcome {
    if !ctx.pod_guard || *req.operation() != Operation::Create {
        return Outcome::Admit;
    }
    let namespace = req.namespace();
    let Some(ns) = state.namespace(namespace) else {
        return Outcome::retry(Unjudgeable::NamespaceUnknown {
            namespace: namespace.to_string(),
        });
    };
    let policy = ctx.policy();
    if policy.tier_of_namespace(&ns.name, &ns.labels).is_none() {
        return Outcome::Admit;
    }
    let mut missing: Vec<String> = policy
        .baseline_names()
        .into_iter()
        .filter(|name| state.policy(namespace, name).is_none())
        .map(str::to_string)
        .collect();
    missing.extend(
        policy
            .cluster_baseline()
            .iter()
            .filter(|c| c.subject_selectors().0.matches(&ns.labels))
            .filter(|c| state.cluster_policy(c.api, &c.name).is_none())
            .map(|c| format!("{} {}", c.api.kind(), c.name)),
    );
    if missing.is_empty() {
        return Outcome::Admit;
    }
    Outcome::retry(Unjudgeable::BaselineMissing {
        namespace: namespace.to_string(),
        missing,
    })
}
