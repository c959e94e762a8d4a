//! One wall's breaches (fact 1 of the module docs): a wall lets a
//! connection through iff the pod is selected by no policy of that
//! direction, or some rule of a policy selecting it matches; so breaches are
//! found cause by cause, and turned into [`Breach`] values.

use std::collections::{BTreeMap, BTreeSet};

use super::reps::{Rep, RepName};
use super::{Breach, Cause, Checker, End, Note};
use crate::engine::ipblock::IpBlock;
use crate::engine::policy::{Direction, Peer, Policy};
use crate::engine::ports::{PortSet, possible_ports};
use crate::engine::selector::{
    Exhausted, FreeLabels, Selector, describe_witness, satisfiable, solve,
};
use crate::engine::state::{METADATA_NAME_LABEL, NAME_LABEL, Namespace};
use crate::engine::tiers::{Judge, Party};

/// Parties a peer matches, each with the namespace standing for it.
pub(super) type Hits = Vec<(Party, Option<Rep>)>;

/// Breaches of one wall, keyed by the party at the other end.
pub(super) type Breaches = BTreeMap<Party, Entry>;

#[derive(Clone, Debug, Default)]
pub(super) struct Entry {
    pub(super) ports: PortSet,
    pub(super) causes: BTreeMap<Cause, CauseInfo>,
    pub(super) examples: BTreeSet<String>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct CauseInfo {
    pub(super) ports: PortSet,
    /// Existing namespaces at the other end through which the cause applies;
    /// `open` when a namespace without policies (not created yet) can be it.
    pub(super) others: BTreeSet<String>,
    pub(super) open: bool,
    pub(super) notes: BTreeSet<Note>,
}

// === impl Checker: walls ===

impl Checker<'_> {
    /// Whether an ipBlock may match pods, and hosts outside the cluster.
    pub(super) fn block_reach(&self, block: &IpBlock) -> (bool, bool) {
        let set = block.to_set();
        match &self.cluster {
            None => (!set.is_empty(), !set.is_empty()),
            Some(c) => (set.overlaps(c), !set.difference(c).is_empty()),
        }
    }

    /// The parties (with the representative namespaces behind them) one
    /// peer of a rule in namespace `policy_ns` can match, and notes.
    fn peer_parties(&self, policy_ns: &str, peer: &Peer) -> (Vec<(Party, Option<Rep>)>, Vec<Note>) {
        let mut notes = Vec::new();
        let mut out = Vec::new();
        match peer {
            Peer::Pods { namespaces, pods } => {
                if let Some(ps) = pods
                    && !satisfiable(&[ps], &FreeLabels)
                {
                    return (out, notes);
                }
                match namespaces {
                    None => {
                        if let Some(ns) = self.state.namespace(policy_ns) {
                            let rep = self.existing_rep(ns);
                            out.push((rep.party.clone(), Some(rep)));
                        }
                    }
                    Some(sel) => {
                        let unprotected: Vec<&str> = sel
                            .requirements()
                            .iter()
                            .map(|r| r.key.as_str())
                            .filter(|k| {
                                *k != METADATA_NAME_LABEL
                                    && *k != NAME_LABEL
                                    && *k != self.iso.tier_label
                            })
                            .collect();
                        if !unprotected.is_empty() {
                            notes.push(Note::UnprotectedNamespaceLabels {
                                selector: sel.to_string(),
                                keys: unprotected.iter().map(|k| k.to_string()).collect(),
                                tier_label: self.iso.tier_label.clone(),
                            });
                        }
                        for rep in self.matching_reps(sel) {
                            out.push((rep.party.clone(), Some(rep)));
                        }
                    }
                }
            }
            Peer::IpBlock(b) => {
                let (pods, ext) = self.block_reach(b);
                if pods {
                    notes.push(Note::IpBlockMatchesPods {
                        block: b.to_string(),
                        cluster_declared: self.cluster.is_some(),
                    });
                    for rep in self.every_namespace() {
                        out.push((rep.party.clone(), Some(rep.clone())));
                    }
                }
                if ext {
                    out.push((Party::External, None));
                }
            }
        }
        (out, notes)
    }

