//! CIDRs, `ipBlock` peers and sets of IP addresses.
//!
//! An `ipBlock` selects the addresses in `cidr` that are in none of the
//! `except` CIDRs. IPv4 and IPv6 are separate universes: an IPv4 CIDR never
//! matches an IPv6 address (and `0.0.0.0/0` is not "everything").
//!
//! Following the upstream conformance suite, an `ipBlock` also matches pods
//! whose pod IP falls inside it.

use std::fmt;
use std::net::IpAddr;

use super::intervals::Intervals;

/// A parsed CIDR with its host bits cleared (`10.1.2.3/8` is `10.0.0.0/8`,
/// as the API server's parser reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

// === impl Cidr ===

impl Cidr {
    /// Parses `ADDR/PREFIX`; the message says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = s.split_once('/').ok_or_else(|| {
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)".to_string()
        })?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("must be a valid CIDR value: {a:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = match p.parse::<u8>() {
            Ok(n) if n <= max && !p.starts_with('+') => n,
            _ => {
                return Err(format!(
                    "must be a valid CIDR value: prefix length {p:?} must be 0 to {max}"
                ));
            }
        };
        let addr = match addr {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4) & mask32(prefix);
                IpAddr::V4(bits.into())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & mask128(prefix);
                IpAddr::V6(bits.into())
            }
        };
        Ok(Self { addr, prefix })
    }

    /// The network address (host bits cleared).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// True for an IPv4 CIDR.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// True when `ip` is inside (same family only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                u32::from(a) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                u128::from(a) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }

    /// The addresses of this CIDR as an [`IpSet`].
    pub fn to_set(&self) -> IpSet {
        match self.addr {
            IpAddr::V4(net) => {
                let lo = u32::from(net);
                IpSet {
                    v4: Intervals::span(lo, lo | !mask32(self.prefix)),
                    v6: Intervals::empty(),
                }
            }
            IpAddr::V6(net) => {
                let lo = u128::from(net);
                IpSet {
                    v4: Intervals::empty(),
                    v6: Intervals::span(lo, lo | !mask128(self.prefix)),
                }
            }
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

fn mask128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A set of IPv4 and IPv6 addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Intervals<u32>,
    v6: Intervals<u128>,
}

// === impl IpSet ===

impl IpSet {
    /// The union of some CIDRs.
    pub fn from_cidrs<'a>(cidrs: impl IntoIterator<Item = &'a Cidr>) -> Self {
        cidrs
            .into_iter()
            .fold(Self::default(), |acc, c| acc.union(&c.to_set()))
    }

    /// Every IPv4 and IPv6 address.
    pub fn everything() -> Self {
        Self {
            v4: Intervals::<u32>::default().complement(),
            v6: Intervals::<u128>::default().complement(),
        }
    }

    /// `self ∩ other`.
    pub fn intersect(&self, other: &Self) -> Self {
        self.difference(&self.difference(other))
    }

    /// True when the set has no address.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// `self ∪ other`.
    pub fn union(&self, other: &Self) -> Self {
        Self {
            v4: self.v4.union(&other.v4),
            v6: self.v6.union(&other.v6),
        }
    }

    /// `self ∖ other`.
    pub fn difference(&self, other: &Self) -> Self {
        Self {
            v4: self.v4.difference(&other.v4),
            v6: self.v6.difference(&other.v6),
        }
    }

    /// True when the sets share an address.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.v4.overlaps(&other.v4) || self.v6.overlaps(&other.v6)
    }

    /// True when the set holds every IPv4 address.
    pub fn covers_ipv4(&self) -> bool {
        self.v4.complement().is_empty()
    }

    /// True when the set holds every IPv6 address.
    pub fn covers_ipv6(&self) -> bool {
        self.v6.complement().is_empty()
    }

    /// True when `ip` is in the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }
}

/// A validated `ipBlock`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpBlock {
    /// `cidr`.
    pub cidr: Cidr,
    /// `except`, each strictly inside `cidr`.
    pub except: Vec<Cidr>,
}

// === impl IpBlock ===

impl IpBlock {
    /// True when `ip` is in `cidr` and in no `except`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidr.contains(ip) && !self.except.iter().any(|e| e.contains(ip))
    }

    /// The addresses the block selects.
    pub fn to_set(&self) -> IpSet {
        self.cidr
            .to_set()
            .difference(&IpSet::from_cidrs(&self.except))
    }
}

impl fmt::Display for IpBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipBlock {}", self.cidr)?;
        if !self.except.is_empty() {
            let ex: Vec<String> = self.except.iter().map(Cidr::to_string).collect();
            write!(f, " except {}", ex.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test ip")
    }

    #[test]
    fn cidrs_parse_and_clear_host_bits() {
        let c = Cidr::parse("10.1.2.3/8").expect("valid");
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(Cidr::parse("10.0.0.0").is_err());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("::/129").is_err());
        assert!(Cidr::parse("banana/8").is_err());
    }

    #[test]
    fn families_never_mix() {
        let all_v4 = Cidr::parse("0.0.0.0/0").expect("valid");
        assert!(!all_v4.contains(ip("::1")));
        assert!(
            !all_v4
                .to_set()
                .overlaps(&Cidr::parse("::/0").expect("valid").to_set())
        );
        let all_v6 = Cidr::parse("::/0").expect("valid");
        assert!(all_v6.contains(ip("2001:db8::1")));
        assert!(!all_v6.contains(ip("10.0.0.1")));
    }

    #[test]
    fn except_carves_holes() {
        let b = IpBlock {
            cidr: Cidr::parse("10.0.0.0/8").expect("valid"),
            except: vec![Cidr::parse("10.1.0.0/16").expect("valid")],
        };
        assert!(b.contains(ip("10.2.0.1")));
        assert!(!b.contains(ip("10.1.0.1")));
        let halves = IpBlock {
            cidr: Cidr::parse("10.0.0.0/8").expect("valid"),
            except: vec![
                Cidr::parse("10.0.0.0/9").expect("valid"),
                Cidr::parse("10.128.0.0/9").expect("valid"),
            ],
        };
        assert!(halves.to_set().is_empty());
    }
}
