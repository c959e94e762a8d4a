//! What the isolation check returns: values, not text. The `report` module
//! renders them for kubectl, `check`, logs and audit annotations.
//!
//! ```text
//!  Report ─ breaches: Breach ─ wall (namespace, tier, direction)
//!     │                  ├─ from: End ─ to: End ─ ports (the forbidden part)
//!     │                  ├─ causes: (Cause, ports)  ─ Rule { rule, peer } | Unisolated { pods }
//!     │                  └─ notes: Note             ─ why a peer matches more than it seems
//!     └─ namespaces: NamespaceProblem ─ a lying `name` label, a tier conflict
//! ```

use std::fmt;

use serde::{Serialize, Serializer};

use crate::engine::cluster::ClusterRuleRef;
use crate::engine::policy::{Direction, RuleRef};
use crate::engine::ports::PortSet;
use crate::engine::tiers::{Party, TierConflict};

/// Why a wall lets a forbidden connection through.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Cause {
    /// A rule matches it.
    Rule {
        /// The rule.
        #[serde(serialize_with = "display")]
        rule: RuleRef,
        /// The peer of the rule that matches (absent: the rule has none).
        peer: Option<String>,
    },
    /// A cluster-wide policy's rule decides it (an `Accept`).
    ClusterRule {
        /// The rule.
        #[serde(serialize_with = "display")]
        rule: ClusterRuleRef,
        /// The peer of the rule that matches.
        peer: String,
    },
    /// Some pods are selected by no policy of this direction.
    Unisolated {
        /// Labels such pods can have.
        pods: String,
    },
}

/// One end of a forbidden flow.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum End {
    /// A namespace of a tier.
    Tier {
        /// The tier.
        tier: String,
        /// The namespace, when one is known (always, for the wall's own end).
        namespace: Option<String>,
    },
    /// A namespace outside the tiers that the isolation policy names.
    Namespace {
        /// Its name.
        name: String,
    },
    /// Namespaces outside the tiers.
    OtherNamespaces {
        /// The existing ones it applies to; empty when namespaces not yet
        /// created are among them (then it is any namespace outside the tiers).
        examples: Vec<String>,
    },
    /// Hosts outside the cluster.
    External,
}

/// Something a person should know about why a peer matches what it does.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Note {
    /// A namespace selector on labels anyone who can edit a namespace can set.
    UnprotectedNamespaceLabels {
        /// The selector.
        selector: String,
        /// The unprotected keys it uses.
        keys: Vec<String>,
        /// The tier label (the protected alternative).
        tier_label: String,
    },
    /// An ipBlock that may match pods.
    IpBlockMatchesPods {
        /// The block.
        block: String,
        /// Whether the isolation policy declares the cluster's CIDRs (the block
        /// overlaps them) or not (any address may be a pod's).
        cluster_declared: bool,
    },
    /// Cluster-wide policies of one tier the APIs do not order (the same
    /// priority, or one ClusterNetworkPolicy and one of the older
    /// AdminNetworkPolicy/BaselineAdminNetworkPolicy): the implementation
    /// picks, so every order is judged.
    EqualPriority {
        /// The policy whose rule decides.
        policy: String,
        /// Its priority.
        priority: i32,
        /// The policies not ordered against it.
        others: Vec<String>,
    },
}

/// A forbidden flow that a wall lets through.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Breach {
    /// The tier namespace whose wall is breached.
    pub namespace: String,
    /// Its tier.
    pub tier: String,
    /// Which wall.
    #[serde(serialize_with = "display")]
    pub wall: Direction,
    /// The source.
    pub from: End,
    /// The destination.
    pub to: End,
    /// The forbidden ports it lets through.
    #[serde(serialize_with = "display")]
    pub ports: PortSet,
    /// What lets them through, each with the ports it contributes.
    #[serde(serialize_with = "causes")]
    pub causes: Vec<(Cause, PortSet)>,
    /// What a person should know about the causes.
    pub notes: Vec<Note>,
    /// The party at the other end of the wall.
    #[serde(skip)]
    pub other: Party,
}

impl Breach {
    /// The end across the wall from the tier namespace.
    pub fn other_end(&self) -> &End {
        match self.wall {
            Direction::Ingress => &self.from,
            Direction::Egress => &self.to,
        }
    }
}

/// A namespace whose protected labels are wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum NamespaceProblem {
    /// Its `name` label is not its name.
    NameLabelLies {
        /// The namespace.
        namespace: String,
        /// The value of its `name` label.
        value: String,
    },
    /// Its name and its tier label place it in different tiers.
    TierConflict {
        /// The namespace.
        namespace: String,
        /// The two tiers.
        #[serde(flatten)]
        conflict: TierConflict,
    },
}

impl NamespaceProblem {
    /// The namespace it is about.
    pub fn namespace(&self) -> &str {
        match self {
            NamespaceProblem::NameLabelLies { namespace, .. }
            | NamespaceProblem::TierConflict { namespace, .. } => namespace,
        }
    }
}

/// Everything wrong with a state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Forbidden flows allowed.
    pub flows: Vec<Breach>,
    /// Namespaces with lying or conflicting protected labels.
    pub namespaces: Vec<NamespaceProblem>,
}

impl Report {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.flows.is_empty() && self.namespaces.is_empty()
    }
}

fn display<T: fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn causes<S: Serializer>(v: &[(Cause, PortSet)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|(c, p)| (c, p.to_string())))
}
