//! The judged isolation policy: tiers, the flows allowed into, out of and
//! between them, who may change membership, and the baseline every tier
//! namespace gets.
//!
//! ```text
//!  IsolationPolicy ─ tiers[i] ─ namespaces by name, or the tier label = name
//!        ├─ flows ─ from: FlowEnd ─ to: FlowEnd ─ ports      (allowed; all else forbidden)
//!        ├─ membership ─ users, groups                       (may change the tier label)
//!        └─ baseline ─ default-deny, DNS                     (injected into tier namespaces)
//!  Party ─ what a connection's end is, as far as the flows can tell
//! ```
//!
//! A connection into, out of or between tier namespaces is allowed iff some
//! flow (declared, or implied by the baseline's DNS setting) covers it;
//! connections between two non-tier namespaces are not governed. The model
//! layer (`model::isolationpolicy`) reads the `IsolationPolicy` document into
//! this value.

use std::collections::BTreeSet;
use std::fmt;

use super::ipblock::{Cidr, IpSet};
use super::ports::PortSet;
use super::selector::Labels;

/// What the webhook does with a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse the request.
    Enforce,
    /// Admit it, with a warning, an audit annotation, a log line and a metric.
    Audit,
}

/// How the isolation check judges a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Judge {
    /// Each wall (a tier namespace's ingress, its egress) stands alone.
    Walls,
    /// Only end-to-end connectivity counts: both ends must allow a flow.
    Effective,
}

/// A tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    /// Its name (the tier label's value that places a namespace in it).
    pub name: String,
    /// Namespaces in it by name.
    pub namespaces: BTreeSet<String>,
}

/// Who may change tier membership.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Membership {
    /// Groups (`system:masters`).
    pub groups: BTreeSet<String>,
    /// User names (`system:serviceaccount:tierguard:tierguard` for a
    /// service account).
    pub users: BTreeSet<String>,
}

/// Where the baseline's DNS egress goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dns {
    /// No DNS policy.
    None,
    /// The cluster DNS pods only.
    ClusterDns {
        /// Their namespace.
        namespace: String,
        /// Their labels, as a `podSelector.matchLabels`.
        pod_labels: Labels,
    },
    /// Any destination on port 53, as the tutorial's policy does.
    Anywhere,
}

/// The NetworkPolicies injected into every tier namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baseline {
    /// Inject a default-deny for Ingress and Egress.
    pub default_deny: bool,
    /// Name of the default-deny policy.
    pub default_deny_name: String,
    /// DNS egress.
    pub dns: Dns,
    /// Name of the DNS policy.
    pub dns_name: String,
    /// Whether an Admin-tier ClusterNetworkPolicy baseline is kept too.
    pub via: Via,
}

/// How the baseline is delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// NetworkPolicies in every tier namespace only (the default).
    NetworkPolicy,
    /// The NetworkPolicies, and Admin-tier ClusterNetworkPolicies that pass
    /// the allowed flows to the NetworkPolicy tier and deny every other flow
    /// of tier pods that a ClusterNetworkPolicy can name (all egress;
    /// ingress from pods), so no NetworkPolicy can open one.
    ClusterNetworkPolicy {
        /// The priority of the policies that pass flows named by namespace;
        /// the tier policies have the next one.
        priority: i32,
        /// The policies, in the engine's form (`model::clusterbaseline`
        /// writes them as objects).
        policies: Vec<std::sync::Arc<super::cluster::ClusterPolicy>>,
    },
}

/// One end of a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowEnd {
    /// `tier:NAME`: namespaces of one tier (an index into `tiers`).
    Tier(usize),
    /// `tier:*`: namespaces of every tier.
    AnyTier,
    /// `namespace:NAME`: one namespace by name.
    Namespace(String),
    /// `external`: hosts outside the cluster.
    External,
    /// `any`: everything.
    Any,
}

/// An allowed flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    /// Source.
    pub from: FlowEnd,
    /// Destination.
    pub to: FlowEnd,
    /// Ports (every port of every protocol when the manifest gives none).
    pub ports: PortSet,
    /// Where it is declared: `spec.flows[1]` or `spec.baseline.dns`.
    pub origin: String,
}

/// What a connection's end is, as far as the flows can tell.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// A namespace: its tier, and its name when flows name it.
    Namespace {
        /// The tier, as an index into `tiers`.
        tier: Option<usize>,
        /// The name, kept only when some flow names this namespace.
        named: Option<String>,
    },
    /// A host outside the cluster.
    External,
}

/// A loaded, validated isolation policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsolationPolicy {
    /// `metadata.name`.
    pub name: String,
    /// enforce or audit.
    pub mode: Mode,
    /// walls or effective.
    pub judge: Judge,
    /// The label whose value places a namespace in the tier of that name.
    pub tier_label: String,
    /// The tiers.
    pub tiers: Vec<Tier>,
    /// Who may change tier membership.
    pub membership: Membership,
    /// Pod CIDRs (empty: unknown, so any address may be a pod's).
    pub pod_cidrs: Vec<Cidr>,
    /// Service CIDRs.
    pub service_cidrs: Vec<Cidr>,
    /// Node addresses (`query --policy` reads an IP inside them as a node; the isolation check counts nodes with the hosts that are not
    /// pods, as it always has, since a node's address is also its
    /// hostNetwork pods').
    pub node_cidrs: Vec<Cidr>,
    /// The injected baseline.
    pub baseline: Baseline,
    /// Allowed flows, declared and implied.
    pub flows: Vec<Flow>,
}

/// Why a namespace's tier cannot be decided.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TierConflict {
    /// The tier its name places it in.
    pub by_name: String,
    /// The tier its label places it in.
    pub by_label: String,
}

