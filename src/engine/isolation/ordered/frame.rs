//! The search state of one wall's shapes: literals over the connection's
//! label sets, address and port, and the frame a branch has reached.

use super::shapes::Shape;
use crate::engine::ipblock::IpSet;
use crate::engine::ports::{PortSet, Protocol};
use crate::engine::selector::{LabelSpace, Selector, satisfiable};

/// The label sets of a connection through a wall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Space {
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
pub(super) enum Lit<'a> {
    Sel(Space, &'a Selector),
    Ip(IpSet),
    Ports(PortSet),
    /// The destination binds this name to the port.
    Named(Protocol, &'a str),
    /// Cannot be decided (a DNS name): true, and its negation too.
    Unknown,
}

/// A conjunction of (polarity, literal); empty is true.
pub(super) type Term<'a> = Vec<(bool, Lit<'a>)>;

/// A disjunction of single negated literals: one rule term that must fail.
pub(super) type Clause<'a> = Vec<(bool, Lit<'a>)>;

#[derive(Clone, Debug)]
pub(super) struct Frame<'a> {
    pub(super) all: [Vec<&'a Selector>; 5],
    pub(super) none: [Vec<&'a Selector>; 5],
    pub(super) ip: IpSet,
    pub(super) ports: PortSet,
    pub(super) bound: Vec<(Protocol, &'a str)>,
    pub(super) unbound: Vec<(Protocol, &'a str)>,
    /// The other end is a pod of the wall's own namespace: its namespace's
    /// labels are the wall's.
    pub(super) same_ns: bool,
}

impl<'a> Frame<'a> {
    /// Where a label set's selectors go.
    pub(super) fn slot(&self, sp: Space) -> usize {
        if self.same_ns && sp == Space::OtherNs {
            Space::PodNs as usize
        } else {
            sp as usize
        }
    }

    pub(super) fn apply(&mut self, (pos, lit): &(bool, Lit<'a>)) {
        match lit {
            Lit::Sel(sp, s) if *pos => {
                let i = self.slot(*sp);
                self.all[i].push(s)
            }
            Lit::Sel(sp, s) => {
                let i = self.slot(*sp);
                self.none[i].push(s)
            }
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
    pub(super) fn holds(
        &self,
        (pos, lit): &(bool, Lit<'a>),
        spaces: &[&dyn LabelSpace; 5],
    ) -> bool {
        if *pos {
            return false;
        }
        match lit {
            Lit::Sel(sp, s) => {
                let i = self.slot(*sp);
                let mut all = self.all[i].clone();
                all.push(s);
                !satisfiable(&all, spaces[i])
            }
            Lit::Ip(set) => !self.ip.overlaps(set),
            Lit::Ports(set) => self.ports.intersect(set).is_empty(),
            Lit::Named(proto, _) => self.ports.ports(*proto).is_empty(),
            Lit::Unknown => true,
        }
    }

    pub(super) fn cheap_ok(&self) -> bool {
        !self.ip.is_empty()
            && !self.ports.is_empty()
            && !self.bound.iter().any(|b| self.unbound.contains(b))
    }
}

/// The port and address atoms of one shape: `start`'s ports and addresses
/// split by every set its literals name (and by protocol), so that each
/// literal holds on an atom entirely or not at all.
pub(super) fn atoms(start: &Frame<'_>, shape: &Shape<'_>) -> (Vec<PortSet>, Vec<IpSet>) {
    let mut ports = vec![start.ports.clone()];
    let mut ips = vec![start.ip.clone()];
    let lits = shape.term.iter().chain(shape.clauses.iter().flatten());
    let mut port_sets: Vec<PortSet> = Protocol::ALL
        .iter()
        .map(|p| PortSet::proto_all(*p))
        .collect();
    let mut ip_sets: Vec<&IpSet> = Vec::new();
    for (_, lit) in lits {
        match lit {
            Lit::Ports(s) if !port_sets.contains(s) => port_sets.push(s.clone()),
            Lit::Ip(s) if !ip_sets.contains(&s) => ip_sets.push(s),
            _ => {}
        }
    }
    for s in &port_sets {
        ports = ports
            .into_iter()
            .flat_map(|a| [a.intersect(s), a.difference(s)])
            .filter(|a| !a.is_empty())
            .collect();
    }
    for s in ip_sets {
        ips = ips
            .into_iter()
            .flat_map(|a| [a.intersect(s), a.difference(s)])
            .filter(|a| !a.is_empty())
            .collect();
    }
    (ports, ips)
}
