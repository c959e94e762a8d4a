//! The only place that writes text about judgements. The engine and the
//! webhook produce values ([`Breach`], [`NamespaceProblem`], [`Problem`],
//! [`Unjudgeable`]); this module renders them for each audience.
//!
//! ```text
//!  Breach, NamespaceProblem ─┬─► by_cause ─► check::text / check::json   (`tierguard check`)
//!  Problem, Unjudgeable      └─► kubectl::message / warnings / annotations (the webhook)
//!  End ─► metric_class  (bounded label values: tier:NAME, namespace:NAME, other, external)
//! ```
//!
//! Findings are grouped by cause: one entry per opening rule (or per
//! unisolated wall), listing the forbidden flows it opens, so a rule that
//! opens DNS to every destination is one entry, not one per destination.

pub mod check;
pub mod kubectl;
pub mod matrix;
pub mod openreports;

use std::collections::BTreeSet;

use crate::engine::isolation::{Breach, Cause, End, NamespaceProblem, Note};
use crate::engine::policy::Direction;
use crate::engine::ports::PortSet;
use crate::engine::state::{METADATA_NAME_LABEL, NAME_LABEL};

/// The longest line kubectl shows in full (warnings are cut beyond it).
pub const SUMMARY_MAX: usize = 256;

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A refusal reason that is not a flow, decided by the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A namespace's protected labels are wrong.
    Namespace(NamespaceProblem),
    /// A user outside `spec.membership` changes a namespace's tier label.
    Membership {
        /// The namespace.
        namespace: String,
        /// The tier label.
        tier_label: String,
        /// Its value before (`None`: absent).
        from: Option<String>,
        /// Its value after.
        to: Option<String>,
        /// The user.
        user: String,
        /// The isolation policy's name.
        policy: String,
    },
    /// A namespace's tier stamp (`tierguard.io/admitted-tier`) is not the
    /// tier its label places it in: the request bypassed tierguard's
    /// mutating webhook, which keeps the two equal.
    AdmittedTier {
        /// The namespace.
        namespace: String,
        /// The stamp (`None`: absent).
        stamp: Option<String>,
        /// The tier its label places it in (`None`: none).
        tier: Option<String>,
    },
    /// A user who is no baseline editor changes or deletes a baseline policy.
    BaselineEdit {
        /// `namespace/name`.
        object: String,
        /// True for a delete.
        delete: bool,
        /// The user.
        user: String,
        /// The isolation policy's name.
        policy: String,
    },
}

/// Why a request cannot be judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unjudgeable {
    /// The index has not synced yet, or a watch lists again after it
    /// missed events.
    NotSynced,
    /// A watch has been failing for longer than `--index-stale-after`: the
    /// index may be out of date.
    Stale {
        /// The kind whose watch fails.
        kind: String,
        /// For how many seconds.
        secs: u64,
    },
    /// Stored policies of the namespace cannot be read by tierguard, so it
    /// does not know what the namespace's pods may reach.
    UnreadablePolicies {
        /// The namespace.
        namespace: String,
        /// Their names (at most a few).
        policies: Vec<String>,
        /// How many there are.
        count: usize,
        /// Why the first cannot be read.
        error: String,
    },
    /// Stored cluster policies (ClusterNetworkPolicy, AdminNetworkPolicy,
    /// BaselineAdminNetworkPolicy) cannot be read by tierguard; each may
    /// select any namespace, so no change they could affect is judged.
    UnreadableClusterPolicies {
        /// `Kind name` of each (at most a few).
        policies: Vec<String>,
        /// How many there are.
        count: usize,
        /// Why the first cannot be read.
        error: String,
    },
    /// A cluster policy kind tierguard does not watch (yet): discovery has
    /// not found it served at a version tierguard reads, or its list is
    /// not in.
    KindNotWatched {
        /// The kind.
        kind: String,
    },
    /// The request's object (or old object) is missing or unreadable.
    Unreadable {
        /// What was read and why it failed.
        error: String,
    },
    /// The namespace has no name.
    Nameless,
    /// The object fails validation.
    Invalid {
        /// `Kind namespace/name`.
        object: String,
        /// Each error with its field path.
        errors: Vec<String>,
    },
    /// The object is larger than tierguard judges.
    OverLimit {
        /// `Kind namespace/name`.
        object: String,
        /// Each limit exceeded, with its field path.
        errors: Vec<String>,
    },
    /// A kind the webhook does not judge.
    Kind {
        /// Its group.
        group: String,
        /// Its kind.
        kind: String,
    },
    /// An operation the webhook does not expect for this kind.
    Operation {
        /// The kind.
        kind: String,
        /// The operation.
        operation: String,
    },
    /// The judgement did not finish within its budget.
    Overran {
        /// The budget in milliseconds.
        budget_ms: u128,
    },
    /// The judgement failed (an engine bug, caught).
    Failed {
        /// What failed.
        error: String,
    },
    /// Too many judgements are already running.
    Busy,
    /// The request did not complete within the deadline.
    Deadline {
        /// The deadline in milliseconds.
        ms: u128,
    },
    /// The request's body is over the limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Deciding the selector questions took more than the judgement's budget.
    Exhausted(crate::engine::selector::Exhausted),
    /// The namespace of a pod or NetworkPolicy is not in the index yet: it
    /// was just created, and its watch event has not arrived.
    NamespaceUnknown {
        /// The namespace.
        namespace: String,
    },
    /// A Calico policy that may apply to tier namespaces' pods (or host
    /// endpoints) with rules that can let traffic through: tierguard does
    /// not judge Calico's rules yet.
    CalicoPolicy(crate::engine::calico::Unjudged),
    /// A tier namespace's baseline is not in place yet.
    BaselineMissing {
        /// The namespace.
        namespace: String,
        /// The missing policies.
        missing: Vec<String>,
    },
}

