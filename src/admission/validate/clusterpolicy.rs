//! ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy
//! CREATE, UPDATE and DELETE: valid, and opening no forbidden flow in any
//! tier namespace (a cluster policy may select every namespace, so every
//! wall is judged, tier by tier), and leaving the baseline tierguard keeps
//! (`via: clusterNetworkPolicy`) to the guard.

use std::sync::Arc;

use kube::core::admission::Operation;

use super::verdict;
use crate::admission::context::Ctx;
use crate::admission::outcome::Outcome;
use crate::admission::request::Request;
use crate::engine::cluster::Api;
use crate::engine::isolation::{Change, check_change};
use crate::engine::state::State;
use crate::engine::tiers::IsolationPolicy;
use crate::model::clusterbaseline::is_managed;
use crate::report::kubectl::Refusal;
use crate::report::{Problem, Unjudgeable};

/// A change to a baseline ClusterNetworkPolicy tierguard keeps by someone
/// who may not make it; `Err` when the old object cannot be read.
fn baseline_edit(
    ctx: &Ctx,
    iso: &IsolationPolicy,
    req: &Request,
    api: Api,
) -> Result<Option<Problem>, Unjudgeable> {
    if !matches!(req.operation(), Operation::Update | Operation::Delete)
        || !iso
            .cluster_baseline()
            .iter()
            .any(|c| c.api == api && c.name == req.name())
    {
        return Ok(None);
    }
    let old: serde_json::Value = req
        .old_object()
        .map_err(|error| Unjudgeable::Unreadable { error })?;
    Ok(super::baseline_edit_problem(
        ctx,
        iso,
        req,
        format!("{} {}", api.kind(), req.name()),
        is_managed(&old),
        || {
            req.object::<serde_json::Value>()
                .is_ok_and(|o| is_managed(&o) && o.get("spec") == old.get("spec"))
        },
    ))
}

/// Judges a request for a cluster policy of `api`.
pub fn review(ctx: &Ctx, state: &State, req: &Request, api: Api) -> Outcome {
    let policy = ctx.policy();
    let iso = &*policy;
    let object = format!("{} {}", api.kind(), req.name());
    match baseline_edit(ctx, iso, req, api) {
        Err(why) => return Outcome::cannot(why),
        Ok(Some(p)) => {
            return Outcome::Refuse(Refusal {
                kind: api.kind().into(),
                object: req.object_key.clone(),
                delete: *req.operation() == Operation::Delete,
                problems: vec![p],
                breaches: Vec::new(),
                policy: iso.name.clone(),
            });
        }
        Ok(None) => {}
    }
    let change = match req.operation() {
        Operation::Create | Operation::Update => {
            let obj: serde_json::Value = match req.object() {
                Ok(o) => o,
                Err(error) => return Outcome::cannot(Unjudgeable::Unreadable { error }),
            };
            match crate::model::clusterpolicy::convert(api, &obj) {
                Ok(p) => Change::ApplyClusterPolicy(Arc::new(p)),
                Err(errs) => {
                    return Outcome::cannot(Unjudgeable::Invalid {
                        object,
                        errors: errs.iter().map(ToString::to_string).collect(),
                    });
                }
            }
        }
        Operation::Delete => Change::DeleteClusterPolicy {
            api,
            name: req.name().to_string(),
        },
        Operation::Connect => {
            return Outcome::cannot(Unjudgeable::Operation {
                kind: api.kind().into(),
                operation: req.operation_name().into(),
            });
        }
    };
    let delete = matches!(change, Change::DeleteClusterPolicy { .. });
    match check_change(iso, state, &change) {
        Ok(breaches) => verdict(Refusal {
            kind: api.kind().into(),
            object: req.object_key.clone(),
            delete,
            problems: Vec::new(),
            breaches,
            policy: iso.name.clone(),
        }),
        Err(e) => Outcome::cannot(Unjudgeable::Exhausted(e)),
    }
}