    fn everyone(&self) -> Hits {
        let mut out: Hits = self
            .every_namespace()
            .iter()
            .map(|r| (r.party.clone(), Some(r.clone())))
            .collect();
        out.push((Party::External, None));
        out
    }

    /// The breaches of one wall of tier namespace `ns`: pods that
    /// `policies` (all of its policies) leave unselected, and the rules of
    /// `rules_of` (all of them, or the ones a change adds).
    fn wall(
        &self,
        ns: &Namespace,
        policies: &[&Policy],
        rules_of: &[&Policy],
        dir: Direction,
    ) -> Result<Breaches, Exhausted> {
        if self.state.has_cluster_policies() && self.under_cluster_tiers(ns) {
            return self.ordered_wall(ns, policies, dir);
        }
        let mut breaches = Breaches::new();
        let me = self.existing_rep(ns).party;
        let mut record =
            |other: Party, rep: Option<&Rep>, ports: &PortSet, cause: Cause, notes: &[Note]| {
                self.record(&mut breaches, &me, dir, &other, rep, ports, cause, notes);
            };

        let selectors: Vec<&Selector> = policies
            .iter()
            .filter(|p| p.rules(dir).is_some())
            .map(|p| &p.pod_selector)
            .collect();
        if let Some(w) = solve(&[], &selectors, &FreeLabels, &self.budget)? {
            let cause = Cause::Unisolated {
                pods: describe_witness(&w),
            };
            for (party, rep) in self.everyone() {
                record(party, rep.as_ref(), &PortSet::all(), cause.clone(), &[]);
            }
        }
        for pol in rules_of.iter().filter(|p| p.rules(dir).is_some()) {
            if !satisfiable(&[&pol.pod_selector], &FreeLabels) {
                continue;
            }
            for rule in pol.rules(dir).unwrap_or_default() {
                let rule_ref = pol.rule_ref(dir, rule.index);
                let pod_ports = possible_ports(rule.ports.as_deref(), true);
                // Egress to a host outside the cluster: named ports match nothing.
                let ext_ports = match dir {
                    Direction::Ingress => pod_ports.clone(),
                    Direction::Egress => possible_ports(rule.ports.as_deref(), false),
                };
                let hits: Vec<(Option<String>, Hits, Vec<Note>)> = match &rule.peers {
                    None => vec![(None, self.everyone(), Vec::new())],
                    Some(peers) => peers
                        .iter()
                        .map(|p| {
                            let (parties, notes) = self.peer_parties(&pol.namespace, p);
                            (Some(p.to_string()), parties, notes)
                        })
                        .collect(),
                };
                for (peer_desc, parties, notes) in hits {
                    let cause = Cause::Rule {
                        rule: rule_ref.clone(),
                        peer: peer_desc,
                    };
                    for (party, rep) in parties {
                        let ports = if party == Party::External {
                            &ext_ports
                        } else {
                            &pod_ports
                        };
                        record(party, rep.as_ref(), ports, cause.clone(), &notes);
                    }
                }
            }
        }
        Ok(breaches)
    }