/// " and N more" when `count` exceeds the `shown`, else nothing.
fn and_more(count: usize, shown: usize) -> String {
    match count.saturating_sub(shown) {
        0 => String::new(),
        more => format!(" and {more} more"),
    }
}

impl std::fmt::Display for Unjudgeable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unjudgeable::NotSynced => f.write_str(
                "tierguard has not synced namespaces and network policies (it is starting, or a watch \
                 missed events and lists again); retry in a few seconds",
            ),
            Unjudgeable::Stale { kind, secs } => write!(
                f,
                "tierguard's {kind} watch has been failing for {secs} s, so its view of the cluster \
                 may be out of date; it judges again once the watch recovers (check its logs and its \
                 access to the API server)"
            ),
            Unjudgeable::UnreadablePolicies {
                namespace,
                policies,
                count,
                error,
            } => {
                let more = and_more(*count, policies.len());
                write!(
                    f,
                    "namespace {namespace} holds NetworkPolicies tierguard cannot read ({}{more}; \
                     first: {error}), so it cannot tell what the namespace's pods may reach; fix or \
                     delete them (changes to those policies themselves are judged)",
                    policies.join(", ")
                )
            }
            Unjudgeable::UnreadableClusterPolicies {
                policies,
                count,
                error,
            } => {
                let more = and_more(*count, policies.len());
                write!(
                    f,
                    "the cluster holds cluster policies tierguard cannot read ({}{more}; first: \
                     {error}); each may select any namespace, so it cannot tell what tier pods may \
                     reach; fix or delete them (changes to those policies themselves are judged)",
                    policies.join(", ")
                )
            }
            Unjudgeable::KindNotWatched { kind } => write!(
                f,
                "tierguard does not watch {kind} yet: its CRD was just installed (found at the next \
                 discovery), or it serves no version tierguard reads (ClusterNetworkPolicy \
                 v1beta1 or v1alpha2, AdminNetworkPolicy and BaselineAdminNetworkPolicy \
                 v1alpha1); retry in a few seconds"
            ),
            Unjudgeable::Unreadable { error } => f.write_str(error),
            Unjudgeable::Nameless => f.write_str("the namespace has no metadata.name"),
            Unjudgeable::Invalid { object, errors } => {
                write!(f, "{object} is invalid: {}", errors.join("; "))
            }
            Unjudgeable::OverLimit { object, errors } => {
                write!(f, "{object} exceeds tierguard's limits: {}", errors.join("; "))
            }
            Unjudgeable::Kind { group, kind } => write!(
                f,
                "tierguard judges Namespaces, NetworkPolicies, Pods and {}'s cluster policies, not \
                 {group}/{kind}; check the webhook's rules",
                crate::model::clusterpolicy::GROUP
            ),
            Unjudgeable::Operation { kind, operation } => write!(
                f,
                "tierguard does not judge {operation} on {kind}; check the webhook's rules"
            ),
            Unjudgeable::Overran { budget_ms } => write!(
                f,
                "the judgement did not finish within {budget_ms} ms; retry, and report it if it persists"
            ),
            Unjudgeable::Failed { error } => write!(f, "the judgement failed: {error}"),
            Unjudgeable::Exhausted(e) => write!(
                f,
                "{e}: simplify the podSelectors of the namespace's policies (fewer distinct label keys \
                 across them) or keep its default-deny in place; see docs/limits.md"
            ),
            Unjudgeable::Deadline { ms } => {
                write!(f, "the request did not complete within {ms} ms")
            }
            Unjudgeable::TooLarge { limit } => write!(f, "the request body is over {limit} bytes"),
            Unjudgeable::Busy => f.write_str(
                "tierguard is judging as many requests as it may at once; retry in a moment",
            ),
            Unjudgeable::NamespaceUnknown { namespace } => write!(
                f,
                "namespace {namespace} is not in tierguard's index yet (it was just created), so \
                 tierguard cannot tell which tier it is in; retry in a few seconds"
            ),
            Unjudgeable::CalicoPolicy(u) => {
                let crate::engine::calico::Unjudged { object, rules, .. } = u;
                let applies = u.applies_to();
                write!(
                    f,
                    "tierguard does not judge Calico policies' rules yet (docs/calico.md), and {object} \
                     may apply to {applies} with rules that can let traffic through ({}); it is \
                     refused rather than admitted unjudged. Narrow spec.selector or \
                     spec.namespaceSelector to namespaces outside the tiers, or write the rule as \
                     a Kubernetes NetworkPolicy, which tierguard judges",
                    rules.join(", ")
                )
            }
            Unjudgeable::BaselineMissing { namespace, missing } => write!(
                f,
                "namespace {namespace} is a tier namespace whose baseline ({}) is not in place yet; \
                 tierguard admits pods once it is, so nothing runs unisolated. Retry in a few seconds",
                missing.join(", ")
            ),
        }
    }
}

