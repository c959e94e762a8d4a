//! Concrete verdicts: may this source connect to this destination on this
//! port, and which policies and rules decide it?
//!
//! The API reference's rules, in order:
//! 1. A connection needs the source's egress AND the destination's ingress
//!    to allow it. A host outside the cluster has no policies: its side
//!    always allows.
//! 2. A pod is isolated for a direction iff some policy in its namespace
//!    selects it and includes that direction in its (defaulted) policyTypes.
//!    A pod not isolated for a direction allows everything in it.
//! 3. An isolated pod allows a connection iff some rule of some selecting
//!    policy allows it (union; order and policy count do not matter).
//! 4. A rule allows it iff one of its peers matches the other end (or it has
//!    none) and one of its port entries matches (or it has none); named ports
//!    resolve on the destination pod.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::policy::{Direction, Peer, Policy, Rule};
use super::ports::{ContainerPort, Protocol};
use super::state::{Pod, State};

/// One end of a connection.
#[derive(Clone, Debug)]
pub enum Endpoint<'a> {
    /// A pod in the cluster.
    Pod(&'a Pod),
    /// A host outside the cluster.
    External(IpAddr),
}

impl fmt::Display for Endpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Pod(p) => match &p.workload {
                Some(w) => write!(f, "{}/{} ({w})", p.namespace, p.name),
                None => write!(f, "{}/{}", p.namespace, p.name),
            },
            Endpoint::External(ip) => write!(f, "{ip} (outside the cluster)"),
        }
    }
}

/// How one side (the source's egress or the destination's ingress) decided.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SideVerdict {
    /// The pod's side allows the connection.
    pub allowed: bool,
    /// Some policy selects the pod for this direction.
    pub isolated: bool,
    /// The policies that isolate the pod (`namespace/name`).
    pub isolated_by: Vec<String>,
    /// The rules that allow the connection (`ns/name ingress[0]`).
    pub allowed_by: Vec<String>,
}

/// The verdict for one connection.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// Both sides allow it.
    pub allowed: bool,
    /// The source pod's egress (absent for an external source).
    pub egress: Option<SideVerdict>,
    /// The destination pod's ingress (absent for an external destination).
    pub ingress: Option<SideVerdict>,
}

/// Decides whether `src` may connect to `dst` on `proto/port`.
pub fn evaluate(
    state: &State,
    src: &Endpoint<'_>,
    dst: &Endpoint<'_>,
    proto: Protocol,
    port: u16,
) -> Verdict {
    let dst_ports = match dst {
        Endpoint::Pod(p) => Some(p.ports.as_slice()),
        Endpoint::External(_) => None,
    };
    let egress = match src {
        Endpoint::Pod(p) => Some(side(
            state,
            p,
            Direction::Egress,
            dst,
            proto,
            port,
            dst_ports,
        )),
        Endpoint::External(_) => None,
    };
    let ingress = match dst {
        Endpoint::Pod(p) => Some(side(
            state,
            p,
            Direction::Ingress,
            src,
            proto,
            port,
            dst_ports,
        )),
        Endpoint::External(_) => None,
    };
    let allowed =
        egress.as_ref().is_none_or(|s| s.allowed) && ingress.as_ref().is_none_or(|s| s.allowed);
    Verdict {
        allowed,
        egress,
        ingress,
    }
}

/// The policies that isolate `pod` for `dir`, with their rules of that direction.
fn isolating<'s>(
    state: &'s State,
    pod: &'s Pod,
    dir: Direction,
) -> impl Iterator<Item = (&'s Policy, &'s [Rule])> {
    state
        .policies_in(&pod.namespace)
        .filter(move |pol| pol.pod_selector.matches(&pod.labels))
        .filter_map(move |pol| pol.rules(dir).map(|rules| (pol.as_ref(), rules)))
}

fn side(
    state: &State,
    pod: &Pod,
    dir: Direction,
    other: &Endpoint<'_>,
    proto: Protocol,
    port: u16,
    dst_ports: Option<&[ContainerPort]>,
) -> SideVerdict {
    let mut isolated_by = Vec::new();
    let mut allowed_by = Vec::new();
    for (pol, rules) in isolating(state, pod, dir) {
        isolated_by.push(pol.key());
        for r in rules {
            if rule_matches(state, pol, r, other, proto, port, dst_ports) {
                allowed_by.push(pol.rule_ref(dir, r.index).to_string());
            }
        }
    }
    let isolated = !isolated_by.is_empty();
    SideVerdict {
        allowed: !isolated || !allowed_by.is_empty(),
        isolated,
        isolated_by,
        allowed_by,
    }
}

/// Whether `pod`'s side (its `dir` wall) lets the connection with `other`
/// through: the same decision as [`evaluate`] makes for one side, without
/// collecting the explanation.
pub fn side_allows(
    state: &State,
    pod: &Pod,
    dir: Direction,
    other: &Endpoint<'_>,
    proto: Protocol,
    port: u16,
    dst_ports: Option<&[ContainerPort]>,
) -> bool {
    let mut isolated = false;
    for (pol, rules) in isolating(state, pod, dir) {
        isolated = true;
        if rules
            .iter()
            .any(|r| rule_matches(state, pol, r, other, proto, port, dst_ports))
        {
            return true;
        }
    }
    !isolated
}

/// True when rule `r` of `pol` matches the other end on `proto/port`.
pub fn rule_matches(
    state: &State,
    pol: &Policy,
    r: &Rule,
    other: &Endpoint<'_>,
    proto: Protocol,
    port: u16,
    dst_ports: Option<&[ContainerPort]>,
) -> bool {
    let peer_ok = match &r.peers {
        None => true,
        Some(peers) => peers.iter().any(|p| peer_matches(state, pol, p, other)),
    };
    let port_ok = match &r.ports {
        None => true,
        Some(ports) => ports.iter().any(|m| m.matches(proto, port, dst_ports)),
    };
    peer_ok && port_ok
}

/// True when a peer of a rule in `pol` matches the endpoint.
pub fn peer_matches(state: &State, pol: &Policy, peer: &Peer, other: &Endpoint<'_>) -> bool {
    match (peer, other) {
        (Peer::Pods { namespaces, pods }, Endpoint::Pod(p)) => {
            let ns_ok = match namespaces {
                None => p.namespace == pol.namespace,
                Some(sel) => state
                    .namespace(&p.namespace)
                    .is_some_and(|ns| sel.matches(&ns.labels)),
            };
            ns_ok && pods.as_ref().is_none_or(|s| s.matches(&p.labels))
        }
        (Peer::Pods { .. }, Endpoint::External(_)) => false,
        (Peer::IpBlock(b), Endpoint::Pod(p)) => p.ips.iter().any(|ip| b.contains(*ip)),
        (Peer::IpBlock(b), Endpoint::External(ip)) => b.contains(*ip),
    }
}
