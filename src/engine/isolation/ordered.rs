//! One wall under cluster-wide tiers (fact 4 of the module docs): rules are
//! no longer a union, because a `Deny` or `Pass` that matches first takes a
//! connection away from every rule after it.
//!
//! A connection through the wall is described by five label sets (the pod,
//! its namespace, the other end's pod and namespace, and the other end's
//! node labels when it is a node), the other end's address and the port.
//! "Rule r decides" is then a conjunction of literals over those (r matches)
//! with the negation of every rule before it (each a clause: one of its
//! literals fails). A breach has one of three shapes:
//!
//! ```text
//!  A  an Admin Accept decides
//!  B  the Admin tier passes (a Pass decides, or nothing matches) ∧ a NetworkPolicy rule allows
//!  C  the Admin tier passes ∧ no NetworkPolicy isolates the pod
//!       ∧ (a Baseline Accept decides, or the Baseline tier passes: allowed by default)
//! ```
//!
//! Each shape is searched with an explicit stack over the clauses, one
//! clause's literal at a time; a branch ends when a label set has no
//! solution ([`solve`]), the address or port set is empty, or a named port
//! must both be and not be bound. The ports of every surviving branch are
//! the ports the cause opens, exactly: labels, addresses and ports are
//! independent, so each surviving port has a witness. Policies of one tier
//! at equal priority are unordered: a rule is only preceded by the rules of
//! policies with a lower priority and its own policy's earlier rules, so
//! every order the implementation may pick is judged.

use std::collections::BTreeSet;

use super::reps::{Rep, RepName, RepSpace};
use super::walls::Breaches;
use super::{Cause, Checker, Note};
use crate::engine::cluster::{
    Action, ClusterPeer, ClusterPolicy, ClusterRule, Subject, Tier, in_order,
};
use crate::engine::ipblock::IpSet;
use crate::engine::policy::{Direction, Peer, Policy};
use crate::engine::ports::{PortMatch, PortNumbers, PortSet, Protocol};
use crate::engine::selector::{
    Exhausted, FreeLabels, LabelSpace, Selector, Witness, describe_witness, satisfiable, solve,
};
use crate::engine::state::{METADATA_NAME_LABEL, NAME_LABEL, Namespace};
use crate::engine::tiers::Party;

/// The label sets of a connection through a wall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Space {
    /// The wall's pod.
    Pod = 0,
    /// Its namespace.
    PodNs = 1,
    /// The pod at the other end.
    Other = 2,
    /// Its namespace.
    OtherNs = 3,
    /// The other end as a node.
    Node = 4,
}

#[derive(Clone, Debug)]
enum Lit<'a> {
    Sel(Space, &'a Selector),
    Ip(IpSet),
    Ports(PortSet),
    /// The destination binds this name to the port.
    Named(Protocol, &'a str),
    /// Cannot be decided (a DNS name): true, and its negation too.
    Unknown,
}

/// A conjunction of (polarity, literal); empty is true.
type Term<'a> = Vec<(bool, Lit<'a>)>;

/// A disjunction of single negated literals: one rule term that must fail.
type Clause<'a> = Vec<(bool, Lit<'a>)>;

