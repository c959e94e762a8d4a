//! The shapes (A, B, C of the parent's docs) one wall and one other end are
//! searched for: each cause's term and the clauses the rules before it add.

use super::frame::{Clause, Lit, Space, Term};
use crate::engine::cluster::{Action, ClusterPeer, ClusterPolicy, ClusterRule, Subject};
use crate::engine::ipblock::IpSet;
use crate::engine::isolation::reps::{Rep, RepName, RepSpace};
use crate::engine::isolation::{Cause, Checker, Note};
use crate::engine::policy::{Direction, Peer, Policy};
use crate::engine::ports::{PortMatch, PortNumbers, PortSet};
use crate::engine::selector::{FreeLabels, Selector, satisfiable};
use crate::engine::state::{METADATA_NAME_LABEL, NAME_LABEL, Namespace};

/// The other end of the wall's connections, one kind per search.
#[derive(Clone, Copy)]
pub(super) enum Kind<'r> {
    /// A pod in a namespace standing for `rep`.
    Pod(&'r Rep),
    /// A host that is not a pod (outside the cluster, or a node).
    Host,
}

/// One cause's search: its term, and what it takes from the rules before it.
pub(super) struct Shape<'a> {
    pub(super) cause: Cause,
    pub(super) term: Term<'a>,
    pub(super) clauses: Vec<Clause<'a>>,
    pub(super) notes: Vec<Note>,
}

/// True when a policy's subject may hold pods of the namespace `space`
/// stands for.
pub(super) fn subject_may_hold(p: &ClusterPolicy, space: &RepSpace<'_>) -> bool {
    let (ns, pods) = p.subject_selectors();
    satisfiable(&[ns], space) && pods.is_none_or(|s| satisfiable(&[s], &FreeLabels))
}

/// What the shapes of one wall and one other end are built from.
pub(super) struct Ctx<'c, 'r> {
    pub(super) checker: &'r Checker<'c>,
    pub(super) wall: &'r Namespace,
    pub(super) dir: Direction,
    pub(super) kind: Kind<'r>,
}

