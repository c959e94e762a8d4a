//! Protocols, port sets and the port clauses of NetworkPolicy rules.
//!
//! A NetworkPolicy rule names ports three ways (API reference,
//! `NetworkPolicyPort`):
//! 1. a protocol alone: every port of that protocol;
//! 2. a number, optionally with `endPort`: that inclusive range;
//! 3. a name: resolved on the *destination* pod, to the `containerPort` of a
//!    container port with that name **and** the rule's protocol. A name no
//!    container port carries matches nothing.
//!
//! The protocol defaults to TCP. A rule without `ports` matches every port of
//! every protocol. The universe of protocols is TCP, UDP and SCTP, the three
//! a NetworkPolicy can name.

use std::fmt;

use super::intervals::Intervals;

/// A transport protocol a NetworkPolicy can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP, the default.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// All protocols, in display order.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// The Kubernetes spelling (`TCP`, `UDP`, `SCTP`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// Parses the Kubernetes spelling exactly (the API server is
    /// case-sensitive: `tcp` is rejected).
    pub fn from_k8s(s: &str) -> Option<Self> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Parses any capitalisation (`tcp`, `TCP`), for command lines and the
    /// isolation policy.
    pub fn parse_loose(s: &str) -> Option<Self> {
        Self::from_k8s(&s.to_ascii_uppercase())
    }

    fn index(self) -> usize {
        match self {
            Protocol::Tcp => 0,
            Protocol::Udp => 1,
            Protocol::Sctp => 2,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lowest valid port number.
pub const MIN_PORT: u16 = 1;
/// The highest valid port number.
pub const MAX_PORT: u16 = 65535;

/// A set of (protocol, port) pairs: one interval set of ports `1..=65535` per
/// protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortSet {
    by_proto: [Intervals<u16>; 3],
}

// === impl PortSet ===

impl PortSet {
    /// No port of any protocol.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every port of every protocol.
    pub fn all() -> Self {
        let mut s = Self::none();
        for p in Protocol::ALL {
            s = s.union(&Self::proto_all(p));
        }
        s
    }

    /// Every port of one protocol.
    pub fn proto_all(proto: Protocol) -> Self {
        Self::range(proto, MIN_PORT, MAX_PORT)
    }

    /// `lo..=hi` of one protocol, clipped to `1..=65535`.
    pub fn range(proto: Protocol, lo: u16, hi: u16) -> Self {
        let mut s = Self::none();
        s.by_proto[proto.index()] = Intervals::span(lo.max(MIN_PORT), hi);
        s
    }

    /// One port of one protocol.
    pub fn single(proto: Protocol, port: u16) -> Self {
        Self::range(proto, port, port)
    }

    /// The ports of one protocol.
    pub fn ports(&self, proto: Protocol) -> &Intervals<u16> {
        &self.by_proto[proto.index()]
    }

    /// True when no port of any protocol is in the set.
    pub fn is_empty(&self) -> bool {
        self.by_proto.iter().all(Intervals::is_empty)
    }

    /// True when the set holds `proto/port`.
    pub fn contains(&self, proto: Protocol, port: u16) -> bool {
        self.by_proto[proto.index()].contains(port)
    }

    fn zip(
        &self,
        other: &Self,
        f: impl Fn(&Intervals<u16>, &Intervals<u16>) -> Intervals<u16>,
    ) -> Self {
        Self {
            by_proto: [
                f(&self.by_proto[0], &other.by_proto[0]),
                f(&self.by_proto[1], &other.by_proto[1]),
                f(&self.by_proto[2], &other.by_proto[2]),
            ],
        }
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &Self) -> Self {
        self.zip(other, Intervals::union)
    }

    /// `self ∩ other`.
    pub fn intersect(&self, other: &Self) -> Self {
        self.zip(other, Intervals::intersect)
    }

    /// `self ∖ other`.
    pub fn difference(&self, other: &Self) -> Self {
        self.zip(other, Intervals::difference)
    }
}

impl fmt::Display for PortSet {
    /// `TCP/80, TCP/8000-8080, UDP (all ports)`, or `nothing` / `all ports`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("no ports");
        }
        if *self == Self::all() {
            return f.write_str("all ports");
        }
        let mut parts = Vec::new();
        for p in Protocol::ALL {
            let spans = self.ports(p).spans();
            if spans == [(MIN_PORT, MAX_PORT)] {
                parts.push(format!("{p} (all ports)"));
                continue;
            }
            for &(lo, hi) in spans {
                if lo == hi {
                    parts.push(format!("{p}/{lo}"));
                } else {
                    parts.push(format!("{p}/{lo}-{hi}"));
                }
            }
        }
        f.write_str(&parts.join(", "))
    }
}

/// Which ports of its protocol a rule's port entry names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortNumbers {
    /// No `port`: every port of the protocol.
    Any,
    /// `port`, or `port`..=`endPort`.
    Range(u16, u16),
    /// A named port, resolved on the destination pod.
    Named(String),
}

/// One validated entry of a rule's `ports` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMatch {
    /// The protocol (TCP when the manifest leaves it out).
    pub protocol: Protocol,
    /// The port numbers or name.
    pub numbers: PortNumbers,
}

/// A container port of a pod, as named ports resolve against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPort {
    /// `name`, when the container port has one.
    pub name: Option<String>,
    /// `containerPort`.
    pub port: u16,
    /// `protocol` (TCP by default).
    pub protocol: Protocol,
}

