//! IsolationPolicy CREATE/UPDATE: tierguard's own configuration, validated
//! as `tierguard check` validates a file. An invalid one is refused in
//! every mode: audit mode admits changes to the cluster, never a policy
//! tierguard could not put in force.

use kube::core::admission::Operation;

use crate::admission::outcome::Outcome;
use crate::admission::request::Request;
use crate::model::isolationpolicy;
use crate::report::Unjudgeable;

/// Judges an IsolationPolicy request.
pub fn review(req: &Request) -> Outcome {
    if !matches!(req.operation(), Operation::Create | Operation::Update) {
        return Outcome::Admit;
    }
    let value = match req.object::<serde_json::Value>() {
        Ok(v) => v,
        Err(error) => return Outcome::cannot(Unjudgeable::Unreadable { error }),
    };
    match isolationpolicy::from_json(value) {
        Ok(_) => Outcome::Admit,
        Err(errors) => Outcome::Invalid(errors),
    }
}
