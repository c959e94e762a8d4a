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
//!
//! And the exceptions no policy can change (the concept page and the API
//! reference): a pod always reaches itself ("a pod cannot block access to
//! itself"), and traffic between a pod and the node it runs on is always
//! allowed ("traffic to and from the node where a Pod is running is always
//! allowed, regardless of the IP address of the Pod or the node"; ingress "if
//! the traffic source is the pod's local node"). [`Exception`] names them.
//!
//! An `ipBlock` matches a pod by the pod's IPs (the upstream conformance
//! suite's reading). When a pod's IPs are unknown (a workload's pods, a Pod
//! without `status.podIP`), an `ipBlock` neither matches nor fails: the side
//! is allowed only if the blocks that would allow it cover every address of
//! both families, and otherwise answers "allowed if its IP is in …"
//! ([`Decision::DependsOnAddress`]), never a plain "denied" the pod's real IP
//! could contradict.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::future::FutureNote;
use super::ipblock::{IpBlock, IpSet};
use super::ordered;
use super::policy::{Direction, Peer, Policy, Rule};
use super::ports::{ContainerPort, Protocol};
use super::state::{Pod, State};

/// One end of a connection.
#[derive(Clone, Debug)]
pub enum Endpoint<'a> {
    /// A pod in the cluster.
    Pod(&'a Pod),
    /// A node of the cluster, by one of its addresses: no NetworkPolicy
    /// applies to it, and pods' ipBlocks match its address.
    Node {
        /// The node's name, when a Node object names it (`None`: known only
        /// as some Pod's `status.hostIP`).
        name: Option<&'a str>,
        /// The address the connection uses.
        ip: IpAddr,
    },
    /// A host outside the cluster.
    External(IpAddr),
    /// Any host outside the cluster, its address unknown: an `ipBlock`
    /// matches it only for some addresses.
    Outside,
    /// Any pod that may be created later in this (existing) namespace, with
    /// any labels, container ports and address ([`super::future`]).
    Future {
        /// The namespace.
        namespace: &'a str,
    },
}

impl Endpoint<'_> {
    /// True when every address of this end is known (a pod with IPs, a
    /// node, a host by its address).
    fn address_known(&self) -> bool {
        match self {
            Endpoint::Pod(p) => !p.ips.is_empty(),
            Endpoint::Node { .. } | Endpoint::External(_) => true,
            Endpoint::Outside | Endpoint::Future { .. } => false,
        }
    }

    /// The address the other side's ipBlocks are matched against, for the
    /// ends that have exactly one.
    fn address(&self) -> Option<IpAddr> {
        match self {
            Endpoint::Pod(_) | Endpoint::Outside | Endpoint::Future { .. } => None,
            Endpoint::Node { ip, .. } | Endpoint::External(ip) => Some(*ip),
        }
    }
}

impl fmt::Display for Endpoint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Pod(p) => match &p.workload {
                Some(w) => write!(f, "{}/{} ({w})", p.namespace, p.name),
                None => write!(f, "{}/{}", p.namespace, p.name),
            },
            Endpoint::Node { name: Some(n), ip } => write!(f, "{ip} (node {n})"),
            Endpoint::Node { name: None, ip } => write!(f, "{ip} (node)"),
            Endpoint::External(ip) => write!(f, "{ip} (outside the cluster)"),
            Endpoint::Outside => f.write_str("outside"),
            Endpoint::Future { namespace } => write!(f, "{namespace}/* (a pod created later)"),
        }
    }
}

/// Where pods run: the addresses of each pod's node, when known.
pub trait Placement {
    /// The addresses of the node `pod` runs on (`None`: not known, or the pod
    /// stands for a workload's pods, which may run anywhere).
    fn node_addresses(&self, pod: &Pod) -> Option<&[IpAddr]>;
}

/// Nothing is known about where pods run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unplaced;

impl Placement for Unplaced {
    fn node_addresses(&self, _: &Pod) -> Option<&[IpAddr]> {
        None
    }
}

