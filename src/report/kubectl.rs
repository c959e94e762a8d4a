//! What the webhook says: the message kubectl prints for a refusal, the
//! `Warning:` lines of audit mode, audit annotations and the bounded log
//! fields. Every line is at most [`SUMMARY_MAX`] bytes.
//!
//! ```text
//!  tierguard: NetworkPolicy database/oops would open 1 forbidden flow:      headline
//!    - tier frontend -> tier database on TCP/5432 is forbidden, but ...    one line per problem, then per cause
//!  Narrow the rule's peers or ports, or allow the flow in ...              advice
//! ```

use std::collections::HashMap;

use super::{Group, Problem, SUMMARY_MAX, Unjudgeable, by_cause, cause, clip, flow};
use crate::engine::isolation::{Breach, NamespaceProblem};
use crate::engine::state::NAME_LABEL;

/// A refused (or, in audit mode, warned) change, as values.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// The object's kind (`NetworkPolicy`, `Namespace`).
    pub kind: String,
    /// `namespace/name` or `name`.
    pub object: String,
    /// True when the change deletes the object.
    pub delete: bool,
    /// Reasons that are not flows.
    pub problems: Vec<Problem>,
    /// The forbidden flows the change opens.
    pub breaches: Vec<Breach>,
    /// The isolation policy's name.
    pub policy: String,
}

impl Refusal {
    /// The first line: what is refused and why, in a few words.
    pub fn headline(&self) -> String {
        if self
            .problems
            .iter()
            .any(|p| matches!(p, Problem::BaselineEdit { .. }))
        {
            return format!("{} {} is tierguard's baseline", self.kind, self.object);
        }
        if !self.problems.is_empty() {
            return format!("{} {} is refused", self.kind, self.object);
        }
        let n = self.breaches.len();
        format!(
            "{}{} {} would open {n} forbidden flow{}",
            if self.delete { "Deleting " } else { "" },
            self.kind,
            self.object,
            if n == 1 { "" } else { "s" }
        )
    }

    /// One line per problem, then one per cause (each ≤ 256 bytes).
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .problems
            .iter()
            .map(|p| clip(&problem_line(p), SUMMARY_MAX))
            .collect();
        out.extend(by_cause(&self.breaches).iter().map(cause_line));
        out
    }

    /// What to do about it.
    pub fn advice(&self) -> String {
        if self.problems.is_empty() {
            return format!(
                "Narrow the rule's peers or ports, or allow the flow in the isolation policy {} (spec.flows). \
                 `tierguard check` shows the full report.",
                self.policy
            );
        }
        let mut advice: Vec<String> = Vec::new();
        for p in &self.problems {
            let a = problem_advice(p, &self.policy);
            if !advice.contains(&a) {
                advice.push(a);
            }
        }
        advice.join(" ")
    }

    /// The whole refusal message.
    pub fn message(&self) -> String {
        let body: Vec<String> = self.lines().iter().map(|l| format!("  - {l}")).collect();
        format!(
            "tierguard: {}:\n{}\n{}",
            self.headline(),
            body.join("\n"),
            self.advice()
        )
    }

    /// Audit mode's `Warning:` lines.
    pub fn warnings(&self) -> Vec<String> {
        self.lines()
            .iter()
            .map(|l| clip(&format!("tierguard (audit): {l}"), SUMMARY_MAX))
            .collect()
    }

    /// Audit annotations: the verdict, the lines, and the flows as JSON.
    pub fn annotations(&self, verdict: &str) -> HashMap<String, String> {
        let mut a = HashMap::new();
        a.insert("verdict".to_string(), verdict.to_string());
        a.insert("problems".to_string(), self.lines().join("\n"));
        if let Ok(json) = serde_json::to_string(&self.breaches) {
            a.insert("flows".to_string(), json);
        }
        a
    }
}

/// One line for a cause: the flows it opens and the rule.
fn cause_line(g: &Group<'_>) -> String {
    let flows: Vec<String> = g
        .flows
        .iter()
        .map(|(b, ports)| flow(&b.from, &b.to, ports))
        .collect();
    let line = if flows.len() == 1 {
        format!(
            "{} is forbidden, but {}'s {} allows it via {}",
            flows[0],
            g.namespace,
            g.wall,
            cause(g.cause)
        )
    } else {
        format!(
            "{}'s {} allows {} forbidden flows via {}: {}",
            g.namespace,
            g.wall,
            flows.len(),
            cause(g.cause),
            flows.join("; ")
        )
    };
    clip(&line, SUMMARY_MAX)
}

/// One log line's worth for a flow: `from -> to on ports`, bounded.
pub fn flow_summary(b: &Breach) -> String {
    clip(&flow(&b.from, &b.to, &b.ports), SUMMARY_MAX)
}

fn problem_line(p: &Problem) -> String {
    match p {
        Problem::Namespace(NamespaceProblem::NameLabelLies { namespace, value }) => format!(
            "namespace {namespace}: label {NAME_LABEL}={value} must equal the namespace's name ({NAME_LABEL}={namespace}); \
             selectors written for {value} would match it"
        ),
        Problem::Namespace(NamespaceProblem::TierConflict {
            namespace,
            conflict,
        }) => format!(
            "namespace {namespace}: its name places it in tier {} but its label places it in tier {}",
            conflict.by_name, conflict.by_label
        ),
        Problem::Membership {
            namespace,
            tier_label,
            from,
            to,
            user,
            policy,
        } => format!(
            "namespace {namespace}: changing label {tier_label} ({} -> {}) changes tier membership, \
             which only spec.membership of {policy} may do (user {user} may not)",
            from.as_deref().unwrap_or("none"),
            to.as_deref().unwrap_or("none"),
        ),
        Problem::BaselineEdit {
            object,
            delete,
            user,
            ..
        } => format!(
            "{} {object} is refused: it is the baseline tierguard keeps in every tier namespace (user {user} may not change it)",
            if *delete { "deleting" } else { "changing" }
        ),
    }
}

fn problem_advice(p: &Problem, policy: &str) -> String {
    match p {
        Problem::Namespace(NamespaceProblem::NameLabelLies { .. }) => {
            format!("Leave the {NAME_LABEL} label to tierguard (it sets {NAME_LABEL}=<namespace>).")
        }
        Problem::Namespace(NamespaceProblem::TierConflict { .. }) => {
            "A namespace belongs to one tier: remove the conflicting tier label.".into()
        }
        Problem::Membership { .. } => {
            format!("Ask a user listed in spec.membership of {policy} to change tiers.")
        }
        Problem::BaselineEdit { .. } => format!(
            "Change the baseline in the isolation policy {policy} (spec.baseline); tierguard applies it to every tier namespace."
        ),
    }
}

/// The message for a request tierguard cannot judge.
pub fn cannot_judge(kind: &str, object: &str, why: &Unjudgeable) -> String {
    format!("tierguard cannot judge {kind} {object}: {why}")
}
