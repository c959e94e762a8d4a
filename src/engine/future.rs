//! Pods that do not exist yet: may *some* pod created later in a namespace
//! connect to (or be reached from) an existing end — or every such pod, or
//! none?
//!
//! A pod created later in namespace `N` may carry any labels, any container
//! ports and any pod address. Its own side (its egress as a source, its
//! ingress as a destination) depends on which of `N`'s policies select it;
//! the other end's side depends on which of its rules' pod selectors match
//! it. Each condition is a disjunction of terms "its labels satisfy this
//! selector (and every policy of a list does not select it)", so "is some
//! such pod allowed?" and "is some such pod not allowed?" are finitely many
//! [`solve`] calls over free labels, each with a witness:
//!
//! ```text
//!  own(L)   = L in no isolating policy  ∨  ∨ { L ∈ sel(p) : p's rules match the other end }
//!  other(L) = other end not isolated    ∨  ∨ { L ∈ podSelector(peer) : a rule's peer can be a pod of N }
//!  allowed for some L   ⇔ some (own term ∧ other term) is satisfiable
//!  denied for some L    ⇔ some L is selected by p and by no allowing policy, or avoids every other term
//! ```
//!
//! Besides its labels a pod created later chooses its container ports (a
//! named port may resolve to the port asked about, or not) and gets some
//! pod address (an `ipBlock` may match it, or not). A term that holds only
//! for some ports or addresses is [`Tri::Maybe`]: it counts for "some pod
//! may be allowed" and against "every pod is allowed". Where the pod is
//! scheduled is not known either: one scheduled on a node reaches that node
//! whatever the policies say.
//!
//! Two ends that both stand for pods created later are not judged here
//! (their labels are two free sets whose conditions do not factor into
//! terms); the isolation check judges every such pair.

use std::fmt;

use serde::Serialize;

use super::policy::{Direction, Peer, Policy, Rule};
use super::ports::{PortNumbers, Protocol};
use super::reach::{Decision, Endpoint, PeerMatch, Verdict, peers_match};
use super::selector::{FreeLabels, Selector, Witness, describe_witness};
use super::solve::{Budget, Exhausted, solve};
use super::state::{Pod, State};

/// The steps one verdict about a pod created later may spend on solving.
pub const FUTURE_BUDGET: u64 = 1_000_000;

/// What is known about a pod created later, beyond its labels.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FutureNote {
    /// Labels of a pod created later that the connection is allowed for
    /// (`describe_witness` form), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_with: Option<String>,
    /// Labels of one it is not allowed for certain (denied, or allowed only
    /// for some addresses or port names), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denied_with: Option<String>,
    /// The allowed example also needs a fitting address (an ipBlock matching
    /// its address, or the other end's when that is unknown), a named
    /// container port, or a placement on the node it connects with.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub if_address_port_or_node: bool,
    /// Why the verdict could not be decided (both ends are pods created
    /// later, or the solver ran out of budget).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undecided: Option<String>,
}

impl fmt::Display for FutureNote {
    /// One line: which pods created later are allowed, and what else it takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(why) = &self.undecided {
            return f.write_str(why);
        }
        match (&self.allowed_with, &self.denied_with) {
            (None, _) => f.write_str("no pod created there is allowed, whatever its labels"),
            (Some(a), denied) if self.if_address_port_or_node => {
                write!(
                    f,
                    "allowed for a pod with {a}, but only if an ipBlock matches (its address, or the other end's when unknown), it gives a container port the name a rule uses, or it runs on that node"
                )?;
                match denied {
                    Some(d) if d != a => write!(f, "; not for certain for one with {d}"),
                    _ => Ok(()),
                }
            }
            (Some(_), None) => {
                f.write_str("every pod created there is allowed, whatever its labels")
            }
            (Some(a), Some(d)) => {
                write!(
                    f,
                    "allowed for a pod with {a}; not for certain for one with {d}"
                )
            }
        }
    }
}

/// How far a condition holds for a pod created later, beyond its labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tri {
    /// Never.
    No,
    /// For some addresses or container ports only.
    Maybe,
    /// Whatever its address and ports.
    Yes,
}

/// "Labels satisfy `sel` (`None`: any labels) ⇒ the condition holds this far."
#[derive(Clone, Copy)]
struct Term<'s> {
    sel: Option<&'s Selector>,
    tri: Tri,
}

