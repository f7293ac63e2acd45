//! IPv4 address-with-prefix-length values as the admin API takes them ("10.0.1.1/24") and
//! the parsing of API strings (addresses, prefixes, MACs) into them, with errors that say
//! what is wrong.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 address with a prefix length: a route prefix ("10.0.0.0/8") or an interface
/// address ("10.0.1.1/24"). Host bits are kept; [`Ipv4Cidr::is_network`] tells whether any
/// are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    len: u8,
}

/// Why a CIDR string did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrError {
    /// No "/len" part.
    MissingLength,
    /// The address part is not a dotted quad.
    BadAddress(String),
    /// The length part is not a number in 0..=32.
    BadLength(String),
}

impl Ipv4Cidr {
    /// Builds a CIDR; `None` if `len` > 32.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Self> {
        (len <= 32).then_some(Ipv4Cidr { addr, len })
    }

    /// `ip/32`.
    pub fn host(ip: Ipv4Addr) -> Self {
        Ipv4Cidr { addr: ip, len: 32 }
    }

    /// The address as given (host bits included).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0..=32.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The netmask as a host-order integer.
    pub fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    /// The same prefix with the host bits cleared.
    pub fn network(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            len: self.len,
        }
    }

    /// The directed broadcast address of the prefix.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// True if no host bits are set (a valid route prefix).
    pub fn is_network(&self) -> bool {
        self.network().addr == self.addr
    }

    /// True if `ip` falls inside the prefix.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }
}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = s.split_once('/').ok_or(CidrError::MissingLength)?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| CidrError::BadAddress(addr.to_string()))?;
        // Digits only: `u8::from_str` would also take "+24".
        let len = Some(len)
            .filter(|l| !l.is_empty() && l.len() <= 2 && l.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|l| l.parse::<u8>().ok())
            .filter(|l| *l <= 32)
            .ok_or_else(|| CidrError::BadLength(len.to_string()))?;
        Ok(Ipv4Cidr { addr, len })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrError::MissingLength => f.write_str("missing prefix length (expected A.B.C.D/LEN)"),
            CidrError::BadAddress(a) => write!(f, "{a:?} is not an IPv4 address"),
            CidrError::BadLength(l) => write!(f, "prefix length {l:?} is not a number in 0..=32"),
        }
    }
}

impl std::error::Error for CidrError {}

pub use crate::wire::ethernet::{format_mac, parse_mac};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let c: Ipv4Cidr = "10.0.1.1/24".parse().unwrap();
        assert_eq!(c.addr(), Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(c.prefix_len(), 24);
        assert_eq!(c.to_string(), "10.0.1.1/24");
        assert!(!c.is_network());
        assert_eq!(c.network().to_string(), "10.0.1.0/24");
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 0, 1, 255));
        assert!(c.contains(Ipv4Addr::new(10, 0, 1, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 0, 2, 1)));
        let all: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.is_network());
        assert!(all.contains(Ipv4Addr::new(192, 0, 2, 1)));
        let host: Ipv4Cidr = "192.0.2.7/32".parse().unwrap();
        assert!(host.is_network());
        assert_eq!(host.mask(), u32::MAX);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(
            "10.0.0.0".parse::<Ipv4Cidr>(),
            Err(CidrError::MissingLength)
        );
        assert!(matches!(
            "10.0.0/8".parse::<Ipv4Cidr>(),
            Err(CidrError::BadAddress(_))
        ));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/x",
            "10.0.0.0/008",
        ] {
            assert!(
                matches!(bad.parse::<Ipv4Cidr>(), Err(CidrError::BadLength(_))),
                "{bad}"
            );
        }
        assert!(CidrError::MissingLength.to_string().contains("A.B.C.D/LEN"));
    }

    #[test]
    fn macs_round_trip() {
        let mac = [0x02, 0, 0, 0xab, 0xcd, 0x01];
        assert_eq!(format_mac(&mac), "02:00:00:ab:cd:01");
        assert_eq!(parse_mac("02:00:00:AB:cd:01"), Some(mac));
        assert_eq!(parse_mac("02:00:00:ab:cd"), None);
        assert_eq!(parse_mac("02:00:00:ab:cd:01:02"), None);
        assert_eq!(parse_mac("2:00:00:ab:cd:01"), None);
    }
}
