//! Namespace CREATE and UPDATE: a truthful `name` label, tier membership
//! changed only by `spec.membership`, one tier at most, and no forbidden
//! flow opened by the new labels (with the baseline assumed in place for a
//! namespace that is, or becomes, a tier namespace), and a tier stamp
//! (`tierguard.io/admitted-tier`) equal to the tier its label places it in
//! (mutation sets it; a disagreeing stamp means mutation was bypassed).

use k8s_openapi::api::core::v1 as corev1;
use kube::core::admission::Operation;

use super::verdict;
use crate::admission::context::Ctx;
use crate::admission::mutate::admitted_tier;
use crate::admission::outcome::Outcome;
use crate::admission::request::Request;
use crate::engine::isolation::{NamespaceProblem, check_namespace_change};
use crate::engine::state::{NAME_LABEL, State};
use crate::engine::tiers::IsolationPolicy;
use crate::report::kubectl::Refusal;
use crate::report::{Problem, Unjudgeable};

/// True when the user may change tier membership.
fn may_change_membership(iso: &IsolationPolicy, req: &Request) -> bool {
    let m = &iso.membership;
    m.users.contains(&req.user) || req.groups.iter().any(|g| m.groups.contains(g))
}

/// Judges a Namespace request.
pub fn review(ctx: &Ctx, state: &State, req: &Request) -> Outcome {
    if !matches!(req.operation(), Operation::Create | Operation::Update) {
        return Outcome::Admit;
    }
    let obj: corev1::Namespace = match req.object() {
        Ok(o) => o,
        Err(error) => return Outcome::cannot(Unjudgeable::Unreadable { error }),
    };
    let Some(ns) = crate::model::namespace::convert(&obj) else {
        return Outcome::cannot(Unjudgeable::Nameless);
    };
    let policy = ctx.policy();
    let iso = &*policy;
    let mut problems = Vec::new();
    if let Some(v) = ns.labels.get(NAME_LABEL)
        && *v != ns.name
    {
        problems.push(Problem::Namespace(NamespaceProblem::NameLabelLies {
            namespace: ns.name.clone(),
            value: v.clone(),
        }));
    }
    // Mutation ran first and made the stamp equal the label-made tier; a
    // stamp that disagrees was set past it.
    let stamp = crate::admission::mutate::stamp_of(&obj.metadata);
    let tier = admitted_tier(iso, &ns.name, obj.metadata.labels.as_ref());
    if stamp != tier {
        problems.push(Problem::AdmittedTier {
            namespace: ns.name.clone(),
            stamp,
            tier,
        });
    }
    let new_tier = ns.labels.get(&iso.tier_label).cloned();
    // An UPDATE is judged against what it changes: without a readable old
    // object a namespace leaving its tier could not be told apart.
    let old_tier = match req.operation() {
        Operation::Update => match req.old_object::<corev1::Namespace>() {
            Ok(o) => o
                .metadata
                .labels
                .and_then(|l| l.get(&iso.tier_label).cloned()),
            Err(error) => return Outcome::cannot(Unjudgeable::Unreadable { error }),
        },
        _ => None,
    };
    if new_tier != old_tier && !may_change_membership(iso, req) {
        problems.push(Problem::Membership {
            namespace: ns.name.clone(),
            tier_label: iso.tier_label.clone(),
            from: old_tier,
            to: new_tier.clone(),
            user: if req.user.is_empty() {
                "<unknown user>".into()
            } else {
                req.user.clone()
            },
            policy: iso.name.clone(),
        });
    }
    if let Err(conflict) = iso.tier_of(&ns.name, new_tier.as_deref()) {
        problems.push(Problem::Namespace(NamespaceProblem::TierConflict {
            namespace: ns.name.clone(),
            conflict,
        }));
    }
    let baseline = crate::model::baseline::engine_policies(iso, &ns.name);
    let breaches = match check_namespace_change(iso, state, &ns, &baseline) {
        Ok(b) => b,
        Err(e) => return Outcome::cannot(Unjudgeable::Exhausted(e)),
    };
    verdict(Refusal {
        kind: "Namespace".into(),
        object: ns.name.clone(),
        delete: false,
        breaches,
        problems,
        policy: iso.name.clone(),
    })
}