// === impl PortMatch ===

impl PortMatch {
    /// True when this entry matches `proto/port` on a destination whose
    /// container ports are `dst_ports` (`None` for a destination that is not
    /// a pod, on which no name resolves).
    pub fn matches(&self, proto: Protocol, port: u16, dst_ports: Option<&[ContainerPort]>) -> bool {
        if self.protocol != proto {
            return false;
        }
        match &self.numbers {
            PortNumbers::Any => true,
            PortNumbers::Range(lo, hi) => (*lo..=*hi).contains(&port),
            PortNumbers::Named(name) => dst_ports.is_some_and(|ports| {
                ports.iter().any(|cp| {
                    cp.name.as_deref() == Some(name) && cp.protocol == proto && cp.port == port
                })
            }),
        }
    }

    /// The ports this entry may match on *some* destination. A name resolves
    /// to any number on a pod that may yet be created (`dst_is_pod`), and to
    /// nothing on a host outside the cluster.
    pub fn possible(&self, dst_is_pod: bool) -> PortSet {
        match &self.numbers {
            PortNumbers::Any => PortSet::proto_all(self.protocol),
            PortNumbers::Range(lo, hi) => PortSet::range(self.protocol, *lo, *hi),
            PortNumbers::Named(_) if dst_is_pod => PortSet::proto_all(self.protocol),
            PortNumbers::Named(_) => PortSet::none(),
        }
    }
}

impl fmt::Display for PortMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.numbers {
            PortNumbers::Any => write!(f, "{} (all ports)", self.protocol),
            PortNumbers::Range(lo, hi) if lo == hi => write!(f, "{}/{lo}", self.protocol),
            PortNumbers::Range(lo, hi) => write!(f, "{}/{lo}-{hi}", self.protocol),
            PortNumbers::Named(n) => write!(f, "{}/{n}", self.protocol),
        }
    }
}

/// The ports a rule's `ports` clause may match on some destination
/// (`None` = no clause = everything).
pub fn possible_ports(ports: Option<&[PortMatch]>, dst_is_pod: bool) -> PortSet {
    match ports {
        None => PortSet::all(),
        Some(list) => list
            .iter()
            .fold(PortSet::none(), |acc, p| acc.union(&p.possible(dst_is_pod))),
    }
}

/// Parses `PROTO/PORT`, `PROTO/LO-HI` or `PROTO` (every port) as used on the
/// command line and in the isolation policy; the protocol is
/// case-insensitive.
pub fn parse_port_spec(s: &str) -> Result<PortSet, String> {
    let (proto, rest) = match s.split_once('/') {
        Some((p, r)) => (p, Some(r)),
        None => (s, None),
    };
    let proto = Protocol::parse_loose(proto.trim()).ok_or_else(|| {
        format!("unknown protocol {proto:?} in {s:?} (expected TCP, UDP or SCTP)")
    })?;
    let Some(rest) = rest else {
        return Ok(PortSet::proto_all(proto));
    };
    let num = |t: &str| -> Result<u16, String> {
        match t.trim().parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            _ => Err(format!(
                "port {t:?} in {s:?} must be a number from 1 to 65535"
            )),
        }
    };
    let (lo, hi) = match rest.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(rest)?;
            (n, n)
        }
    };
    if hi < lo {
        return Err(format!("port range {s:?} ends before it starts"));
    }
    Ok(PortSet::range(proto, lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_ports_resolve_on_name_and_protocol() {
        let m = PortMatch {
            protocol: Protocol::Tcp,
            numbers: PortNumbers::Named("http".into()),
        };
        let ports = [
            ContainerPort {
                name: Some("http".into()),
                port: 8080,
                protocol: Protocol::Tcp,
            },
            ContainerPort {
                name: Some("dns".into()),
                port: 53,
                protocol: Protocol::Udp,
            },
        ];
        assert!(m.matches(Protocol::Tcp, 8080, Some(&ports)));
        assert!(!m.matches(Protocol::Tcp, 80, Some(&ports)));
        assert!(!m.matches(Protocol::Udp, 8080, Some(&ports)));
        assert!(
            !m.matches(Protocol::Tcp, 8080, None),
            "a name never resolves outside the cluster"
        );
        let udp_http = PortMatch {
            protocol: Protocol::Udp,
            numbers: PortNumbers::Named("http".into()),
        };
        assert!(
            !udp_http.matches(Protocol::Udp, 8080, Some(&ports)),
            "name AND protocol must match"
        );
    }

    #[test]
    fn port_specs_parse_and_display() {
        assert_eq!(
            parse_port_spec("tcp/80").map(|p| p.to_string()),
            Ok("TCP/80".into())
        );
        assert_eq!(
            parse_port_spec("UDP/53-54").map(|p| p.to_string()),
            Ok("UDP/53-54".into())
        );
        assert_eq!(
            parse_port_spec("sctp").map(|p| p.to_string()),
            Ok("SCTP (all ports)".into())
        );
        assert!(parse_port_spec("icmp/1").is_err());
        assert!(parse_port_spec("tcp/0").is_err());
        assert!(parse_port_spec("tcp/90-80").is_err());
        assert_eq!(PortSet::all().to_string(), "all ports");
    }
}
