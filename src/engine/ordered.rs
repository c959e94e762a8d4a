//! Concrete verdicts of the cluster-wide tiers ([`super::cluster`]) for one
//! side of one connection: the Admin tier's rules in order, then (for a pod
//! no NetworkPolicy isolates) the Baseline tier's.
//!
//! A rule matches when the pod is in its policy's subject, one of its peers
//! matches the other end and one of its port entries matches (or it has
//! none). The first matching rule of a tier decides; `Pass` leaves the
//! connection to the next tier. A `networks` peer matches a pod by its IPs;
//! when the other end's address is unknown it neither matches nor fails, and
//! the walk goes on as if it did not match, remembering that the address
//! may decide ([`Walk::unsure`]). A `domainNames` peer is never resolved:
//! it may match any host outside the cluster. A `nodes` peer matches a node
//! when its selector is empty (tierguard does not read Node labels yet).

use std::collections::BTreeMap;

use super::cluster::{
    Action, ClusterPeer, ClusterPolicy, ClusterRule, ClusterRuleRef, Subject, Tier, in_order,
};
use super::policy::Direction;
use super::ports::{ContainerPort, Protocol};
use super::reach::{Endpoint, SideVerdict, np_allows, np_side};
use super::state::{Pod, State};

/// How a tier decided one side of a connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    /// The first rule that matched, when one did.
    pub decided: Option<ClusterRuleRef>,
    /// Rules before it that match only if the other end's address (unknown)
    /// is in their networks, or its DNS name is theirs.
    pub unsure: Vec<(ClusterRuleRef, String)>,
    /// Policies of the tier whose subject holds the pod, in order.
    pub applying: Vec<String>,
}

/// Whether a rule's peer matches the other end.
enum Match {
    Yes,
    Unsure(String),
    No,
}

/// True when `pol`'s subject holds `pod`.
pub fn subject_holds(state: &State, pol: &ClusterPolicy, pod: &Pod) -> bool {
    let Some(ns) = state.namespace(&pod.namespace) else {
        return false;
    };
    match &pol.subject {
        Subject::Namespaces(sel) => sel.matches(&ns.labels),
        Subject::Pods { namespaces, pods } => {
            namespaces.matches(&ns.labels) && pods.matches(&pod.labels)
        }
    }
}

fn in_namespaces(state: &State, sel: &super::selector::Selector, p: &Pod) -> bool {
    state
        .namespace(&p.namespace)
        .is_some_and(|ns| sel.matches(&ns.labels))
}

fn peer_match(state: &State, peer: &ClusterPeer, other: &Endpoint<'_>) -> Match {
    match (peer, other) {
        (ClusterPeer::Namespaces(sel), Endpoint::Pod(p)) => {
            bool_match(in_namespaces(state, sel, p))
        }
        (ClusterPeer::Pods { namespaces, pods }, Endpoint::Pod(p)) => {
            bool_match(in_namespaces(state, namespaces, p) && pods.matches(&p.labels))
        }
        (ClusterPeer::Networks { set, .. }, Endpoint::Pod(p)) if p.ips.is_empty() => {
            Match::Unsure(format!("if its address is in {peer}"))
        }
        (ClusterPeer::Networks { set, .. }, Endpoint::Pod(p)) => {
            bool_match(p.ips.iter().any(|ip| set.contains(*ip)))
        }
        (ClusterPeer::Networks { set, .. }, Endpoint::Node { ip, .. } | Endpoint::External(ip)) => {
            bool_match(set.contains(*ip))
        }
        (ClusterPeer::Networks { .. }, Endpoint::Outside) => {
            Match::Unsure(format!("if its address is in {peer}"))
        }
        // Nodes' labels are not known: only an empty selector is certain.
        (ClusterPeer::Nodes(sel), Endpoint::Node { .. }) if sel.is_everything() => Match::Yes,
        (ClusterPeer::Nodes(_), Endpoint::Node { .. }) => {
            Match::Unsure(format!("if the node's labels match {peer}"))
        }
        (ClusterPeer::DomainNames(_), Endpoint::External(_) | Endpoint::Outside) => {
            Match::Unsure(format!("if it is one of {peer}"))
        }
        _ => Match::No,
    }
}

fn bool_match(b: bool) -> Match {
    if b { Match::Yes } else { Match::No }
}

/// The connection one side is judged for.
#[derive(Clone, Copy, Debug)]
pub struct Probe<'a> {
    /// The other end.
    pub other: &'a Endpoint<'a>,
    /// The protocol.
    pub proto: Protocol,
    /// The destination port.
    pub port: u16,
    /// The destination pod's container ports, for named ports (`None`: the
    /// destination is not a pod).
    pub dst_ports: Option<&'a [ContainerPort]>,
}

/// A rule that matched first, and the rules before it that match only for
/// some addresses of the other end (with why).
type FirstMatch<'s> = (
    Option<(&'s ClusterPolicy, &'s ClusterRule)>,
    Vec<(&'s ClusterPolicy, &'s ClusterRule, String)>,
);

/// The first rule of `tier` that matches `pod`'s `dir` side of `c`.
fn first_match<'s>(
    state: &'s State,
    tier: Tier,
    pod: &Pod,
    dir: Direction,
    c: &Probe<'_>,
    mut applying: impl FnMut(&'s ClusterPolicy),
) -> FirstMatch<'s> {
    let mut unsure_rules = Vec::new();
    for pol in in_order(state.cluster_policies().map(AsRef::as_ref), tier) {
        if !subject_holds(state, pol, pod) {
            continue;
        }
        applying(pol);
        for rule in pol.rules(dir) {
            let ports_ok = rule
                .ports
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|m| m.matches(c.proto, c.port, c.dst_ports)));
            if !ports_ok {
                continue;
            }
            let mut unsure = None;
            for peer in &rule.peers {
                match peer_match(state, peer, c.other) {
                    Match::Yes => return (Some((pol, rule)), unsure_rules),
                    Match::Unsure(why) => unsure = unsure.or(Some(why)),
                    Match::No => {}
                }
            }
            if let Some(why) = unsure {
                unsure_rules.push((pol, rule, why));
            }
        }
    }
    (None, unsure_rules)
}

