//! `judge: effective`: a breach of one wall counts only when the other end
//! may let the connection through too. Over-approximated: a breach is
//! dropped only when no rule and no unselected pod of the other end can
//! allow it, and never when a cluster-wide policy applies there.

use super::Checker;
use super::reps::RepSpace;
use super::walls::Breaches;
use crate::engine::policy::{Direction, Peer, Policy};
use crate::engine::ports::{PortSet, possible_ports};
use crate::engine::selector::{Exhausted, FreeLabels, Selector, satisfiable, solve};
use crate::engine::state::Namespace;

// === impl Checker: effective mode ===

impl Checker<'_> {
    /// In effective mode: can the other end (`other`, an existing namespace)
    /// let through, towards tier namespace `ns`, any of `ports`? Over-approximates:
    /// `false` only when no rule and no unselected pod of `other` can.
    fn other_end_may_allow(
        &self,
        other: &str,
        ns: &Namespace,
        dir: Direction,
        ports: &PortSet,
    ) -> Result<bool, Exhausted> {
        let Some(other_ns) = self.state.namespace(other) else {
            return Ok(true);
        };
        // A cluster-wide policy may accept it there whatever the
        // NetworkPolicies say: keep the breach.
        if self.state.has_cluster_policies() && self.under_cluster_tiers(other_ns) {
            return Ok(true);
        }
        let policies: Vec<&Policy> = self.state.policies_in(other).map(|p| p.as_ref()).collect();
        let opposite = match dir {
            Direction::Ingress => Direction::Egress,
            Direction::Egress => Direction::Ingress,
        };
        let isolating: Vec<&Policy> = policies
            .into_iter()
            .filter(|p| p.rules(opposite).is_some())
            .collect();
        let selectors: Vec<&Selector> = isolating.iter().map(|p| &p.pod_selector).collect();
        if solve(&[], &selectors, &FreeLabels, &self.budget)?.is_some() {
            return Ok(true);
        }
        let wall_rep = self.existing_rep(ns);
        let mut may = PortSet::none();
        for pol in isolating {
            if !satisfiable(&[&pol.pod_selector], &FreeLabels) {
                continue;
            }
            for rule in pol.rules(opposite).unwrap_or_default() {
                let reaches = match &rule.peers {
                    None => true,
                    Some(peers) => peers.iter().any(|p| match p {
                        Peer::Pods { namespaces, pods } => {
                            let pods_ok =
                                pods.as_ref().is_none_or(|s| satisfiable(&[s], &FreeLabels));
                            let ns_ok = match namespaces {
                                None => other_ns.name == ns.name,
                                Some(sel) => {
                                    let space = RepSpace {
                                        rep: &wall_rep,
                                        tier_label: &self.iso.tier_label,
                                    };
                                    satisfiable(&[sel], &space)
                                }
                            };
                            pods_ok && ns_ok
                        }
                        Peer::IpBlock(b) => self.block_reach(b).0,
                    }),
                };
                if reaches {
                    may = may.union(&possible_ports(rule.ports.as_deref(), true));
                }
            }
        }
        Ok(!may.intersect(ports).is_empty())
    }

    /// Drops the causes whose other end cannot let the connection through.
    pub(super) fn keep_effective(
        &self,
        ns: &Namespace,
        dir: Direction,
        breaches: &mut Breaches,
    ) -> Result<(), Exhausted> {
        for entry in breaches.values_mut() {
            let mut kept = std::collections::BTreeMap::new();
            for (cause, info) in std::mem::take(&mut entry.causes) {
                let mut keep = info.open;
                for o in &info.others {
                    if keep {
                        break;
                    }
                    keep = self.other_end_may_allow(o, ns, dir, &info.ports)?;
                }
                if keep {
                    kept.insert(cause, info);
                }
            }
            entry.causes = kept;
            entry.ports = entry
                .causes
                .values()
                .fold(PortSet::none(), |acc, i| acc.union(&i.ports));
        }
        breaches.retain(|_, e| !e.ports.is_empty());
        Ok(())
    }
}
