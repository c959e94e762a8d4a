//! Validated, normalised NetworkPolicies.
//!
//! `model::networkpolicy::convert` applies the API server's defaulting and validation
//! (`networking/v1` `SetDefaults_NetworkPolicySpec`,
//! `ValidateNetworkPolicy`) and produces a form where every rule of the API
//! reference is explicit:
//!
//! ```text
//!  Policy ── pod_selector ──────────────── which pods of its namespace it selects
//!    ├─ ingress: Some(rules) ─ iff policyTypes contains Ingress (defaulted: always)
//!    └─ egress:  Some(rules) ─ iff policyTypes contains Egress  (defaulted: iff egress rules)
//!          Rule ─ peers: None ─ every source/destination, outside the cluster too
//!            │           Some([..]) ─ any peer matches (OR)
//!            └─ ports: None ─ every port of every protocol
//!                      Some([..]) ─ any entry matches (OR)
//!  Peer::Pods { namespaces: None ─ the policy's namespace, Some(sel) ─ namespaces sel matches,
//!               pods: None ─ all pods there, Some(sel) ─ pods sel matches }   (AND)
//!  Peer::IpBlock ─ cidr minus except
//! ```
//!
//! A rule with rules listed but policyTypes excluding the direction has its
//! rules ignored, exactly as the API server's consumers do.

use std::fmt;

use super::ipblock::IpBlock;
use super::ports::PortMatch;
use super::selector::Selector;

/// Traffic direction, from the point of view of the selected pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Connections to the pod.
    Ingress,
    /// Connections from the pod.
    Egress,
}

impl Direction {
    /// `ingress` / `egress`, as in field paths.
    pub fn field(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}

/// One peer of a rule (`from[i]` / `to[i]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Pods, by namespace and pod selectors (both given = AND).
    Pods {
        /// `None`: the policy's own namespace.
        namespaces: Option<Selector>,
        /// `None`: every pod of the selected namespaces.
        pods: Option<Selector>,
    },
    /// Addresses.
    IpBlock(IpBlock),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Pods { namespaces, pods } => {
                let mut parts = Vec::new();
                if let Some(ns) = namespaces {
                    parts.push(format!("namespaceSelector {ns}"));
                }
                if let Some(p) = pods {
                    parts.push(format!("podSelector {p}"));
                }
                f.write_str(&parts.join(" + "))
            }
            Peer::IpBlock(b) => write!(f, "{b}"),
        }
    }
}

/// One rule (`ingress[i]` / `egress[i]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Its index in the manifest's list.
    pub index: usize,
    /// `None` when `from`/`to` is absent or empty: every peer.
    pub peers: Option<Vec<Peer>>,
    /// `None` when `ports` is absent or empty: every port.
    pub ports: Option<Vec<PortMatch>>,
}

/// A validated NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.podSelector` (absent = `{}` = every pod).
    pub pod_selector: Selector,
    /// Ingress rules when the policy isolates ingress.
    pub ingress: Option<Vec<Rule>>,
    /// Egress rules when the policy isolates egress.
    pub egress: Option<Vec<Rule>>,
}

/// Where a verdict came from: `backend/allow-frontend ingress[0]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    /// The policy's namespace.
    pub namespace: String,
    /// The policy's name.
    pub policy: String,
    /// The rule's direction.
    pub direction: Direction,
    /// The rule's index.
    pub index: usize,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} {}[{}]",
            self.namespace, self.policy, self.direction, self.index
        )
    }
}

// === impl Policy ===

impl Policy {
    /// The rules of one direction, when the policy isolates it.
    pub fn rules(&self, dir: Direction) -> Option<&[Rule]> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// A reference to one of its rules.
    pub fn rule_ref(&self, dir: Direction, index: usize) -> RuleRef {
        RuleRef {
            namespace: self.namespace.clone(),
            policy: self.name.clone(),
            direction: dir,
            index,
        }
    }
}