/// One side's condition on the labels of the pod created later.
struct Condition<'s> {
    /// Terms, any of which makes the side allow (to its `tri`).
    terms: Vec<Term<'s>>,
    /// Selectors the labels must avoid for the "unselected" term (own side:
    /// every isolating policy), which then holds for certain.
    unselected: Option<Vec<&'s Selector>>,
    /// For the own side: each isolating policy's selector and how far it
    /// allows, to find labels some policy selects and no certain one does.
    selected_by: Vec<Term<'s>>,
}

/// Judges a connection one of whose ends is [`Endpoint::Future`].
pub fn evaluate(
    state: &State,
    src: &Endpoint<'_>,
    dst: &Endpoint<'_>,
    proto: Protocol,
    port: u16,
) -> Verdict {
    let undecided = |why: String| Verdict {
        allowed: false,
        decision: Decision::DependsOnPod,
        exception: None,
        egress: None,
        ingress: None,
        future: Some(FutureNote {
            undecided: Some(why),
            ..FutureNote::default()
        }),
    };
    let (ns, other, future_is_src) = match (src, dst) {
        (Endpoint::Future { namespace: a }, Endpoint::Future { namespace: b }) => {
            return undecided(format!(
                "both ends are pods created later ({a}/*, {b}/*): not judged one against the other (tierguard check judges every such pair against the isolation policy)"
            ));
        }
        (Endpoint::Future { namespace }, other) => (*namespace, other, true),
        (other, Endpoint::Future { namespace }) => (*namespace, other, false),
        _ => return undecided("neither end is a pod created later".into()),
    };
    if state.has_cluster_policies() {
        return undecided(format!(
            "{ns}/* with cluster policies (ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy): pods created later are not yet judged tier by tier; query a concrete pod (tierguard check judges every pod that could exist)"
        ));
    }
    let budget = Budget::new(FUTURE_BUDGET);
    match judge(state, ns, other, future_is_src, proto, port, &budget) {
        Ok((decision, note)) => Verdict {
            allowed: decision == Decision::Allowed,
            decision,
            exception: None,
            egress: None,
            ingress: None,
            future: Some(note),
        },
        Err(e) => undecided(format!("not decided: {e}")),
    }
}

fn judge(
    state: &State,
    ns: &str,
    other: &Endpoint<'_>,
    future_is_src: bool,
    proto: Protocol,
    port: u16,
    budget: &Budget,
) -> Result<(Decision, FutureNote), Exhausted> {
    let own = own_side(state, ns, other, future_is_src, proto, port);
    let theirs = other_side(state, ns, other, future_is_src, proto, port);
    // A pod created later on the node it connects with passes whatever the
    // policies say (and only such a pod: another node's address is judged).
    let node = matches!(other, Endpoint::Node { .. });

    let mut note = FutureNote::default();
    let certain = allowed_for_some(&own, &theirs, Tri::Yes, budget)?;
    let maybe = match &certain {
        Some(w) => Some(w.clone()),
        None => allowed_for_some(&own, &theirs, Tri::Maybe, budget)?,
    };
    let denied = not_certain_for_some(&own, budget)?.or(not_certain_for_some(&theirs, budget)?);
    note.denied_with = denied.as_ref().map(describe_witness);
    let decision = match (&certain, &maybe, &denied) {
        (Some(_), _, None) => Decision::Allowed,
        (Some(w), _, Some(_)) => {
            note.allowed_with = Some(describe_witness(w));
            Decision::DependsOnPod
        }
        (None, Some(w), _) => {
            note.allowed_with = Some(describe_witness(w));
            note.if_address_port_or_node = true;
            Decision::DependsOnPod
        }
        (None, None, _) if node => {
            note.allowed_with = Some(describe_witness(&Witness::new()));
            note.if_address_port_or_node = true;
            Decision::DependsOnPod
        }
        (None, None, _) => Decision::Denied,
    };
    Ok((decision, note))
}

