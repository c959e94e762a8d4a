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
//!
//! In enforce mode a request that cannot be judged (index not synced, object
//! unreadable) is refused with the reason.

pub mod namespace;
pub mod networkpolicy;
pub mod pod;

use super::outcome::Outcome;
use super::request::{Kind, Request};
use crate::admission::context::Ctx;
use crate::engine::isolation::Cost;
use crate::engine::state::State;
use crate::report::Unjudgeable;

/// Judges one request.
pub fn review(ctx: &Ctx, req: &Request) -> Outcome {
    match &req.kind {
        Kind::Namespace => with_index(ctx, |state| namespace::review(ctx, state, req)),
        Kind::NetworkPolicy => with_index(ctx, |state| networkpolicy::review(ctx, state, req)),
        Kind::Pod => with_index(ctx, |state| pod::review(ctx, state, req)),
        Kind::Other { group, kind } => Outcome::cannot(Unjudgeable::Kind {
            group: group.clone(),
            kind: kind.clone(),
        }),
    }
}

/// What judging `req` costs, as the engine states it: a Namespace change
/// walks every tier namespace; a NetworkPolicy change costs what the
/// isolation policy's judgement makes it; a Pod is a lookup.
pub fn cost(ctx: &Ctx, req: &Request) -> Cost {
    match req.kind {
        Kind::Namespace => Cost::of_namespace_change(),
        Kind::NetworkPolicy => Cost::of_policy_change(&ctx.policy),
        Kind::Pod | Kind::Other { .. } => Cost::Namespace,
    }
}

/// Judges against a snapshot of the index. The lock is held only to take
/// the snapshot (a clone of persistent maps: a few reference counts), so
/// watch updates never wait for a judgement and a judgement sees one
/// consistent state.
fn with_index(ctx: &Ctx, f: impl FnOnce(&State) -> Outcome) -> Outcome {
    let snapshot = {
        let index = ctx.index.read().unwrap_or_else(|e| e.into_inner());
        if !index.is_synced() {
            return Outcome::retry(Unjudgeable::NotSynced);
        }
        index.state().clone()
    };
    f(&snapshot)
}

/// Refuses with `refusal` when it holds a problem or a flow, else admits.
fn verdict(refusal: crate::report::kubectl::Refusal) -> Outcome {
    if refusal.problems.is_empty() && refusal.breaches.is_empty() {
        Outcome::Admit
    } else {
        Outcome::Refuse(refusal)
    }
}