/// One end of a flow, for people: `tier database`, `tier payments
/// (namespace billing)`, `namespace kube-system`, `any namespace outside the
/// tiers`, `outside the cluster`.
pub fn end(e: &End) -> String {
    match e {
        End::External => "outside the cluster".into(),
        End::Tier {
            tier,
            namespace: Some(n),
        } if n != tier => format!("tier {tier} (namespace {n})"),
        End::Tier { tier, .. } => format!("tier {tier}"),
        End::Namespace { name } => format!("namespace {name}"),
        End::OtherNamespaces { examples } if examples.is_empty() => {
            "any namespace outside the tiers".into()
        }
        End::OtherNamespaces { examples } => {
            format!("namespace {} (not in a tier)", examples.join(", "))
        }
    }
}

/// A bounded metric label for an end: `tier:NAME`, `namespace:NAME` (named
/// by the isolation policy), `other` or `external`.
pub fn metric_class(e: &End) -> String {
    match e {
        End::External => "external".into(),
        End::Tier { tier, .. } => format!("tier:{tier}"),
        End::Namespace { name } => format!("namespace:{name}"),
        End::OtherNamespaces { .. } => "other".into(),
    }
}

/// `from -> to on ports`.
pub fn flow(from: &End, to: &End, ports: &PortSet) -> String {
    format!("{} -> {} on {ports}", end(from), end(to))
}

/// What opens a flow, for people.
pub fn cause(c: &Cause) -> String {
    match c {
        Cause::Rule {
            rule,
            peer: Some(p),
        } => format!("{rule} ({p})"),
        Cause::Rule { rule, peer: None } => format!("{rule} (no from/to: every peer)"),
        Cause::ClusterRule { rule, peer } => format!("{rule} ({peer})"),
        Cause::Unisolated { pods } => {
            format!("no policy isolates pods with {pods} (is the baseline default-deny missing?)")
        }
    }
}

/// A note, for people.
pub fn note(n: &Note) -> String {
    match n {
        Note::EqualPriority {
            policy,
            priority,
            others,
        } => format!(
            "{policy} (priority {priority}) is not ordered against {} by the APIs (the same \
             priority, or ClusterNetworkPolicy against AdminNetworkPolicy or \
             BaselineAdminNetworkPolicy): the network plugin picks, so tierguard judges every order",
            others.join(", ")
        ),
        Note::UnprotectedNamespaceLabels {
            selector,
            keys,
            tier_label,
        } => format!(
            "namespaceSelector {selector} uses label(s) {} that anyone who can edit a namespace can set, \
             so it may match any namespace; select by {METADATA_NAME_LABEL} or {tier_label}",
            keys.join(", ")
        ),
        Note::IpBlockMatchesPods {
            block,
            cluster_declared: true,
        } => format!("{block} overlaps the cluster's pod or service CIDRs, so it matches any pod"),
        Note::IpBlockMatchesPods {
            block,
            cluster_declared: false,
        } => format!(
            "{block} may match any pod: the isolation policy declares no cluster CIDRs (spec.cluster.podCIDRs)"
        ),
    }
}