/// A connection no NetworkPolicy can close.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Exception {
    /// A pod connecting to itself: "a pod cannot block access to itself".
    Loopback,
    /// A pod and the node it runs on: "traffic to and from the node where a
    /// Pod is running is always allowed".
    LocalNode,
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Exception::Loopback => {
                "a pod cannot block access to itself (loopback follows no NetworkPolicy)"
            }
            Exception::LocalNode => {
                "traffic between a pod and the node it runs on is always allowed"
            }
        })
    }
}

/// The exception that allows `src` → `dst` whatever the policies say, if any.
/// A pod is itself only as one Pod (a workload stands for many pods).
pub fn exception(
    src: &Endpoint<'_>,
    dst: &Endpoint<'_>,
    placement: &dyn Placement,
) -> Option<Exception> {
    let local = |p: &Pod, ip: IpAddr| {
        p.workload.is_none() && placement.node_addresses(p).is_some_and(|a| a.contains(&ip))
    };
    match (src, dst) {
        (Endpoint::Pod(a), Endpoint::Pod(b))
            if a.workload.is_none()
                && b.workload.is_none()
                && a.namespace == b.namespace
                && a.name == b.name =>
        {
            Some(Exception::Loopback)
        }
        (Endpoint::Pod(p), Endpoint::Node { ip, .. })
        | (Endpoint::Node { ip, .. }, Endpoint::Pod(p))
            if local(p, *ip) =>
        {
            Some(Exception::LocalNode)
        }
        _ => None,
    }
}

/// How one side (the source's egress or the destination's ingress) decided.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SideVerdict {
    /// The pod's side allows the connection (for every address the other
    /// end may have).
    pub allowed: bool,
    /// Some policy selects the pod for this direction.
    pub isolated: bool,
    /// The policies that isolate the pod (`namespace/name`).
    pub isolated_by: Vec<String>,
    /// The rules that allow the connection (`ns/name ingress[0]`; an ipBlock
    /// that matched a pod says which of its addresses it matched).
    pub allowed_by: Vec<String>,
    /// When the other end's address is unknown (a pod whose IPs are
    /// unknown, or [`Endpoint::Outside`]) and only ipBlocks could allow it: the blocks (and their rules) that allow it if its IP
    /// is inside. Empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_if_address_in: Vec<String>,
    /// Cluster-wide policy rules that match only for some addresses (or DNS
    /// names) of the other end, when they would change the outcome.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub address_decides: Vec<String>,
    /// What each cluster-wide tier did, in order (empty when the state has
    /// no cluster-wide policies): the walkthrough.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<String>,
    /// The cluster-wide rule that decided, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
}

impl SideVerdict {
    /// Neither allowed for certain nor denied: it depends on an unknown IP.
    pub fn depends_on_address(&self) -> bool {
        !self.allowed
            && (!self.allowed_if_address_in.is_empty() || !self.address_decides.is_empty())
    }
}

/// What was decided for one connection.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    /// Allowed, whatever addresses the ends have.
    Allowed,
    /// Allowed only if an end whose IP is unknown has an IP in the listed
    /// blocks.
    DependsOnAddress,
    /// Allowed for some pods created later and not for others (by their
    /// labels, or only for some addresses or container ports).
    DependsOnPod,
    /// Denied.
    Denied,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Decision::Allowed => "ALLOWED",
            Decision::DependsOnAddress => "DEPENDS ON ADDRESS",
            Decision::DependsOnPod => "DEPENDS ON THE POD",
            Decision::Denied => "DENIED",
        })
    }
}

/// The verdict for one connection.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// Allowed for certain: an exception applies, or both sides allow it.
    pub allowed: bool,
    /// Allowed, denied, or allowed only for some addresses of an end whose
    /// IP is unknown.
    pub decision: Decision,
    /// The exception that allows it whatever the policies say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<Exception>,
    /// The source pod's egress (absent for a node or an external source).
    pub egress: Option<SideVerdict>,
    /// The destination pod's ingress (absent for a node or an external
    /// destination).
    pub ingress: Option<SideVerdict>,
    /// For an end that is a pod created later: examples, and what else it
    /// takes (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub future: Option<FutureNote>,
}

/// Decides whether `src` may connect to `dst` on `proto/port`, knowing
/// nothing about where pods run (only the loopback exception applies).
pub fn evaluate(
    state: &State,
    src: &Endpoint<'_>,
    dst: &Endpoint<'_>,
    proto: Protocol,
    port: u16,
) -> Verdict {
    evaluate_placed(state, &Unplaced, src, dst, proto, port)
}