impl<'c, 'r> Ctx<'c, 'r> {
    /// The causes to search, with what each needs (module docs: A, B, C).
    pub(super) fn shapes<'a>(
        &self,
        admin: &[&'a ClusterPolicy],
        baseline: &[&'a ClusterPolicy],
        nps: &[&'a Policy],
    ) -> Vec<Shape<'a>>
    where
        'r: 'a,
    {
        let mut out = Vec::new();
        let dir = self.dir;
        // A: an Admin Accept decides.
        out.extend(self.deciding(admin, Action::Accept));
        let passes = self.passes(admin);
        let unselected: Term<'a> = nps
            .iter()
            .map(|p| (false, Lit::Sel(Space::Pod, &p.pod_selector)))
            .collect();
        for (pass_term, pass_clauses) in &passes {
            let with_pass = |mut s: Shape<'a>| {
                s.term.extend(pass_term.iter().cloned());
                s.clauses.extend(pass_clauses.iter().cloned());
                s
            };
            // B: a NetworkPolicy rule allows.
            for pol in nps {
                for rule in pol.rules(dir).unwrap_or_default() {
                    let rule_ref = pol.rule_ref(dir, rule.index);
                    let pod = (true, Lit::Sel(Space::Pod, &pol.pod_selector));
                    for port in self.port_alternatives(rule.ports.as_deref()) {
                        let peers: Vec<(Option<String>, Term<'a>, Vec<Note>)> = match &rule.peers {
                            None => vec![(None, Vec::new(), Vec::new())],
                            Some(ps) => ps
                                .iter()
                                .filter_map(|p| {
                                    self.np_peer(&pol.namespace, p)
                                        .map(|(t, n)| (Some(p.to_string()), t, n))
                                })
                                .collect(),
                        };
                        for (desc, peer_term, notes) in peers {
                            let mut term = vec![pod.clone()];
                            term.extend(peer_term);
                            term.extend(port.iter().cloned());
                            out.push(with_pass(Shape {
                                cause: Cause::Rule {
                                    rule: rule_ref.clone(),
                                    peer: desc,
                                },
                                term,
                                clauses: Vec::new(),
                                notes,
                            }));
                        }
                    }
                }
            }
            // C: no NetworkPolicy isolates the pod, and the Baseline tier
            // accepts or passes.
            for mut s in self.deciding(baseline, Action::Accept) {
                s.term.extend(unselected.iter().cloned());
                out.push(with_pass(s));
            }
            for (term, clauses) in self.passes(baseline) {
                let mut t = unselected.clone();
                t.extend(term);
                out.push(with_pass(Shape {
                    cause: Cause::Unisolated {
                        pods: String::new(),
                    },
                    term: t,
                    clauses,
                    notes: Vec::new(),
                }));
            }
        }
        out
    }

    /// A shape per rule term of `tier` with `action`: that rule matches and
    /// none before it does.
    pub(super) fn deciding<'a>(&self, tier: &[&'a ClusterPolicy], action: Action) -> Vec<Shape<'a>>
    where
        'r: 'a,
    {
        let mut out = Vec::new();
        for pol in tier {
            for rule in pol.rules(self.dir).iter().filter(|r| r.action == action) {
                let clauses = self.negations(tier, Some((pol, rule.index)));
                let mut notes = Vec::new();
                let peers_at_par: Vec<String> = tier
                    .iter()
                    .filter(|q| q.unordered_with(pol))
                    .map(|q| q.key())
                    .collect();
                if !peers_at_par.is_empty() {
                    notes.push(Note::EqualPriority {
                        policy: pol.key(),
                        priority: pol.priority,
                        others: peers_at_par,
                    });
                }
                for (desc, term, mut n) in self.rule_terms(pol, rule) {
                    n.extend(notes.iter().cloned());
                    out.push(Shape {
                        cause: Cause::ClusterRule {
                            rule: pol.rule_ref(self.dir, rule),
                            peer: desc,
                        },
                        term,
                        clauses: clauses.clone(),
                        notes: n,
                    });
                }
            }
        }
        out
    }

    /// "The tier passes" (its first matching rule is a Pass, or none
    /// matches), as alternatives: no Accept or Deny rule matches; or a Pass
    /// rule that may come before some Accept or Deny rule decides. Every
    /// way to pass is one of these (if an Accept or Deny rule matches, a
    /// Pass before it decided), and each passes; Pass rules after every
    /// Accept and Deny add nothing to the first.
    fn passes<'a>(&self, tier: &[&'a ClusterPolicy]) -> Vec<(Term<'a>, Vec<Clause<'a>>)>
    where
        'r: 'a,
    {
        let dir = self.dir;
        let deciders: Vec<(&ClusterPolicy, &ClusterRule)> = tier
            .iter()
            .flat_map(|p| {
                p.rules(dir)
                    .iter()
                    .filter(|r| r.action != Action::Pass)
                    .map(move |r| (*p, r))
            })
            .collect();
        let mut out = vec![(
            Vec::new(),
            self.clauses_of(tier, |_, r| r.action != Action::Pass),
        )];
        let may_precede = |p: &ClusterPolicy, r: &ClusterRule| {
            deciders.iter().any(|(q, d)| {
                if q.key() == p.key() {
                    r.index < d.index
                } else {
                    !q.surely_before(p)
                }
            })
        };
        for pol in tier {
            for rule in pol.rules(dir) {
                if rule.action != Action::Pass || !may_precede(pol, rule) {
                    continue;
                }
                let before = self.negations(tier, Some((pol, rule.index)));
                for (_, term, _) in self.rule_terms(pol, rule) {
                    out.push((term, before.clone()));
                }
            }
        }
        out
    }

    /// One clause per rule term of the rules of `tier` that `keep` keeps:
    /// "none of them matches".
    fn clauses_of<'a>(
        &self,
        tier: &[&'a ClusterPolicy],
        keep: impl Fn(&ClusterPolicy, &ClusterRule) -> bool,
    ) -> Vec<Clause<'a>>
    where
        'r: 'a,
    {
        let mut out = Vec::new();
        for pol in tier {
            for rule in pol.rules(self.dir).iter().filter(|r| keep(pol, r)) {
                for (_, term, _) in self.rule_terms(pol, rule) {
                    out.push(term.into_iter().map(|(pos, l)| (!pos, l)).collect());
                }
            }
        }
        out
    }

    /// "No rule of `tier` before `until` matches" (every rule, without
    /// `until`): one clause per rule term.
    pub(super) fn negations<'a>(
        &self,
        tier: &[&'a ClusterPolicy],
        until: Option<(&ClusterPolicy, usize)>,
    ) -> Vec<Clause<'a>>
    where
        'r: 'a,
    {
        self.clauses_of(tier, |pol, rule| match until {
            None => true,
            Some((u, index)) if u.key() == pol.key() => rule.index < index,
            Some((u, _)) => pol.surely_before(u),
        })
    }

    /// The terms of one cluster rule: subject ∧ one peer ∧ one port entry.
    pub(super) fn rule_terms<'a>(
        &self,
        pol: &'a ClusterPolicy,
        rule: &'a ClusterRule,
    ) -> Vec<(String, Term<'a>, Vec<Note>)>
    where
        'r: 'a,
    {
        let mut subject: Term<'a> = Vec::new();
        match &pol.subject {
            Subject::Namespaces(ns) => subject.push((true, Lit::Sel(Space::PodNs, ns))),
            Subject::Pods { namespaces, pods } => {
                subject.push((true, Lit::Sel(Space::PodNs, namespaces)));
                subject.push((true, Lit::Sel(Space::Pod, pods)));
            }
        }
        let mut out = Vec::new();
        for peer in &rule.peers {
            let Some((peer_term, notes)) = self.cluster_peer(peer) else {
                continue;
            };
            for port in self.port_alternatives(rule.ports.as_deref()) {
                let mut t = subject.clone();
                t.extend(peer_term.iter().cloned());
                t.extend(port);
                out.push((peer.to_string(), t, notes.clone()));
            }
        }
        out
    }

    /// A cluster rule's peer as literals on the other end (`None`: it cannot
    /// be this kind of end).
    pub(super) fn cluster_peer<'a>(&self, peer: &'a ClusterPeer) -> Option<(Term<'a>, Vec<Note>)> {
        let pod = matches!(self.kind, Kind::Pod(_));
        let mut notes = Vec::new();
        let term = match peer {
            ClusterPeer::Namespaces(ns) if pod => {
                notes.extend(self.unprotected(ns));
                vec![(true, Lit::Sel(Space::OtherNs, ns))]
            }
            ClusterPeer::Pods { namespaces, pods } if pod => {
                notes.extend(self.unprotected(namespaces));
                vec![
                    (true, Lit::Sel(Space::OtherNs, namespaces)),
                    (true, Lit::Sel(Space::Other, pods)),
                ]
            }
            ClusterPeer::Networks { set, .. } => {
                if pod {
                    notes.push(Note::IpBlockMatchesPods {
                        block: peer.to_string(),
                        cluster_declared: self.checker.cluster.is_some(),
                    });
                }
                vec![(true, Lit::Ip(set.clone()))]
            }
            ClusterPeer::Nodes(sel) if !pod => {
                let mut t = vec![(true, Lit::Sel(Space::Node, sel))];
                if self.checker.iso.node_cidrs.is_empty() {
                    // Any address may be a node's.
                    t.push((true, Lit::Unknown));
                } else {
                    t.push((
                        true,
                        Lit::Ip(IpSet::from_cidrs(&self.checker.iso.node_cidrs)),
                    ));
                }
                t
            }
            ClusterPeer::DomainNames(_) if !pod => vec![(true, Lit::Unknown)],
            _ => return None,
        };
        Some((term, notes))
    }

    /// A NetworkPolicy peer as literals on the other end.
    pub(super) fn np_peer<'a>(
        &self,
        policy_ns: &str,
        peer: &'a Peer,
    ) -> Option<(Term<'a>, Vec<Note>)> {
        match (peer, self.kind) {
            (Peer::Pods { namespaces, pods }, Kind::Pod(rep)) => {
                let mut t = Vec::new();
                let mut notes = Vec::new();
                match namespaces {
                    None => {
                        let same = rep.existing
                            && rep.name == RepName::Known(policy_ns.to_string())
                            && policy_ns == self.wall.name;
                        if !same {
                            return None;
                        }
                    }
                    Some(s) => {
                        notes.extend(self.unprotected(s));
                        t.push((true, Lit::Sel(Space::OtherNs, s)));
                    }
                }
                if let Some(p) = pods {
                    t.push((true, Lit::Sel(Space::Other, p)));
                }
                Some((t, notes))
            }
            (Peer::Pods { .. }, Kind::Host) => None,
            (Peer::IpBlock(b), kind) => {
                let notes = match kind {
                    Kind::Pod(_) => vec![Note::IpBlockMatchesPods {
                        block: b.to_string(),
                        cluster_declared: self.checker.cluster.is_some(),
                    }],
                    Kind::Host => Vec::new(),
                };
                Some((vec![(true, Lit::Ip(b.to_set()))], notes))
            }
        }
    }

    /// The alternatives of a `ports` list: numbers and ranges together, and
    /// each named port alone (a name binds only on a pod destination).
    pub(super) fn port_alternatives<'a>(&self, ports: Option<&'a [PortMatch]>) -> Vec<Term<'a>> {
        let Some(list) = ports else {
            return vec![Vec::new()];
        };
        let dst_is_pod = match self.dir {
            Direction::Ingress => true,
            Direction::Egress => matches!(self.kind, Kind::Pod(_)),
        };
        let mut numbers = PortSet::none();
        let mut out = Vec::new();
        for m in list {
            match &m.numbers {
                PortNumbers::Named(name) if dst_is_pod => {
                    out.push(vec![(true, Lit::Named(m.protocol, name.as_str()))])
                }
                PortNumbers::Named(_) => {}
                _ => numbers = numbers.union(&m.possible(false)),
            }
        }
        if !numbers.is_empty() {
            out.insert(0, vec![(true, Lit::Ports(numbers))]);
        }
        out
    }

    /// The note for a namespace selector on labels anyone may set.
    pub(super) fn unprotected(&self, sel: &Selector) -> Option<Note> {
        let tier_label = &self.checker.iso.tier_label;
        let keys: Vec<String> = sel
            .requirements()
            .iter()
            .map(|r| r.key.clone())
            .filter(|k| k != METADATA_NAME_LABEL && k != NAME_LABEL && k != tier_label)
            .collect();
        (!keys.is_empty()).then(|| Note::UnprotectedNamespaceLabels {
            selector: sel.to_string(),
            keys,
            tier_label: tier_label.clone(),
        })
    }
}
