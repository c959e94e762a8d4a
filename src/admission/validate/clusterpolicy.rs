//! ClusterNetworkPolicy, AdminNetworkPolicy and BaselineAdminNetworkPolicy
//! CREATE, UPDATE and DELETE: valid, and opening no forbidden flow in any
//! tier namespace (a cluster policy may select every namespace, so every
//! wall is judged, tier by tier).

use std::sync::Arc;

use kube::core::admission::Operation;

use super::verdict;
use crate::admission::context::Ctx;
use crate::admission::outcome::Outcome;
use crate::admission::request::Request;
use crate::engine::cluster::Api;
use crate::engine::isolation::{Change, check_change};
use crate::engine::state::State;
use crate::report::Unjudgeable;
use crate::report::kubectl::Refusal;

/// Judges a request for a cluster policy of `api`.
pub fn review(ctx: &Ctx, state: &State, req: &Request, api: Api) -> Outcome {
    let iso = &ctx.policy;
    let object = format!("{} {}", api.kind(), req.name());
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
