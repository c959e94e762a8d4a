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
use crate::engine::state::{ADMITTED_TIER_ANNOTATION, NAME_LABEL};

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

    /// One line per problem, then the flows by cause (each ≤ 256 bytes).
    pub fn lines(&self) -> Vec<String> {
        self.entries().into_iter().map(|(_, l)| l).collect()
    }

    /// The lines, each marked when it belongs under the line before (a
    /// flow under the cause that opens several).
    fn entries(&self) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = self
            .problems
            .iter()
            .map(|p| (false, clip(&problem_line(p), SUMMARY_MAX)))
            .collect();
        for g in by_cause(&self.breaches) {
            out.extend(cause_lines(&g));
        }
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
        let body: Vec<String> = self
            .entries()
            .iter()
            .map(|(nested, l)| {
                if *nested {
                    format!("      {l}")
                } else {
                    format!("  - {l}")
                }
            })
            .collect();
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

/// The lines for one cause: one when it opens one flow; else a line naming
/// the cause, then one per flow.
fn cause_lines(g: &Group<'_>) -> Vec<(bool, String)> {
    let flows: Vec<String> = g
        .flows
        .iter()
        .map(|(b, ports)| flow(&b.from, &b.to, ports))
        .collect();
    if let [one] = flows.as_slice() {
        let line = format!(
            "{one} is forbidden, but {}'s {} allows it via {}",
            g.namespace,
            g.wall,
            cause(g.cause)
        );
        return vec![(false, clip(&line, SUMMARY_MAX))];
    }
    let head = format!(
        "{}'s {} allows {} forbidden flows via {}:",
        g.namespace,
        g.wall,
        flows.len(),
        cause(g.cause)
    );
    let mut out = vec![(false, clip(&head, SUMMARY_MAX))];
    out.extend(
        flows
            .iter()
            .map(|f| (true, clip(&format!("{f} is forbidden"), SUMMARY_MAX))),
    );
    out
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
        Problem::AdmittedTier {
            namespace,
            stamp,
            tier,
        } => format!(
            "namespace {namespace}: annotation {ADMITTED_TIER_ANNOTATION}={} does not match the tier its label places it in ({}); \
             tierguard's mutating webhook keeps the two equal, and this request bypassed it",
            stamp.as_deref().unwrap_or("<absent>"),
            tier.as_deref().unwrap_or("none"),
        ),
        Problem::BaselineEdit {
            object,
            delete,
            user,
            ..
        } => format!(
            "{} {object} is refused: it is part of the baseline tierguard keeps for the tier namespaces (user {user} may not change it)",
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
        Problem::AdmittedTier { .. } => format!(
            "Leave the {ADMITTED_TIER_ANNOTATION} annotation to tierguard (its mutating webhook sets it to the namespace's label-made tier)."
        ),
        Problem::BaselineEdit { .. } => format!(
            "Change the baseline in the isolation policy {policy} (spec.baseline); tierguard applies it to every tier namespace."
        ),
    }
}

/// The message for a request tierguard cannot judge.
pub fn cannot_judge(kind: &str, object: &str, why: &Unjudgeable) -> String {
    format!("tierguard cannot judge {kind} {object}: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::isolation::{Cause, End};
    use crate::engine::policy::{Direction, RuleRef};
    use crate::engine::ports::PortSet;
    use crate::engine::tiers::Party;

    fn breach(from: End) -> Breach {
        let cause = Cause::Rule {
            rule: RuleRef {
                namespace: "backend".into(),
                policy: "debug".into(),
                direction: Direction::Ingress,
                index: 0,
            },
            peer: None,
        };
        Breach {
            namespace: "backend".into(),
            tier: "backend".into(),
            wall: Direction::Ingress,
            from,
            to: End::Tier {
                tier: "backend".into(),
                namespace: Some("backend".into()),
            },
            ports: PortSet::all(),
            causes: vec![(cause, PortSet::all())],
            notes: Vec::new(),
            other: Party::External,
        }
    }

    fn refusal(breaches: Vec<Breach>) -> Refusal {
        Refusal {
            kind: "NetworkPolicy".into(),
            object: "backend/debug".into(),
            delete: false,
            problems: Vec::new(),
            breaches,
            policy: "three-tier".into(),
        }
    }

    #[test]
    fn one_flow_is_one_line_naming_flow_wall_and_rule() {
        let r = refusal(vec![breach(End::External)]);
        assert_eq!(
            r.lines(),
            [
                "outside the cluster -> tier backend on all ports is forbidden, but backend's ingress \
              allows it via backend/debug ingress[0] (no from/to: every peer)"
            ]
        );
        assert!(r.message().starts_with(
            "tierguard: NetworkPolicy backend/debug would open 1 forbidden flow:\n  - outside"
        ));
    }

    #[test]
    fn a_rule_opening_many_flows_is_one_entry_with_a_line_per_flow() {
        let many: Vec<Breach> = (0..40)
            .map(|i| {
                breach(End::OtherNamespaces {
                    examples: vec![format!("team-{i:02}-with-a-rather-long-namespace-name")],
                })
            })
            .collect();
        let r = refusal(many);
        let lines = r.lines();
        assert_eq!(lines.len(), 41);
        assert!(
            lines[0].starts_with(
                "backend's ingress allows 40 forbidden flows via backend/debug ingress[0]"
            ),
            "{}",
            lines[0]
        );
        assert!(lines.iter().all(|l| l.len() <= SUMMARY_MAX));
        assert!(
            r.message().contains("\n      namespace team-39-with"),
            "{}",
            r.message()
        );
        assert!(r.warnings().iter().all(|w| w.len() <= SUMMARY_MAX));
    }

    #[test]
    fn problems_come_first_with_their_advice() {
        let mut r = refusal(vec![breach(End::External)]);
        r.problems.push(Problem::BaselineEdit {
            object: "backend/tierguard-default-deny".into(),
            delete: true,
            user: "alice".into(),
            policy: "three-tier".into(),
        });
        assert_eq!(
            r.headline(),
            "NetworkPolicy backend/debug is tierguard's baseline"
        );
        assert!(r.lines()[0].starts_with("deleting backend/tierguard-default-deny is refused"));
        assert!(
            r.advice()
                .starts_with("Change the baseline in the isolation policy three-tier")
        );
    }
}
