//! Calico NetworkPolicy and GlobalNetworkPolicy CREATE and UPDATE: a policy
//! [`crate::engine::calico`] cannot judge is refused in enforce mode. A
//! DELETE removes rules; only an `Allow` or `Pass` removed could matter,
//! and none that may apply to tier pods is admitted.
//!
//! A policy tierguard cannot read (an invalid selector, an unknown action)
//! is not judged either. Namespaces that join a tier by label later are
//! judged when they join, without their Calico policies (docs/calico.md).

use kube::core::admission::Operation;

use crate::admission::context::Ctx;
use crate::admission::outcome::Outcome;
use crate::admission::request::Request;
use crate::engine::calico::unjudged;
use crate::engine::isolation::Checker;
use crate::engine::state::State;
use crate::model::calico::policy::{Kind, read};
use crate::report::Unjudgeable;

/// Judges a request for a Calico policy of `kind`.
pub fn review(ctx: &Ctx, state: &State, req: &Request, kind: Kind) -> Outcome {
    let object = format!("{} {}", kind.display_name(), req.object_key);
    match req.operation() {
        Operation::Delete => return Outcome::Admit,
        Operation::Connect => {
            return Outcome::cannot(Unjudgeable::Operation {
                kind: kind.display_name().into(),
                operation: req.operation_name().into(),
            });
        }
        Operation::Create | Operation::Update => {}
    }
    let obj: serde_json::Value = match req.object() {
        Ok(o) => o,
        Err(error) => return Outcome::cannot(Unjudgeable::Unreadable { error }),
    };
    let policy = match read(kind, &obj) {
        Ok(p) => p,
        Err(errs) => {
            return Outcome::cannot(Unjudgeable::Invalid {
                object,
                errors: errs.iter().map(ToString::to_string).collect(),
            });
        }
    };
    if policy.openings.is_empty() {
        return Outcome::Admit;
    }
    let iso = ctx.policy();
    let checker = Checker::new(&iso, state);
    let ns = req.namespace();
    let tier_namespace = match kind {
        Kind::GlobalNetworkPolicy => None,
        Kind::NetworkPolicy => match state.namespace(ns) {
            Some(n) => checker.tier_of(n).map(|_| ns),
            // Not indexed yet: a tier namespace by name is one anyway.
            None if iso.tier_by_name(ns).is_some() => Some(ns),
            None => {
                return Outcome::retry(Unjudgeable::NamespaceUnknown {
                    namespace: ns.to_string(),
                });
            }
        },
    };
    match unjudged(&checker, &object, &policy.to_engine(), tier_namespace) {
        None => Outcome::Admit,
        Some(u) => Outcome::cannot(Unjudgeable::CalicoPolicy(u)),
    }
}