/// Labels some pod created later may carry for which both sides allow, to
/// at least `at_least`.
fn allowed_for_some(
    own: &Condition<'_>,
    theirs: &Condition<'_>,
    at_least: Tri,
    budget: &Budget,
) -> Result<Option<Witness>, Exhausted> {
    let own_terms: Vec<(Vec<&Selector>, Vec<&Selector>)> = own
        .unselected
        .iter()
        .map(|none| (Vec::new(), none.clone()))
        .chain(
            own.terms
                .iter()
                .filter(|t| t.tri >= at_least)
                .map(|t| (t.sel.into_iter().collect(), Vec::new())),
        )
        .collect();
    let their_terms: Vec<(Vec<&Selector>, Vec<&Selector>)> = theirs
        .unselected
        .iter()
        .map(|none| (Vec::new(), none.clone()))
        .chain(
            theirs
                .terms
                .iter()
                .filter(|t| t.tri >= at_least)
                .map(|t| (t.sel.into_iter().collect(), Vec::new())),
        )
        .collect();
    for (a_all, a_none) in &own_terms {
        for (b_all, b_none) in &their_terms {
            let all: Vec<&Selector> = a_all.iter().chain(b_all).copied().collect();
            let none: Vec<&Selector> = a_none.iter().chain(b_none).copied().collect();
            if let Some(w) = solve(&all, &none, &FreeLabels, budget)? {
                return Ok(Some(w));
            }
        }
    }
    Ok(None)
}

/// Labels for which the side does not allow for certain, if any.
fn not_certain_for_some(
    side: &Condition<'_>,
    budget: &Budget,
) -> Result<Option<Witness>, Exhausted> {
    let certain = side.terms.iter().filter(|t| t.tri == Tri::Yes);
    if certain.clone().any(|t| t.sel.is_none()) {
        return Ok(None);
    }
    let certain: Vec<&Selector> = certain.filter_map(|t| t.sel).collect();
    if side.unselected.is_some() {
        // Own side: selected by some policy, and by none that allows for certain.
        for t in side.selected_by.iter().filter(|t| t.tri < Tri::Yes) {
            let all: Vec<&Selector> = t.sel.into_iter().collect();
            if let Some(w) = solve(&all, &certain, &FreeLabels, budget)? {
                return Ok(Some(w));
            }
        }
        return Ok(None);
    }
    // The other end's side: when isolated, labels no certain term matches.
    if side.selected_by.is_empty() {
        return Ok(None);
    }
    solve(&[], &certain, &FreeLabels, budget)
}

/// The pod created later's own side: `ns`'s policies isolating it for the
/// direction of the connection it makes or takes.
fn own_side<'s>(
    state: &'s State,
    ns: &str,
    other: &Endpoint<'_>,
    future_is_src: bool,
    proto: Protocol,
    port: u16,
) -> Condition<'s> {
    let dir = if future_is_src {
        Direction::Egress
    } else {
        Direction::Ingress
    };
    let mut selected_by = Vec::new();
    for pol in state.policies_in(ns) {
        let Some(rules) = pol.rules(dir) else {
            continue;
        };
        let mut tri = rules
            .iter()
            .map(|r| {
                let ports = port_tri(r, proto, port, future_is_src, other);
                ports.min(own_peer_tri(state, pol, r, other))
            })
            .max()
            .unwrap_or(Tri::No);
        // Blocks of several rules may hold every address of the other end
        // together (its address unknown), as `reach` combines them.
        if tri < Tri::Yes {
            let union = rules
                .iter()
                .filter(|r| port_tri(r, proto, port, future_is_src, other) == Tri::Yes)
                .filter_map(|r| match peers_match(state, pol, r, other) {
                    PeerMatch::IfAddressIn(blocks) => Some(blocks),
                    _ => None,
                })
                .flatten()
                .fold(super::ipblock::IpSet::default(), |acc, b| {
                    acc.union(&b.to_set())
                });
            if union.covers_ipv4() && union.covers_ipv6() {
                tri = Tri::Yes;
            }
        }
        selected_by.push(Term {
            sel: Some(&pol.pod_selector),
            tri,
        });
    }
    Condition {
        terms: selected_by
            .iter()
            .filter(|t| t.tri > Tri::No)
            .copied()
            .collect(),
        unselected: Some(selected_by.iter().filter_map(|t| t.sel).collect()),
        selected_by,
    }
}

/// How far a rule of the pod created later's own policy matches the other
/// (existing) end.
fn own_peer_tri(state: &State, pol: &Policy, r: &Rule, other: &Endpoint<'_>) -> Tri {
    match peers_match(state, pol, r, other) {
        PeerMatch::Yes(_) => Tri::Yes,
        PeerMatch::IfAddressIn(blocks) => {
            let union = blocks
                .iter()
                .fold(super::ipblock::IpSet::default(), |acc, b| {
                    acc.union(&b.to_set())
                });
            if union.covers_ipv4() && union.covers_ipv6() {
                Tri::Yes
            } else if union.is_empty() {
                Tri::No
            } else {
                Tri::Maybe
            }
        }
        PeerMatch::No => Tri::No,
    }
}