/// Decides whether `src` may connect to `dst` on `proto/port`, with the
/// exceptions `placement` makes known (a pod's own node).
pub fn evaluate_placed(
    state: &State,
    placement: &dyn Placement,
    src: &Endpoint<'_>,
    dst: &Endpoint<'_>,
    proto: Protocol,
    port: u16,
) -> Verdict {
    if matches!(src, Endpoint::Future { .. }) || matches!(dst, Endpoint::Future { .. }) {
        return super::future::evaluate(state, src, dst, proto, port);
    }
    let dst_ports = match dst {
        Endpoint::Pod(p) => Some(p.ports.as_slice()),
        Endpoint::Node { .. }
        | Endpoint::External(_)
        | Endpoint::Outside
        | Endpoint::Future { .. } => None,
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
        Endpoint::Node { .. }
        | Endpoint::External(_)
        | Endpoint::Outside
        | Endpoint::Future { .. } => None,
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
        Endpoint::Node { .. }
        | Endpoint::External(_)
        | Endpoint::Outside
        | Endpoint::Future { .. } => None,
    };
    let exception = exception(src, dst, placement);
    let sides = [egress.as_ref(), ingress.as_ref()];
    let decision = if exception.is_some() || sides.iter().flatten().all(|s| s.allowed) {
        Decision::Allowed
    } else if sides
        .iter()
        .flatten()
        .any(|s| !s.allowed && !s.depends_on_address())
    {
        Decision::Denied
    } else {
        Decision::DependsOnAddress
    };
    Verdict {
        allowed: decision == Decision::Allowed,
        decision,
        exception,
        egress,
        ingress,
        future: None,
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

/// How a rule's peers matched the other end.
pub(super) enum PeerMatch<'r> {
    /// A peer matches; for an ipBlock matching a pod, the address it matched.
    Yes(Option<IpAddr>),
    /// The other end is a pod of unknown IP: these blocks match if its IP is
    /// inside them.
    IfAddressIn(Vec<&'r IpBlock>),
    No,
}

pub(super) fn peers_match<'r>(
    state: &State,
    pol: &Policy,
    r: &'r Rule,
    other: &Endpoint<'_>,
) -> PeerMatch<'r> {
    let Some(peers) = &r.peers else {
        return PeerMatch::Yes(None);
    };
    let mut blocks = Vec::new();
    for peer in peers {
        match (peer, other) {
            (Peer::IpBlock(b), Endpoint::Pod(p)) if p.ips.is_empty() => blocks.push(b),
            (Peer::IpBlock(b), Endpoint::Outside) => blocks.push(b),
            (Peer::IpBlock(b), Endpoint::Pod(p)) => {
                if let Some(ip) = p.ips.iter().find(|ip| b.contains(**ip)) {
                    return PeerMatch::Yes(Some(*ip));
                }
            }
            _ => {
                if peer_matches(state, pol, peer, other) {
                    return PeerMatch::Yes(None);
                }
            }
        }
    }
    if blocks.is_empty() {
        PeerMatch::No
    } else {
        PeerMatch::IfAddressIn(blocks)
    }
}

/// One side: tier by tier when cluster-wide policies exist
/// ([`super::ordered`]), by NetworkPolicies alone otherwise.
fn side(
    state: &State,
    pod: &Pod,
    dir: Direction,
    other: &Endpoint<'_>,
    proto: Protocol,
    port: u16,
    dst_ports: Option<&[ContainerPort]>,
) -> SideVerdict {
    if state.has_cluster_policies() {
        ordered::side(state, pod, dir, other, proto, port, dst_ports)
    } else {
        np_side(state, pod, dir, other, proto, port, dst_ports)
    }
}

