//! NetworkPolicy CREATE, UPDATE and DELETE: valid, opening no forbidden
//! flow, and leaving the managed baseline to the guard.

use std::sync::Arc;

use k8s_openapi::api::networking::v1 as netv1;
use kube::core::admission::Operation;

use super::verdict;
use crate::admission::context::Ctx;
use crate::admission::outcome::Outcome;
use crate::admission::request::Request;
use crate::engine::isolation::{Change, check_change};
use crate::engine::state::State;
use crate::engine::tiers::IsolationPolicy;
use crate::model::baseline::is_managed;
use crate::report::kubectl::Refusal;
use crate::report::{Problem, Unjudgeable};

/// A change to a managed baseline policy by someone who may not make it;
/// `Err` when the old object, needed to tell, cannot be read.
fn baseline_edit(
    ctx: &Ctx,
    iso: &IsolationPolicy,
    req: &Request,
) -> Result<Option<Problem>, Unjudgeable> {
    if !matches!(req.operation(), Operation::Update | Operation::Delete)
        || !iso.baseline_names().contains(&req.name())
    {
        return Ok(None);
    }
    let old = req
        .old_object::<netv1::NetworkPolicy>()
        .map_err(|error| Unjudgeable::Unreadable { error })?;
    Ok(super::baseline_edit_problem(
        ctx,
        iso,
        req,
        req.object_key.clone(),
        is_managed(&old),
        || {
            req.object::<netv1::NetworkPolicy>()
                .is_ok_and(|o| is_managed(&o) && o.spec == old.spec)
        },
    ))
}

/// Judges a NetworkPolicy request.
pub fn review(ctx: &Ctx, state: &State, req: &Request) -> Outcome {
    let policy = ctx.policy();
    let iso = &*policy;
    let refusal = |delete, problems, breaches| Refusal {
        kind: "NetworkPolicy".into(),
        object: req.object_key.clone(),
        delete,
        problems,
        breaches,
        policy: iso.name.clone(),
    };
    let edit = match baseline_edit(ctx, iso, req) {
        Ok(e) => e,
        Err(why) => return Outcome::cannot(why),
    };
    if let Some(p) = edit {
        return Outcome::Refuse(refusal(
            *req.operation() == Operation::Delete,
            vec![p],
            Vec::new(),
        ));
    }
    let change = match req.operation() {
        Operation::Create | Operation::Update => {
            let np: netv1::NetworkPolicy = match req.object() {
                Ok(o) => o,
                Err(error) => return Outcome::cannot(Unjudgeable::Unreadable { error }),
            };
            let over = crate::model::limits::check(&np);
            if !over.is_empty() {
                return Outcome::cannot(Unjudgeable::OverLimit {
                    object: format!("NetworkPolicy {}", req.object_key),
                    errors: over.iter().map(ToString::to_string).collect(),
                });
            }
            match crate::model::networkpolicy::convert(&np, req.namespace()) {
                Ok(p) => Change::ApplyPolicy(Arc::new(p)),
                Err(errs) => {
                    return Outcome::cannot(Unjudgeable::Invalid {
                        object: format!("NetworkPolicy {}", req.object_key),
                        errors: errs.iter().map(ToString::to_string).collect(),
                    });
                }
            }
        }
        Operation::Delete => Change::DeletePolicy {
            namespace: req.namespace().to_string(),
            name: req.name().to_string(),
        },
        // The webhook's rules do not ask for CONNECT; if they ever do, it
        // is not admitted unjudged.
        Operation::Connect => {
            return Outcome::cannot(Unjudgeable::Operation {
                kind: "NetworkPolicy".into(),
                operation: req.operation_name().into(),
            });
        }
    };
    let delete = matches!(change, Change::DeletePolicy { .. });
    match check_change(iso, state, &change) {
        Ok(breaches) => verdict(refusal(delete, Vec::new(), breaches)),
        Err(e) => Outcome::cannot(Unjudgeable::Exhausted(e)),
    }
}