impl fmt::Display for TierConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "its name places it in tier {} but its label places it in tier {}",
            self.by_name, self.by_label
        )
    }
}

// === impl IsolationPolicy ===

impl IsolationPolicy {
    /// The tier a namespace belongs to, from its name and its tier label.
    pub fn tier_of(
        &self,
        name: &str,
        tier_label: Option<&str>,
    ) -> Result<Option<usize>, TierConflict> {
        let by_name = self.tier_by_name(name);
        let by_label = tier_label.and_then(|v| self.tier_index(v));
        match (by_name, by_label) {
            (Some(a), Some(b)) if a != b => Err(TierConflict {
                by_name: self.tiers[a].name.clone(),
                by_label: self.tiers[b].name.clone(),
            }),
            (a, b) => Ok(a.or(b)),
        }
    }

    /// The tier a namespace with these labels is in. When its name and its
    /// tier label disagree the name wins (the conflict is reported apart).
    pub fn tier_of_namespace(&self, name: &str, labels: &Labels) -> Option<usize> {
        let label = labels.get(&self.tier_label).map(String::as_str);
        self.tier_of(name, label)
            .unwrap_or_else(|_| self.tier_by_name(name))
    }

    /// The tier a namespace is in by its tier label alone, a join a user
    /// made: `None` when its name places it in a tier (the policy's own
    /// decision, whatever its label says) or its label names no tier.
    pub fn tier_by_label(&self, name: &str, labels: &Labels) -> Option<usize> {
        if self.tier_by_name(name).is_some() {
            return None;
        }
        self.tier_of_namespace(name, labels)
    }

    /// The tier whose `namespaces` list this namespace by name.
    pub fn tier_by_name(&self, namespace: &str) -> Option<usize> {
        self.tiers
            .iter()
            .position(|t| t.namespaces.contains(namespace))
    }

    /// The index of a tier by name.
    pub fn tier_index(&self, name: &str) -> Option<usize> {
        self.tiers.iter().position(|t| t.name == name)
    }

    /// True when some flow names this namespace.
    pub fn is_named(&self, namespace: &str) -> bool {
        self.flows.iter().any(|f| {
            matches!(&f.from, FlowEnd::Namespace(n) if n == namespace)
                || matches!(&f.to, FlowEnd::Namespace(n) if n == namespace)
        })
    }

    /// Namespaces named by tiers or flows: the ones whose name alone decides
    /// how the flows treat them.
    pub fn named_namespaces(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self
            .tiers
            .iter()
            .flat_map(|t| t.namespaces.iter().cloned())
            .collect();
        for f in &self.flows {
            for end in [&f.from, &f.to] {
                if let FlowEnd::Namespace(n) = end {
                    out.insert(n.clone());
                }
            }
        }
        out
    }

    /// The party a namespace is, given its tier.
    pub fn party(&self, name: Option<&str>, tier: Option<usize>) -> Party {
        Party::Namespace {
            tier,
            named: name.filter(|n| self.is_named(n)).map(str::to_string),
        }
    }

    /// The ports the flows allow from `src` to `dst`.
    pub fn allowed(&self, src: &Party, dst: &Party) -> PortSet {
        self.flows
            .iter()
            .filter(|f| end_matches(&f.from, src) && end_matches(&f.to, dst))
            .fold(PortSet::none(), |acc, f| acc.union(&f.ports))
    }

    /// The ports allowed between a wall's own party `me` and `other`, in
    /// the direction of the wall (`other` → `me` for ingress).
    pub fn allowed_across(
        &self,
        me: &Party,
        other: &Party,
        dir: super::policy::Direction,
    ) -> PortSet {
        match dir {
            super::policy::Direction::Ingress => self.allowed(other, me),
            super::policy::Direction::Egress => self.allowed(me, other),
        }
    }

    /// True when the party is governed: a tier namespace.
    pub fn is_tier(p: &Party) -> bool {
        matches!(p, Party::Namespace { tier: Some(_), .. })
    }

    /// The addresses that may belong to pods (pod and service CIDRs), or
    /// `None` when none are declared and any address may.
    pub fn cluster_addresses(&self) -> Option<IpSet> {
        if self.pod_cidrs.is_empty() {
            return None;
        }
        Some(IpSet::from_cidrs(
            self.pod_cidrs.iter().chain(&self.service_cidrs),
        ))
    }

    /// The names of the policies the baseline injects.
    pub fn baseline_names(&self) -> Vec<&str> {
        let mut v = Vec::new();
        if self.baseline.default_deny {
            v.push(self.baseline.default_deny_name.as_str());
        }
        if self.baseline.dns != Dns::None {
            v.push(self.baseline.dns_name.as_str());
        }
        v
    }

    /// The ClusterNetworkPolicies of the baseline (none unless `via:
    /// clusterNetworkPolicy`).
    pub fn cluster_baseline(&self) -> &[std::sync::Arc<super::cluster::ClusterPolicy>] {
        match &self.baseline.via {
            Via::NetworkPolicy => &[],
            Via::ClusterNetworkPolicy { policies, .. } => policies,
        }
    }
}

fn end_matches(end: &FlowEnd, p: &Party) -> bool {
    match (end, p) {
        (FlowEnd::Any, _) => true,
        (FlowEnd::External, Party::External) => true,
        (FlowEnd::Tier(t), Party::Namespace { tier: Some(pt), .. }) => t == pt,
        (FlowEnd::AnyTier, Party::Namespace { tier: Some(_), .. }) => true,
        (
            FlowEnd::Namespace(n),
            Party::Namespace {
                named: Some(pn), ..
            },
        ) => n == pn,
        _ => false,
    }
}