/// Walks one tier's rules for `pod`'s `dir` side of the connection `c`.
pub fn walk(state: &State, tier: Tier, pod: &Pod, dir: Direction, c: &Probe<'_>) -> Walk {
    let mut applying = Vec::new();
    let (first, unsure) = first_match(state, tier, pod, dir, c, |p| applying.push(p.key()));
    Walk {
        decided: first.map(|(p, r)| p.rule_ref(dir, r)),
        unsure: unsure
            .into_iter()
            .map(|(p, r, why)| (p.rule_ref(dir, r), why))
            .collect(),
        applying,
    }
}

/// Whether `pod`'s `dir` side lets `c` through, tier by tier, for an other
/// end whose address is known: [`side`]'s decision without its
/// explanation.
pub(super) fn side_allows(state: &State, pod: &Pod, dir: Direction, c: &Probe<'_>) -> bool {
    let action = |tier| {
        first_match(state, tier, pod, dir, c, |_| {})
            .0
            .map(|(_, r)| r.action)
    };
    match action(Tier::Admin) {
        Some(Action::Accept) => true,
        Some(Action::Deny) => false,
        Some(Action::Pass) | None => {
            let (isolated, allowed) =
                np_allows(state, pod, dir, c.other, c.proto, c.port, c.dst_ports);
            if isolated {
                allowed
            } else {
                action(Tier::Baseline) != Some(Action::Deny)
            }
        }
    }
}

/// Whether the first rule that matched allows, denies or passes.
pub fn action_of(w: &Walk) -> Option<Action> {
    w.decided.as_ref().map(|r| r.action)
}

/// The walk's lines for a walkthrough: what each tier did.
pub fn describe(tier: Tier, w: &Walk) -> String {
    let mut s = match &w.decided {
        Some(r) => format!("{tier} tier: {r} matches"),
        None if w.applying.is_empty() => format!("{tier} tier: no policy applies"),
        None => format!("{tier} tier: no rule of {} matches", w.applying.join(", ")),
    };
    let unsure: BTreeMap<String, &String> = w
        .unsure
        .iter()
        .map(|(r, why)| (r.to_string(), why))
        .collect();
    for (r, why) in unsure {
        s.push_str(&format!("; {r} would match {why}"));
    }
    s
}

/// One side, tier by tier: the Admin tier, NetworkPolicies, the Baseline
/// tier, then allowed.
pub(super) fn side(
    state: &State,
    pod: &Pod,
    dir: Direction,
    other: &Endpoint<'_>,
    proto: Protocol,
    port: u16,
    dst_ports: Option<&[ContainerPort]>,
) -> SideVerdict {
    let mut tiers = Vec::new();
    let mut unsure = Vec::new();
    let probe = Probe {
        other,
        proto,
        port,
        dst_ports,
    };
    let admin = walk(state, Tier::Admin, pod, dir, &probe);
    tiers.push(describe(Tier::Admin, &admin));
    unsure.extend(admin.unsure.iter().cloned());
    let decided = |w: &Walk| w.decided.as_ref().map(ToString::to_string);
    let (mut verdict, by) = match action_of(&admin) {
        Some(Action::Accept) => (decided_side(true), decided(&admin)),
        Some(Action::Deny) => (decided_side(false), decided(&admin)),
        Some(Action::Pass) | None => {
            let np = np_side(state, pod, dir, other, proto, port, dst_ports);
            if np.isolated {
                tiers.push(format!(
                    "NetworkPolicy tier: isolated by {}; {}",
                    np.isolated_by.join(", "),
                    if np.allowed_by.is_empty() {
                        "no rule allows it".to_string()
                    } else {
                        format!("allowed by {}", np.allowed_by.join(", "))
                    }
                ));
                (np, None)
            } else {
                tiers.push("NetworkPolicy tier: no NetworkPolicy isolates the pod".into());
                let base = walk(state, Tier::Baseline, pod, dir, &probe);
                tiers.push(describe(Tier::Baseline, &base));
                unsure.extend(base.unsure.iter().cloned());
                let allowed = action_of(&base) != Some(Action::Deny);
                if action_of(&base).is_none_or(|a| a == Action::Pass) {
                    tiers.push("no tier decided: allowed".into());
                }
                (SideVerdict { allowed, ..np }, decided(&base))
            }
        }
    };
    // A rule the other end's address may match changes the outcome unless
    // it would decide the same way.
    let changes = |a: Action| match a {
        Action::Accept => !verdict.allowed,
        Action::Deny => verdict.allowed,
        Action::Pass => true,
    };
    verdict.address_decides = unsure
        .iter()
        .filter(|(r, _)| changes(r.action))
        .map(|(r, why)| format!("{r} {why}"))
        .collect();
    if !verdict.address_decides.is_empty() {
        verdict.allowed = false;
    }
    verdict.tiers = tiers;
    verdict.decided_by = by;
    verdict
}

fn decided_side(allowed: bool) -> SideVerdict {
    SideVerdict {
        allowed,
        isolated: false,
        isolated_by: Vec::new(),
        allowed_by: Vec::new(),
        allowed_if_address_in: Vec::new(),
        address_decides: Vec::new(),
        tiers: Vec::new(),
        decided_by: None,
    }
}
