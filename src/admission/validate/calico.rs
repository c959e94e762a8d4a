//! Calico NetworkPolicy and GlobalNetworkPolicy CREATE and UPDATE: tierguard
//! does not judge Calico's rules yet, so a policy that may apply to pods of
//! a tier namespace (or to host endpoints) and has a rule that can let
//! traffic through (`Allow`, `Pass`) cannot be judged, and is refused in
//! enforce mode. Anything else cannot open a forbidden flow:
//!
//! - a policy that applies to no tier pod changes only the verdicts of the
//!   other end of a flow; the tier side's own policies (the baseline) still
//!   decide, and they are judged;
//! - `Deny` and `Log` rules never let anything through;
//! - a DELETE removes rules; only an `Allow` or `Pass` removed could matter,
//!   and none that may apply to tier pods is admitted.
//!
//! A policy tierguard cannot read (an invalid selector, an unknown action)
//! is not judged either. Namespaces that join a tier by label later are
//! judged when they join, without their Calico policies (docs/calico.md).

use kube::core::admission::Operation;

use crate::admission::context::Ctx;
use crate::admission::outcome::Outcome;
use crate::admission::request::Request;
use crate::engine::isolation::Checker;
use crate::engine::selector::Selector;
use crate::engine::state::{METADATA_NAME_LABEL, State};
use crate::model::calico::policy::{Kind, Policy, read};
use crate::report::Unjudgeable;

/// The namespace label Calico gives every namespace: its name.
const CALICO_NAME_LABEL: &str = "projectcalico.org/name";

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
    // No shortcut for a selector that seems to match nothing: Calico
    // rewrites `all()` inside a GlobalNetworkPolicy's combined selector
    // (`!all()` then matches host endpoints), so only the rules decide.
    if policy.openings.is_empty() {
        return Outcome::Admit;
    }
    let checker = Checker::new(&ctx.policy, state);
    let mut caveat = String::new();
    let namespaces = match kind {
        Kind::NetworkPolicy => {
            let ns = req.namespace();
            let in_tier = match state.namespace(ns) {
                Some(n) => checker.tier_of(n).is_some(),
                // Not indexed yet: a tier namespace by name is one anyway.
                None if ctx.policy.tier_by_name(ns).is_some() => true,
                None => {
                    return Outcome::retry(Unjudgeable::NamespaceUnknown {
                        namespace: ns.to_string(),
                    });
                }
            };
            if in_tier {
                vec![ns.to_string()]
            } else {
                Vec::new()
            }
        }
        Kind::GlobalNetworkPolicy => match namespaces_of(&checker, &policy) {
            Ok(n) => n,
            Err(why) => {
                // A namespaceSelector tierguard cannot read exactly may
                // select any namespace.
                caveat = format!("; its spec.namespaceSelector is read as any namespace: {why}");
                let all = checker.tier_namespaces_matched(&[Selector::everything()]);
                all.into_iter().collect()
            }
        },
    };
    if namespaces.is_empty() && policy.host_modes.is_empty() {
        return Outcome::Admit;
    }
    let place = match policy.order {
        Some(o) => format!("tier {}, order {o}", policy.tier),
        None => format!("tier {}", policy.tier),
    };
    Outcome::cannot(Unjudgeable::CalicoPolicy {
        object: format!("{object} ({place}{caveat})"),
        namespaces,
        rules: policy
            .openings
            .iter()
            .map(|o| format!("{} {}", o.path, o.action))
            .collect(),
        host_modes: policy.host_modes.iter().map(|m| m.to_string()).collect(),
    })
}

/// The tier namespaces a GlobalNetworkPolicy's `namespaceSelector` may
/// select (every one when it has none).
fn namespaces_of(
    checker: &Checker<'_>,
    policy: &Policy,
) -> Result<Vec<String>, crate::model::calico::selector::Unsupported> {
    let union: Vec<Selector> = match &policy.namespace_selector {
        None => vec![Selector::everything()],
        Some(e) => e
            .to_engine()?
            .into_iter()
            .map(as_namespace_selector)
            .collect(),
    };
    Ok(checker
        .tier_namespaces_matched(&union)
        .into_iter()
        .collect())
}

/// A Calico namespace selector in the engine's terms: Calico's
/// `projectcalico.org/name` label is the namespace's name, as
/// `kubernetes.io/metadata.name` is.
fn as_namespace_selector(sel: Selector) -> Selector {
    Selector::from_requirements(
        sel.requirements()
            .iter()
            .cloned()
            .map(|mut r| {
                if r.key == CALICO_NAME_LABEL {
                    r.key = METADATA_NAME_LABEL.to_string();
                }
                r
            })
            .collect(),
    )
}
