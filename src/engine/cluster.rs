//! Validated cluster-wide policies: sig-network's ClusterNetworkPolicy
//! (`policy.networking.k8s.io`), and the older AdminNetworkPolicy and
//! BaselineAdminNetworkPolicy, in one normalised form.
//!
//! ```text
//!  ClusterPolicy ─ tier: Admin | Baseline ─ priority (lower first)
//!    ├─ subject: Namespaces(sel) | Pods { namespaces, pods }   which pods it applies to
//!    ├─ ingress[i] ─ action: Accept | Deny | Pass ─ peers (any matches) ─ ports (None = all)
//!    └─ egress[i]  ─ same; peers may also be nodes and domain names
//! ```
//!
//! A connection's side (a pod's ingress or egress) is decided tier by tier:
//! the Admin tier's rules in order (policies by priority, then each
//! policy's rules in order); the first rule that matches decides: `Accept`
//! allows, `Deny` denies, `Pass` skips to the NetworkPolicy tier. There a pod
//! selected by a NetworkPolicy of the direction is decided by them (allowed
//! iff some rule allows); otherwise the Baseline tier's rules decide the same
//! way, and when none matches the connection is allowed. Two policies of one
//! tier at the same priority are unordered (the API leaves the outcome to the
//! implementation): tierguard judges every order.
//!
//! `model::clusterpolicy` reads the API objects into this form.

use std::fmt;

use serde::Serialize;

use super::ipblock::{Cidr, IpSet};
use super::policy::Direction;
use super::ports::PortMatch;
use super::selector::Selector;

/// The API a cluster policy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Api {
    /// `policy.networking.k8s.io` ClusterNetworkPolicy.
    ClusterNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1` AdminNetworkPolicy.
    AdminNetworkPolicy,
    /// `policy.networking.k8s.io/v1alpha1` BaselineAdminNetworkPolicy.
    BaselineAdminNetworkPolicy,
}

impl Api {
    /// The kind, as in manifests.
    pub fn kind(self) -> &'static str {
        match self {
            Api::ClusterNetworkPolicy => "ClusterNetworkPolicy",
            Api::AdminNetworkPolicy => "AdminNetworkPolicy",
            Api::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
        }
    }

    /// The resource's plural name, as in URLs, RBAC and webhook rules.
    pub fn plural(self) -> &'static str {
        match self {
            Api::ClusterNetworkPolicy => "clusternetworkpolicies",
            Api::AdminNetworkPolicy => "adminnetworkpolicies",
            Api::BaselineAdminNetworkPolicy => "baselineadminnetworkpolicies",
        }
    }

    /// 0 for ClusterNetworkPolicy, 1 for the older AdminNetworkPolicy and
    /// BaselineAdminNetworkPolicy: priorities order policies within a family.
    fn family(self) -> u8 {
        match self {
            Api::ClusterNetworkPolicy => 0,
            Api::AdminNetworkPolicy | Api::BaselineAdminNetworkPolicy => 1,
        }
    }

    /// The versions tierguard reads, preferred first.
    pub fn versions(self) -> &'static [&'static str] {
        match self {
            Api::ClusterNetworkPolicy => &["v1beta1", "v1alpha2"],
            Api::AdminNetworkPolicy | Api::BaselineAdminNetworkPolicy => &["v1alpha1"],
        }
    }

    /// The API of a kind name.
    pub fn of_kind(kind: &str) -> Option<Api> {
        Api::ALL.into_iter().find(|a| a.kind() == kind)
    }

    /// All three.
    pub const ALL: [Api; 3] = [
        Api::ClusterNetworkPolicy,
        Api::AdminNetworkPolicy,
        Api::BaselineAdminNetworkPolicy,
    ];
}

/// The tier a cluster policy is evaluated in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Tier {
    /// Before NetworkPolicies.
    Admin,
    /// After NetworkPolicies, for pods they do not isolate.
    Baseline,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Admin => "Admin",
            Tier::Baseline => "Baseline",
        })
    }
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Action {
    /// Allow the connection (`Allow` in AdminNetworkPolicy).
    Accept,
    /// Deny it.
    Deny,
    /// Leave it to the next tier.
    Pass,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Accept => "Accept",
            Action::Deny => "Deny",
            Action::Pass => "Pass",
        })
    }
}

impl Action {
    /// The action as `api` spells it (`Allow` in AdminNetworkPolicy and
    /// BaselineAdminNetworkPolicy).
    pub fn spelt_in(self, api: Api) -> &'static str {
        match (self, api) {
            (Action::Accept, Api::ClusterNetworkPolicy) => "Accept",
            (Action::Accept, _) => "Allow",
            (Action::Deny, _) => "Deny",
            (Action::Pass, _) => "Pass",
        }
    }
}

/// The pods a cluster policy applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// Every pod of the namespaces the selector matches.
    Namespaces(Selector),
    /// Pods matching `pods` in namespaces matching `namespaces`.
    Pods {
        /// The namespaces.
        namespaces: Selector,
        /// The pods there.
        pods: Selector,
    },
}

/// One peer of a cluster policy rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterPeer {
    /// Every pod of the namespaces the selector matches.
    Namespaces(Selector),
    /// Pods matching `pods` in namespaces matching `namespaces`.
    Pods {
        /// The namespaces.
        namespaces: Selector,
        /// The pods there.
        pods: Selector,
    },
    /// Addresses (pods' as well as hosts outside the cluster).
    Networks {
        /// The CIDRs as written.
        cidrs: Vec<Cidr>,
        /// Their union.
        set: IpSet,
    },
    /// Nodes by their labels (the node's addresses; egress only in
    /// ClusterNetworkPolicy).
    Nodes(Selector),
    /// Hosts outside the cluster by DNS name (egress only).
    DomainNames(Vec<String>),
}

impl fmt::Display for ClusterPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterPeer::Namespaces(s) => write!(f, "namespaces {s}"),
            ClusterPeer::Pods { namespaces, pods } => {
                write!(f, "pods {pods} in namespaces {namespaces}")
            }
            ClusterPeer::Networks { cidrs, .. } => {
                let c: Vec<String> = cidrs.iter().map(Cidr::to_string).collect();
                write!(f, "networks {}", c.join(", "))
            }
            ClusterPeer::Nodes(s) => write!(f, "nodes {s}"),
            ClusterPeer::DomainNames(d) => write!(f, "domainNames {}", d.join(", ")),
        }
    }
}

/// One rule of a cluster policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterRule {
    /// Its index in the manifest's list.
    pub index: usize,
    /// `name`, when given.
    pub name: Option<String>,
    /// What it does when it matches.
    pub action: Action,
    /// Any of them matches (never empty: the API requires a peer).
    pub peers: Vec<ClusterPeer>,
    /// `None`: every port of every protocol.
    pub ports: Option<Vec<PortMatch>>,
}

/// A validated cluster policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterPolicy {
    /// The API it came from.
    pub api: Api,
    /// `metadata.name` (cluster-scoped).
    pub name: String,
    /// Its tier.
    pub tier: Tier,
    /// Lower first within the tier (a BaselineAdminNetworkPolicy has 0).
    pub priority: i32,
    /// The pods it applies to.
    pub subject: Subject,
    /// Rules for connections to the subject's pods.
    pub ingress: Vec<ClusterRule>,
    /// Rules for connections from them.
    pub egress: Vec<ClusterRule>,
}

/// Where a decision of a cluster policy came from:
/// `ClusterNetworkPolicy admin-dns (Admin, priority 10) egress[0] "allow-dns"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterRuleRef {
    /// The API.
    pub api: Api,
    /// The policy's name.
    pub policy: String,
    /// Its tier.
    pub tier: Tier,
    /// Its priority.
    pub priority: i32,
    /// The rule's direction.
    pub direction: Direction,
    /// The rule's index.
    pub index: usize,
    /// The rule's name, when it has one.
    pub name: Option<String>,
    /// Its action.
    pub action: Action,
}