#[derive(Clone, Debug)]
struct Frame<'a> {
    all: [Vec<&'a Selector>; 5],
    none: [Vec<&'a Selector>; 5],
    ip: IpSet,
    ports: PortSet,
    bound: Vec<(Protocol, &'a str)>,
    unbound: Vec<(Protocol, &'a str)>,
}

impl<'a> Frame<'a> {
    fn apply(&mut self, (pos, lit): &(bool, Lit<'a>)) {
        match lit {
            Lit::Sel(sp, s) if *pos => self.all[*sp as usize].push(s),
            Lit::Sel(sp, s) => self.none[*sp as usize].push(s),
            Lit::Ip(set) if *pos => self.ip = self.ip.intersect(set),
            Lit::Ip(set) => self.ip = self.ip.difference(set),
            Lit::Ports(set) if *pos => self.ports = self.ports.intersect(set),
            Lit::Ports(set) => self.ports = self.ports.difference(set),
            Lit::Named(proto, name) if *pos => {
                self.bound.push((*proto, name));
                self.ports = self.ports.intersect(&PortSet::proto_all(*proto));
            }
            Lit::Named(proto, name) => self.unbound.push((*proto, name)),
            Lit::Unknown => {}
        }
    }

    /// True when a negated literal already holds here, so its clause needs
    /// no branch.
    fn holds(&self, (pos, lit): &(bool, Lit<'a>), spaces: &[&dyn LabelSpace; 5]) -> bool {
        if *pos {
            return false;
        }
        match lit {
            Lit::Sel(sp, s) => {
                let mut all = self.all[*sp as usize].clone();
                all.push(s);
                !satisfiable(&all, spaces[*sp as usize])
            }
            Lit::Ip(set) => !self.ip.overlaps(set),
            Lit::Ports(set) => self.ports.intersect(set).is_empty(),
            Lit::Named(proto, _) => self.ports.ports(*proto).is_empty(),
            Lit::Unknown => true,
        }
    }

    fn cheap_ok(&self) -> bool {
        !self.ip.is_empty()
            && !self.ports.is_empty()
            && !self.bound.iter().any(|b| self.unbound.contains(b))
    }
}

/// The other end of the wall's connections, one kind per search.
#[derive(Clone, Copy)]
enum Kind<'r> {
    /// A pod in a namespace standing for `rep`.
    Pod(&'r Rep),
    /// A host that is not a pod (outside the cluster, or a node).
    Host,
}

/// One cause's search: its term, and what it takes from the rules before it.
struct Shape<'a> {
    cause: Cause,
    term: Term<'a>,
    clauses: Vec<Clause<'a>>,
    notes: Vec<Note>,
}

impl<'c> Checker<'c> {
    /// True when some cluster policy's subject may hold pods of `ns`: its
    /// walls are then judged tier by tier.
    pub(super) fn under_cluster_tiers(&self, ns: &Namespace) -> bool {
        let rep = self.existing_rep(ns);
        let space = RepSpace {
            rep: &rep,
            tier_label: &self.iso.tier_label,
        };
        self.state
            .cluster_policies()
            .any(|p| subject_may_hold(p, &space))
    }

    /// One wall of `ns` under the cluster tiers, with `policies` (all of its
    /// NetworkPolicies).
    pub(super) fn ordered_wall(
        &self,
        ns: &Namespace,
        policies: &[&Policy],
        dir: Direction,
    ) -> Result<Breaches, Exhausted> {
        let wall_rep = self.existing_rep(ns);
        let wall_space = RepSpace {
            rep: &wall_rep,
            tier_label: &self.iso.tier_label,
        };
        let applying = |tier| -> Vec<&ClusterPolicy> {
            in_order(self.state.cluster_policies().map(AsRef::as_ref), tier)
                .into_iter()
                .filter(|p| subject_may_hold(p, &wall_space))
                .collect()
        };
        let admin = applying(Tier::Admin);
        let baseline = applying(Tier::Baseline);
        let nps: Vec<&Policy> = policies
            .iter()
            .copied()
            .filter(|p| p.rules(dir).is_some())
            .collect();
        let mut breaches = Breaches::new();
        let reps = self.other_reps(ns, &admin, &baseline, &nps, dir);
        let kinds = reps.iter().map(Kind::Pod).chain([Kind::Host]);
        for kind in kinds {
            let (party, rep) = match kind {
                Kind::Pod(r) => (r.party.clone(), Some(r)),
                Kind::Host => (Party::External, None),
            };
            let allowed = self.iso.allowed_across(&wall_rep.party, &party, dir);
            let forbidden = PortSet::all().difference(&allowed);
            if forbidden.is_empty() {
                continue;
            }
            let other_space: Box<dyn LabelSpace + '_> = match kind {
                Kind::Pod(r) => Box::new(RepSpace {
                    rep: r,
                    tier_label: &self.iso.tier_label,
                }),
                Kind::Host => Box::new(FreeLabels),
            };
            let spaces: [&dyn LabelSpace; 5] = [
                &FreeLabels,
                &wall_space,
                &FreeLabels,
                other_space.as_ref(),
                &FreeLabels,
            ];
            let start = Frame {
                all: Default::default(),
                none: Default::default(),
                ip: self.addresses_of(kind),
                ports: forbidden,
                bound: Vec::new(),
                unbound: Vec::new(),
            };
            let ctx = Ctx {
                checker: self,
                wall: ns,
                dir,
                kind,
            };
            for shape in ctx.shapes(&admin, &baseline, &nps) {
                let mut frame = start.clone();
                for lit in &shape.term {
                    frame.apply(lit);
                }
                let (ports, witness) = self.search(frame, &shape.clauses, &spaces)?;
                if ports.is_empty() {
                    continue;
                }
                let cause = match shape.cause {
                    Cause::Unisolated { .. } => Cause::Unisolated {
                        pods: witness.as_ref().map(describe_witness).unwrap_or_default(),
                    },
                    c => c,
                };
                self.record(
                    &mut breaches,
                    &wall_rep.party,
                    dir,
                    &party,
                    rep,
                    &ports,
                    cause,
                    &shape.notes,
                );
            }
        }
        Ok(breaches)
    }

    /// The addresses the other end may have.
    fn addresses_of(&self, kind: Kind<'_>) -> IpSet {
        match (&self.cluster, kind) {
            (None, _) => IpSet::everything(),
            (Some(c), Kind::Pod(_)) => c.clone(),
            (Some(c), Kind::Host) => IpSet::everything().difference(c),
        }
    }

    /// The namespaces a pod at the other end may be in, as representatives
    /// any of the rules' namespace selectors can tell apart.
    fn other_reps(
        &self,
        ns: &Namespace,
        admin: &[&ClusterPolicy],
        baseline: &[&ClusterPolicy],
        nps: &[&Policy],
        dir: Direction,
    ) -> Vec<Rep> {
        let mut sels: Vec<&Selector> = Vec::new();
        for pol in admin.iter().chain(baseline) {
            for rule in pol.rules(dir) {
                for peer in &rule.peers {
                    match peer {
                        ClusterPeer::Namespaces(s) | ClusterPeer::Pods { namespaces: s, .. } => {
                            sels.push(s)
                        }
                        _ => {}
                    }
                }
            }
        }
        for pol in nps {
            for rule in pol.rules(dir).unwrap_or_default() {
                for peer in rule.peers.iter().flatten() {
                    if let Peer::Pods {
                        namespaces: Some(s),
                        ..
                    } = peer
                    {
                        sels.push(s);
                    }
                }
            }
        }
        let mut seen = BTreeSet::new();
        let mut reps = Vec::new();
        let candidates = self
            .every_namespace()
            .iter()
            .cloned()
            .chain([self.existing_rep(ns)])
            .chain(sels.iter().flat_map(|s| self.matching_reps(s)));
        for r in candidates {
            if seen.insert(format!("{r:?}")) {
                reps.push(r);
            }
        }
        reps
    }

    /// Searches the clauses from `frame`: the union of the ports of every
    /// branch that survives, and the wall pod's labels in one of them.
    fn search<'a>(
        &self,
        frame: Frame<'a>,
        clauses: &[Clause<'a>],
        spaces: &[&dyn LabelSpace; 5],
    ) -> Result<(PortSet, Option<Witness>), Exhausted> {
        let mut found = PortSet::none();
        let mut witness = None;
        let mut stack = vec![(frame, 0usize)];
        while let Some((f, mut i)) = stack.pop() {
            self.budget.spend(1)?;
            if !f.cheap_ok() || f.ports.difference(&found).is_empty() {
                continue;
            }
            let mut labels_ok = true;
            let mut pod_witness = None;
            for (sp, space) in spaces.iter().enumerate() {
                match solve(&f.all[sp], &f.none[sp], *space, &self.budget)? {
                    Some(w) if sp == Space::Pod as usize => pod_witness = Some(w),
                    Some(_) => {}
                    None => {
                        labels_ok = false;
                        break;
                    }
                }
            }
            if !labels_ok {
                continue;
            }
            // Clauses that already hold need no branch.
            while i < clauses.len() && clauses[i].iter().any(|l| f.holds(l, spaces)) {
                self.budget.spend(1)?;
                i += 1;
            }
            let Some(clause) = clauses.get(i) else {
                found = found.union(&f.ports);
                witness = witness.or(pod_witness);
                continue;
            };
            for lit in clause {
                let mut g = f.clone();
                g.apply(lit);
                stack.push((g, i + 1));
            }
        }
        Ok((found, witness))
    }
}

/// True when a policy's subject may hold pods of the namespace `space`
/// stands for.
fn subject_may_hold(p: &ClusterPolicy, space: &RepSpace<'_>) -> bool {
    let (ns, pods) = p.subject_selectors();
    satisfiable(&[ns], space) && pods.is_none_or(|s| satisfiable(&[s], &FreeLabels))
}

/// What the shapes of one wall and one other end are built from.
struct Ctx<'c, 'r> {
    checker: &'r Checker<'c>,
    wall: &'r Namespace,
    dir: Direction,
    kind: Kind<'r>,
}

impl<'c, 'r> Ctx<'c, 'r> {
    /// The causes to search, with what each needs (module docs: A, B, C).
    fn shapes<'a>(
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
        // The Admin tier passes: nothing matches, or a Pass decides.
        let mut passes: Vec<(Term<'a>, Vec<Clause<'a>>)> =
            vec![(Vec::new(), self.negations(admin, None))];
        for s in self.deciding(admin, Action::Pass) {
            passes.push((s.term, s.clauses));
        }
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
            let mut base_passes = vec![(Vec::new(), self.negations(baseline, None))];
            for s in self.deciding(baseline, Action::Pass) {
                base_passes.push((s.term, s.clauses));
            }
            for (term, clauses) in base_passes {
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
    fn deciding<'a>(&self, tier: &[&'a ClusterPolicy], action: Action) -> Vec<Shape<'a>>
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
                    .filter(|q| q.priority == pol.priority && q.key() != pol.key())
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

    /// "No rule of `tier` before `until` matches" (every rule, without
    /// `until`): one clause per rule term.
    fn negations<'a>(
        &self,
        tier: &[&'a ClusterPolicy],
        until: Option<(&ClusterPolicy, usize)>,
    ) -> Vec<Clause<'a>>
    where
        'r: 'a,
    {
        let mut out = Vec::new();
        for pol in tier {
            for rule in pol.rules(self.dir) {
                let before = match until {
                    None => true,
                    Some((u, index)) if u.key() == pol.key() => rule.index < index,
                    Some((u, _)) => pol.priority < u.priority,
                };
                if !before {
                    continue;
                }
                for (_, term, _) in self.rule_terms(pol, rule) {
                    out.push(term.into_iter().map(|(pos, l)| (!pos, l)).collect());
                }
            }
        }
        out
    }

    /// The terms of one cluster rule: subject ∧ one peer ∧ one port entry.
    fn rule_terms<'a>(
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
    fn cluster_peer<'a>(&self, peer: &'a ClusterPeer) -> Option<(Term<'a>, Vec<Note>)> {
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
    fn np_peer<'a>(&self, policy_ns: &str, peer: &'a Peer) -> Option<(Term<'a>, Vec<Note>)> {
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
    fn port_alternatives<'a>(&self, ports: Option<&'a [PortMatch]>) -> Vec<Term<'a>> {
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
    fn unprotected(&self, sel: &Selector) -> Option<Note> {
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