/// How far a rule's ports match, for either side's rules: named ports
/// resolve on the destination — the existing end when the pod created later
/// is the source, else the pod created later, which may bind a name to any
/// number.
fn port_tri(
    r: &Rule,
    proto: Protocol,
    port: u16,
    future_is_src: bool,
    other: &Endpoint<'_>,
) -> Tri {
    let Some(entries) = &r.ports else {
        return Tri::Yes;
    };
    let dst_ports = match other {
        Endpoint::Pod(p) if future_is_src => Some(p.ports.as_slice()),
        _ => None,
    };
    entries
        .iter()
        .map(|m| match &m.numbers {
            PortNumbers::Named(_) if !future_is_src => {
                if m.protocol == proto {
                    Tri::Maybe
                } else {
                    Tri::No
                }
            }
            _ if m.matches(proto, port, dst_ports) => Tri::Yes,
            _ => Tri::No,
        })
        .max()
        .unwrap_or(Tri::No)
}

/// The existing end's side: how its isolating policies' rules can match a
/// pod created later in `ns`.
fn other_side<'s>(
    state: &'s State,
    ns: &str,
    other: &Endpoint<'s>,
    future_is_src: bool,
    proto: Protocol,
    port: u16,
) -> Condition<'s> {
    let Endpoint::Pod(pod) = other else {
        // Nodes and hosts outside the cluster have no policies.
        return Condition {
            terms: vec![Term {
                sel: None,
                tri: Tri::Yes,
            }],
            unselected: None,
            selected_by: Vec::new(),
        };
    };
    let dir = if future_is_src {
        Direction::Ingress
    } else {
        Direction::Egress
    };
    let mut terms = Vec::new();
    let mut isolating = Vec::new();
    // The blocks of rules whose ports match for certain: together they may
    // hold every address (`0.0.0.0/0` in one peer, `::/0` in another).
    let mut certain_blocks = super::ipblock::IpSet::default();
    for pol in isolating_policies(state, pod) {
        let Some(rules) = pol.rules(dir) else {
            continue;
        };
        isolating.push(Term {
            sel: Some(&pol.pod_selector),
            tri: Tri::No,
        });
        for r in rules {
            // Named ports resolve on the destination: the existing pod when
            // the pod created later connects to it.
            let ports = port_tri(r, proto, port, future_is_src, other);
            if ports == Tri::No {
                continue;
            }
            let Some(peers) = &r.peers else {
                terms.push(Term {
                    sel: None,
                    tri: ports,
                });
                continue;
            };
            for peer in peers {
                match peer {
                    Peer::Pods { namespaces, pods } => {
                        let ns_ok = match namespaces {
                            None => ns == pol.namespace,
                            Some(sel) => {
                                state.namespace(ns).is_some_and(|n| sel.matches(&n.labels))
                            }
                        };
                        if ns_ok {
                            terms.push(Term {
                                sel: pods.as_ref(),
                                tri: ports,
                            });
                        }
                    }
                    Peer::IpBlock(b) => {
                        let set = b.to_set();
                        if ports == Tri::Yes {
                            certain_blocks = certain_blocks.union(&set);
                        }
                        let tri = if set.covers_ipv4() && set.covers_ipv6() {
                            ports
                        } else if set.is_empty() {
                            Tri::No
                        } else {
                            ports.min(Tri::Maybe)
                        };
                        terms.push(Term { sel: None, tri });
                    }
                }
            }
        }
    }
    if isolating.is_empty() || (certain_blocks.covers_ipv4() && certain_blocks.covers_ipv6()) {
        terms.push(Term {
            sel: None,
            tri: Tri::Yes,
        });
    }
    Condition {
        terms,
        unselected: None,
        selected_by: isolating,
    }
}

fn isolating_policies<'s>(state: &'s State, pod: &'s Pod) -> impl Iterator<Item = &'s Policy> {
    state
        .policies_in(&pod.namespace)
        .filter(move |pol| pol.pod_selector.matches(&pod.labels))
        .map(|p| p.as_ref())
}