/// One side as NetworkPolicies alone decide it.
pub(super) fn np_side(
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
    let mut conditional: Vec<(String, &IpBlock)> = Vec::new();
    for (pol, rules) in isolating(state, pod, dir) {
        isolated_by.push(pol.key());
        for r in rules {
            if !ports_match(r, proto, port, dst_ports) {
                continue;
            }
            let rule = pol.rule_ref(dir, r.index).to_string();
            match peers_match(state, pol, r, other) {
                PeerMatch::Yes(None) => allowed_by.push(rule),
                PeerMatch::Yes(Some(ip)) => {
                    allowed_by.push(format!("{rule} (its ipBlock matches {ip})"))
                }
                PeerMatch::IfAddressIn(blocks) => {
                    conditional.extend(blocks.into_iter().map(|b| (rule.clone(), b)));
                }
                PeerMatch::No => {}
            }
        }
    }
    let isolated = !isolated_by.is_empty();
    let mut allowed_if_address_in = Vec::new();
    if isolated && allowed_by.is_empty() && !conditional.is_empty() {
        let union = conditional
            .iter()
            .fold(IpSet::default(), |acc, (_, b)| acc.union(&b.to_set()));
        let shown = conditional.iter().map(|(rule, b)| format!("{b} ({rule})"));
        if union.covers_ipv4() && union.covers_ipv6() {
            let mut rules: Vec<&String> = conditional.iter().map(|(rule, _)| rule).collect();
            rules.dedup();
            allowed_by.extend(rules.into_iter().map(|rule| {
                format!("{rule} (its ipBlocks together cover every IPv4 and IPv6 address)")
            }));
        } else {
            allowed_if_address_in.extend(shown);
        }
    }
    SideVerdict {
        allowed: !isolated || !allowed_by.is_empty(),
        isolated,
        isolated_by,
        allowed_by,
        allowed_if_address_in,
        address_decides: Vec::new(),
        tiers: Vec::new(),
        decided_by: None,
    }
}

/// Whether `pod`'s side (its `dir` wall) lets the connection with `other`
/// through for certain: the same decision as [`evaluate`] makes for one side,
/// without collecting the explanation (and without exceptions, which belong
/// to connections, not walls).
pub fn side_allows(
    state: &State,
    pod: &Pod,
    dir: Direction,
    other: &Endpoint<'_>,
    proto: Protocol,
    port: u16,
    dst_ports: Option<&[ContainerPort]>,
) -> bool {
    if state.has_cluster_policies() && other.address_known() {
        let probe = ordered::Probe {
            other,
            proto,
            port,
            dst_ports,
        };
        return ordered::side_allows(state, pod, dir, &probe);
    }
    if !other.address_known() {
        return side(state, pod, dir, other, proto, port, dst_ports).allowed;
    }
    let (isolated, allowed) = np_allows(state, pod, dir, other, proto, port, dst_ports);
    !isolated || allowed
}

/// Whether NetworkPolicies isolate `pod` for `dir`, and whether one of
/// their rules allows the connection (an other end whose address is
/// known), without the explanation.
pub(super) fn np_allows(
    state: &State,
    pod: &Pod,
    dir: Direction,
    other: &Endpoint<'_>,
    proto: Protocol,
    port: u16,
    dst_ports: Option<&[ContainerPort]>,
) -> (bool, bool) {
    let mut isolated = false;
    for (pol, rules) in isolating(state, pod, dir) {
        isolated = true;
        if rules
            .iter()
            .any(|r| rule_matches(state, pol, r, other, proto, port, dst_ports))
        {
            return (true, true);
        }
    }
    (isolated, false)
}

fn ports_match(r: &Rule, proto: Protocol, port: u16, dst_ports: Option<&[ContainerPort]>) -> bool {
    match &r.ports {
        None => true,
        Some(ports) => ports.iter().any(|m| m.matches(proto, port, dst_ports)),
    }
}

/// True when rule `r` of `pol` matches the other end on `proto/port` (an
/// ipBlock matches a pod only by a known IP).
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
    peer_ok && ports_match(r, proto, port, dst_ports)
}

/// True when a peer of a rule in `pol` matches the endpoint (an ipBlock
/// matches a pod only by a known IP).
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
        (Peer::Pods { .. }, _) => false,
        (Peer::IpBlock(b), Endpoint::Pod(p)) => p.ips.iter().any(|ip| b.contains(*ip)),
        (Peer::IpBlock(b), end) => end.address().is_some_and(|ip| b.contains(ip)),
    }
}