/// A namespace problem, for people.
pub fn namespace_problem(p: &NamespaceProblem) -> String {
    match p {
        NamespaceProblem::NameLabelLies { namespace, value } => format!(
            "namespace {namespace} is labelled {NAME_LABEL}={value}: selectors for {value} match it; \
             the {NAME_LABEL} label must equal the namespace's name"
        ),
        NamespaceProblem::TierConflict {
            namespace,
            conflict,
        } => format!(
            "namespace {namespace}: its name places it in tier {} but its label places it in tier {}",
            conflict.by_name, conflict.by_label
        ),
    }
}

/// The flows one cause opens through one wall.
#[derive(Clone, Debug)]
pub struct Group<'a> {
    /// The tier namespace whose wall is breached.
    pub namespace: &'a str,
    /// Its tier.
    pub tier: &'a str,
    /// The wall.
    pub wall: Direction,
    /// What opens the flows.
    pub cause: &'a Cause,
    /// Each flow with the ports this cause opens on it.
    pub flows: Vec<(&'a Breach, PortSet)>,
    /// What a person should know.
    pub notes: BTreeSet<&'a Note>,
}

/// Groups breaches by their wall and cause, in order of first appearance.
/// A flow opened by two causes appears under both, each with its ports.
pub fn by_cause(breaches: &[Breach]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for b in breaches {
        for (c, ports) in &b.causes {
            let at = groups
                .iter()
                .position(|g| g.namespace == b.namespace && g.wall == b.wall && g.cause == c);
            let g = match at {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(Group {
                        namespace: &b.namespace,
                        tier: &b.tier,
                        wall: b.wall,
                        cause: c,
                        flows: Vec::new(),
                        notes: BTreeSet::new(),
                    });
                    let last = groups.len() - 1;
                    &mut groups[last]
                }
            };
            g.flows.push((b, ports.clone()));
            g.notes.extend(b.notes.iter());
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::policy::RuleRef;
    use crate::engine::ports::Protocol;
    use crate::engine::tiers::Party;

    fn breach(to: &str, rule: usize, ports: PortSet) -> Breach {
        let cause = Cause::Rule {
            rule: RuleRef {
                namespace: "frontend".into(),
                policy: "dns".into(),
                direction: Direction::Egress,
                index: rule,
            },
            peer: None,
        };
        Breach {
            namespace: "frontend".into(),
            tier: "frontend".into(),
            wall: Direction::Egress,
            from: End::Tier {
                tier: "frontend".into(),
                namespace: Some("frontend".into()),
            },
            to: End::Tier {
                tier: to.into(),
                namespace: None,
            },
            ports: ports.clone(),
            causes: vec![(cause, ports)],
            notes: Vec::new(),
            other: Party::External,
        }
    }

    #[test]
    fn flows_of_one_rule_are_one_entry() {
        let udp = PortSet::single(Protocol::Udp, 53);
        let tcp = PortSet::single(Protocol::Tcp, 53);
        let b = [
            breach("backend", 0, udp.clone()),
            breach("database", 0, udp),
            breach("database", 1, tcp),
        ];
        let g = by_cause(&b);
        assert_eq!(g.len(), 2, "{g:?}");
        assert_eq!(g[0].flows.len(), 2);
        assert_eq!(g[1].flows.len(), 1);
        assert_eq!(
            cause(g[1].cause),
            "frontend/dns egress[1] (no from/to: every peer)"
        );
    }

    #[test]
    fn ends_read_as_people_say_them() {
        let t = |tier: &str, ns: Option<&str>| End::Tier {
            tier: tier.into(),
            namespace: ns.map(str::to_string),
        };
        assert_eq!(end(&t("db", Some("db"))), "tier db");
        assert_eq!(
            end(&t("db", Some("billing"))),
            "tier db (namespace billing)"
        );
        assert_eq!(end(&t("db", None)), "tier db");
        assert_eq!(
            end(&End::OtherNamespaces { examples: vec![] }),
            "any namespace outside the tiers"
        );
        assert_eq!(
            end(&End::OtherNamespaces {
                examples: vec!["a".into(), "b".into()]
            }),
            "namespace a, b (not in a tier)"
        );
        assert_eq!(metric_class(&t("db", Some("billing"))), "tier:db");
    }

    #[test]
    fn clip_cuts_on_a_character_boundary() {
        assert_eq!(clip("abc", 10), "abc");
        let cut = clip("ééééé", 6);
        assert!(cut.len() <= 6 && cut.ends_with('…'), "{cut}");
    }
}
