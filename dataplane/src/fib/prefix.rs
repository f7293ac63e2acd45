//! IPv4 prefixes: a network address plus a length, validated so no host bit is set. Used as
//! the key of every route table (FIB, static routes, connected subnets).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use super::FibError;

/// An IPv4 prefix such as `10.0.0.0/8`. Host bits are always zero.
///
/// Ordering is by network address, then by length, so a prefix sorts right before the
/// more specific prefixes it contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: u32,
    len: u8,
}

impl Prefix {
    /// The default route, `0.0.0.0/0`.
    pub const DEFAULT: Prefix = Prefix { addr: 0, len: 0 };

    /// A prefix from its network address and length; rejects lengths above 32 and
    /// addresses with host bits set (naming the network that was probably meant).
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Prefix, FibError> {
        let bits = u32::from(addr);
        if len > 32 {
            return Err(FibError::BadLength { addr, len });
        }
        let network = bits & Self::mask(len);
        if network != bits {
            return Err(FibError::HostBits {
                addr,
                len,
                network: Ipv4Addr::from(network),
            });
        }
        Ok(Prefix { addr: bits, len })
    }

    /// The prefix of length `len` containing `addr` (host bits are cleared).
    pub fn truncate(addr: Ipv4Addr, len: u8) -> Result<Prefix, FibError> {
        if len > 32 {
            return Err(FibError::BadLength { addr, len });
        }
        Ok(Prefix {
            addr: u32::from(addr) & Self::mask(len),
            len,
        })
    }

    /// Netmask of a prefix length as a host-order integer (`mask(24) == 0xffff_ff00`).
    /// Lengths above 32 give an all-ones mask.
    pub const fn mask(len: u8) -> u32 {
        if len == 0 {
            0
        } else if len >= 32 {
            u32::MAX
        } else {
            u32::MAX << (32 - len as u32)
        }
    }

    /// Network address.
    pub const fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr)
    }

    /// Network address as a host-order integer.
    pub const fn bits(&self) -> u32 {
        self.addr
    }

    /// Prefix length, 0..=32.
    pub const fn length(&self) -> u8 {
        self.len
    }

    /// First address of the prefix (host order).
    pub const fn first(&self) -> u32 {
        self.addr
    }

    /// Last address of the prefix (host order).
    pub const fn last(&self) -> u32 {
        self.addr | !Self::mask(self.len)
    }

    /// True if `ip` (host order) falls inside the prefix.
    pub const fn contains_bits(&self, ip: u32) -> bool {
        ip & Self::mask(self.len) == self.addr
    }

    /// True if `ip` falls inside the prefix.
    pub const fn contains(&self, ip: Ipv4Addr) -> bool {
        self.contains_bits(ip.to_bits())
    }

    /// True if `other` is inside this prefix (equal prefixes cover each other).
    pub const fn covers(&self, other: &Prefix) -> bool {
        other.len >= self.len && self.contains_bits(other.addr)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl FromStr for Prefix {
    type Err = FibError;

    /// Parses `a.b.c.d/len` (strict: host bits must be zero).
    fn from_str(s: &str) -> Result<Prefix, FibError> {
        let syntax = || FibError::Syntax {
            text: s.to_string(),
        };
        let (addr, len) = s.split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let len: u8 = len.parse().map_err(|_| syntax())?;
        Prefix::new(addr, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        let p: Prefix = "10.1.0.0/16".parse().unwrap();
        assert_eq!(p.addr(), Ipv4Addr::new(10, 1, 0, 0));
        assert_eq!(p.length(), 16);
        assert_eq!(p.to_string(), "10.1.0.0/16");
        assert_eq!(p.last(), u32::from(Ipv4Addr::new(10, 1, 255, 255)));
        assert_eq!("0.0.0.0/0".parse::<Prefix>().unwrap(), Prefix::DEFAULT);
        assert_eq!(Prefix::DEFAULT.last(), u32::MAX);
        let host: Prefix = "1.2.3.4/32".parse().unwrap();
        assert_eq!(host.first(), host.last());
    }

    #[test]
    fn rejects_host_bits_naming_the_network() {
        let err = "10.1.2.3/16".parse::<Prefix>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "prefix 10.1.2.3/16 has host bits set (the network is 10.1.0.0/16)"
        );
    }

    #[test]
    fn rejects_bad_syntax_and_lengths() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0/8",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
        ] {
            assert!(
                matches!(bad.parse::<Prefix>(), Err(FibError::Syntax { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            "10.0.0.0/33".parse::<Prefix>(),
            Err(FibError::BadLength { len: 33, .. })
        ));
    }

    #[test]
    fn containment_and_order() {
        let a: Prefix = "10.0.0.0/8".parse().unwrap();
        let b: Prefix = "10.5.0.0/16".parse().unwrap();
        let c: Prefix = "11.0.0.0/8".parse().unwrap();
        assert!(a.covers(&b) && !b.covers(&a) && !a.covers(&c) && a.covers(&a));
        assert!(a.contains(Ipv4Addr::new(10, 255, 255, 255)));
        assert!(!a.contains(Ipv4Addr::new(11, 0, 0, 0)));
        assert!(a < b && b < c);
        assert_eq!(Prefix::truncate(Ipv4Addr::new(10, 1, 2, 3), 8).unwrap(), a);
    }
}