    /// Records that `ports` to or from `other` (standing for `rep`) pass the
    /// wall `breaches` belongs to because of `cause`; only the ports the
    /// flows forbid are kept.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record(
        &self,
        breaches: &mut Breaches,
        me: &Party,
        dir: Direction,
        other: &Party,
        rep: Option<&Rep>,
        ports: &PortSet,
        cause: Cause,
        notes: &[Note],
    ) {
        let forbidden = ports.difference(&self.iso.allowed_across(me, other, dir));
        if forbidden.is_empty() {
            return;
        }
        let e = breaches.entry(other.clone()).or_default();
        e.ports = e.ports.union(&forbidden);
        let info = e.causes.entry(cause).or_default();
        info.ports = info.ports.union(&forbidden);
        info.notes.extend(notes.iter().cloned());
        match rep {
            Some(r) if r.existing => {
                if let RepName::Known(n) = &r.name {
                    info.others.insert(n.clone());
                    e.examples.insert(n.clone());
                }
            }
            Some(r) => {
                info.open = true;
                if let RepName::Known(n) = &r.name {
                    e.examples.insert(n.clone());
                }
            }
            None => info.open = true,
        }
    }

    /// Every breach of every wall of one tier namespace, with `policies`
    /// standing for its policies.
    pub(super) fn namespace_breaches(
        &self,
        ns: &Namespace,
        policies: &[&Policy],
    ) -> Result<Vec<(Direction, Breaches)>, Exhausted> {
        self.namespace_breaches_of(ns, policies, policies)
    }

    /// [`Checker::namespace_breaches`] with only the rules of `rules_of`:
    /// what a change that leaves the namespace with `policies` can add when
    /// `rules_of` are the policies it creates or replaces (every other rule
    /// was there before it, and rules are a union).
    pub(super) fn namespace_breaches_of(
        &self,
        ns: &Namespace,
        policies: &[&Policy],
        rules_of: &[&Policy],
    ) -> Result<Vec<(Direction, Breaches)>, Exhausted> {
        let mut out = Vec::with_capacity(2);
        for dir in [Direction::Ingress, Direction::Egress] {
            let mut b = self.wall(ns, policies, rules_of, dir)?;
            if self.iso.judge == Judge::Effective {
                self.keep_effective(ns, dir, &mut b)?;
            }
            out.push((dir, b));
        }
        Ok(out)
    }

    /// The breaches of one wall as values; with `only`, just the ports not
    /// already breached there.
    pub(super) fn breaches(
        &self,
        ns: &Namespace,
        dir: Direction,
        breaches: &Breaches,
        only: Option<&Breaches>,
    ) -> Vec<Breach> {
        let mut out = Vec::new();
        let tier = self
            .tier_of(ns)
            .map(|t| self.iso.tiers[t].name.clone())
            .unwrap_or_default();
        let here = End::Tier {
            tier: tier.clone(),
            namespace: Some(ns.name.clone()),
        };
        for (party, e) in breaches {
            let ports = match only.and_then(|b| b.get(party)) {
                Some(before) => e.ports.difference(&before.ports),
                None => e.ports.clone(),
            };
            if ports.is_empty() {
                continue;
            }
            let there = self.end_of(party, e);
            let (from, to) = match dir {
                Direction::Ingress => (there, here.clone()),
                Direction::Egress => (here.clone(), there),
            };
            let mut notes = BTreeSet::new();
            let causes: Vec<(Cause, PortSet)> = e
                .causes
                .iter()
                .filter_map(|(c, info)| {
                    let p = info.ports.intersect(&ports);
                    if p.is_empty() {
                        return None;
                    }
                    notes.extend(info.notes.iter().cloned());
                    Some((c.clone(), p))
                })
                .collect();
            out.push(Breach {
                namespace: ns.name.clone(),
                tier: tier.clone(),
                wall: dir,
                from,
                to,
                ports,
                causes,
                notes: notes.into_iter().collect(),
                other: party.clone(),
            });
        }
        out
    }

    /// The end a party stands for, with the namespaces seen behind it.
    fn end_of(&self, party: &Party, e: &Entry) -> End {
        match party {
            Party::External => End::External,
            Party::Namespace { tier: Some(t), .. } => {
                let name = &self.iso.tiers[*t].name;
                End::Tier {
                    tier: name.clone(),
                    namespace: e
                        .examples
                        .iter()
                        .find(|n| *n == name)
                        .or_else(|| e.examples.iter().next())
                        .cloned(),
                }
            }
            Party::Namespace {
                tier: None,
                named: Some(n),
            } => End::Namespace { name: n.clone() },
            // Outside the tiers: name the namespaces only when no namespace
            // yet to be created is among them.
            Party::Namespace {
                tier: None,
                named: None,
            } => End::OtherNamespaces {
                examples: if e.causes.values().all(|i| !i.open) {
                    e.examples.iter().cloned().collect()
                } else {
                    Vec::new()
                },
            },
        }
    }
}
