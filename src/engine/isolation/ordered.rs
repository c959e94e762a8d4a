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

mod frame;
mod shapes;

use std::collections::BTreeSet;

use self::frame::{Clause, Frame, Space, atoms};
use self::shapes::{Ctx, Kind, subject_may_hold};
use super::reps::{Rep, RepName, RepSpace};
use super::walls::Breaches;
use super::{Cause, Checker};
use crate::engine::cluster::{ClusterPeer, ClusterPolicy, Tier, in_order};
use crate::engine::ipblock::IpSet;
use crate::engine::policy::{Direction, Peer, Policy};
use crate::engine::ports::PortSet;
use crate::engine::selector::{
    Exhausted, FreeLabels, LabelSpace, Selector, Witness, describe_witness, solve,
};
use crate::engine::state::Namespace;
use crate::engine::tiers::Party;

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
                same_ns: matches!(kind, Kind::Pod(r) if r.existing && r.name == RepName::Known(ns.name.clone())),
            };
            let ctx = Ctx {
                checker: self,
                wall: ns,
                dir,
                kind,
            };
            for shape in ctx.shapes(&admin, &baseline, &nps) {
                // Ports and addresses fall into finitely many atoms under the
                // shape's sets; within one, every port and address literal is
                // a constant, so the search branches on labels only and stops
                // at its first solution.
                let (port_atoms, ip_atoms) = atoms(&start, &shape);
                let mut ports = PortSet::none();
                let mut witness = None;
                for pa in &port_atoms {
                    for ia in &ip_atoms {
                        if pa.difference(&ports).is_empty() {
                            break;
                        }
                        let mut frame = start.clone();
                        frame.ports = pa.clone();
                        frame.ip = ia.clone();
                        for lit in &shape.term {
                            frame.apply(lit);
                        }
                        let (p, w) = self.search(frame, &shape.clauses, &spaces)?;
                        ports = ports.union(&p);
                        witness = witness.or(w);
                    }
                }
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
            .chain(sels.iter().flat_map(|s| {
                let mut r = self.matching_reps(s);
                r.extend(self.mentioned_reps(s));
                r
            }));
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
            // Disjoint branches: the k-th takes its literal and the
            // negations of the ones before it, so no region of labels,
            // ports and addresses is searched twice (their union is the
            // clause's).
            let mut rest = f;
            for (pos, lit) in clause {
                let mut g = rest.clone();
                g.apply(&(*pos, lit.clone()));
                stack.push((g, i + 1));
                rest.apply(&(!*pos, lit.clone()));
            }
        }
        Ok((found, witness))
    }
}