impl fmt::Display for ClusterRuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({} tier, priority {}) {}[{}]",
            self.api.kind(),
            self.policy,
            self.tier,
            self.priority,
            self.direction,
            self.index
        )?;
        if let Some(n) = &self.name {
            write!(f, " {n:?}")?;
        }
        write!(f, " {}", self.action.spelt_in(self.api))
    }
}

// === impl ClusterPolicy ===

impl ClusterPolicy {
    /// True when this policy's rules are evaluated before `other`'s for
    /// certain (both of one tier): a lower priority within one API family.
    /// ClusterNetworkPolicy and the older AdminNetworkPolicy /
    /// BaselineAdminNetworkPolicy do not order their policies against each
    /// other's (a network plugin serving both picks), so across the two
    /// families nothing is certain.
    pub fn surely_before(&self, other: &ClusterPolicy) -> bool {
        self.api.family() == other.api.family() && self.priority < other.priority
    }

    /// True when the APIs leave the order of this policy and `other` (of one
    /// tier) to the network plugin.
    pub fn unordered_with(&self, other: &ClusterPolicy) -> bool {
        self.key() != other.key() && !self.surely_before(other) && !other.surely_before(self)
    }
}

impl ClusterPolicy {
    /// The rules of one direction.
    pub fn rules(&self, dir: Direction) -> &[ClusterRule] {
        match dir {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    /// A reference to one of its rules.
    pub fn rule_ref(&self, dir: Direction, rule: &ClusterRule) -> ClusterRuleRef {
        ClusterRuleRef {
            api: self.api,
            policy: self.name.clone(),
            tier: self.tier,
            priority: self.priority,
            direction: dir,
            index: rule.index,
            name: rule.name.clone(),
            action: rule.action,
        }
    }

    /// `Kind/name`, as in messages.
    pub fn key(&self) -> String {
        format!("{}/{}", self.api.kind(), self.name)
    }

    /// The selectors of its subject: (namespaces, pods).
    pub fn subject_selectors(&self) -> (&Selector, Option<&Selector>) {
        match &self.subject {
            Subject::Namespaces(ns) => (ns, None),
            Subject::Pods { namespaces, pods } => (namespaces, Some(pods)),
        }
    }
}

/// Cluster policies of one tier in evaluation order: by priority, then by
/// API and name (an order the engine fixes for output; policies at equal
/// priority are still judged as unordered).
pub fn in_order<'a>(
    policies: impl IntoIterator<Item = &'a ClusterPolicy>,
    tier: Tier,
) -> Vec<&'a ClusterPolicy> {
    let mut v: Vec<&ClusterPolicy> = policies.into_iter().filter(|p| p.tier == tier).collect();
    v.sort_by(|a, b| (a.priority, a.api, &a.name).cmp(&(b.priority, b.api, &b.name)));
    v
}
