//! MAC addresses and IPv4 prefixes as written on the command line and in routes files.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Why an address or prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// Not six colon-separated hex bytes.
    #[error("invalid MAC address {0:?}: expected six hex bytes like 02:00:00:00:00:01")]
    Mac(String),
    /// Not `A.B.C.D/LEN`.
    #[error("invalid IPv4 prefix {0:?}: expected A.B.C.D/LEN with LEN 0..=32")]
    Prefix(String),
    /// Address bits set beyond the prefix length.
    #[error("invalid IPv4 prefix {given}: host bits are set (did you mean {fixed}?)")]
    HostBits {
        /// As given.
        given: String,
        /// With the host bits cleared.
        fixed: Ipv4Prefix,
    },
}

/// A MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct MacAddr(pub [u8; 6]);

impl TryFrom<String> for MacAddr {
    type Error = NetError;
    fn try_from(s: String) -> Result<Self, NetError> {
        s.parse()
    }
}

impl FromStr for MacAddr {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || NetError::Mac(s.to_owned());
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// An IPv4 prefix with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    addr: u32,
    len: u8,
}

impl Ipv4Prefix {
    /// The prefix `addr/len`; `None` when `len > 32` or host bits are set.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Ipv4Prefix> {
        let addr = u32::from(addr);
        (len <= 32 && addr & !mask(len) == 0).then_some(Ipv4Prefix { addr, len })
    }

    /// The prefix of length `len` containing `addr` (host bits cleared); `len <= 32`.
    pub fn containing(addr: u32, len: u8) -> Ipv4Prefix {
        assert!(len <= 32, "prefix length {len}");
        Ipv4Prefix {
            addr: addr & mask(len),
            len,
        }
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    /// The network address as a host-order integer.
    pub fn bits(&self) -> u32 {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// True for the default route `0.0.0.0/0`.
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// Whether `addr` lies inside the prefix.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.len) == self.addr
    }

    /// Whether the two prefixes share any address (one contains the other).
    pub fn overlaps(&self, other: &Ipv4Prefix) -> bool {
        let len = self.len.min(other.len);
        self.addr & mask(len) == other.addr & mask(len)
    }

    /// Number of addresses, as u64 (2^32 for /0).
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.len))
    }

    /// The address at `offset` (`offset < size()`).
    pub fn nth(&self, offset: u64) -> Ipv4Addr {
        assert!(offset < self.size(), "offset {offset} outside {self}");
        Ipv4Addr::from(self.addr | offset as u32)
    }
}

impl FromStr for Ipv4Prefix {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || NetError::Prefix(s.to_owned());
        let (addr, len) = s.split_once('/').ok_or_else(err)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| err())?;
        let len: u8 = len.parse().map_err(|_| err())?;
        if len > 32 {
            return Err(err());
        }
        Ipv4Prefix::new(addr, len).ok_or_else(|| NetError::HostBits {
            given: s.to_owned(),
            fixed: Ipv4Prefix::containing(u32::from(addr), len),
        })
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.len)
    }
}

/// The netmask of a prefix length (`len <= 32`).
pub fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_macs() {
        let m: MacAddr = "02:00:0a:FF:00:01".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0x0a, 0xff, 0, 1]);
        assert_eq!(m.to_string(), "02:00:0a:ff:00:01");
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "0g:00:00:00:00:01",
            "002:0:0:0:0:1",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_prefixes_and_refuses_host_bits() {
        let p: Ipv4Prefix = "10.0.0.0/8".parse().unwrap();
        assert_eq!(
            (p.bits(), p.prefix_len(), p.size()),
            (0x0a00_0000, 8, 1 << 24)
        );
        assert!(p.contains(Ipv4Addr::new(10, 255, 1, 2)));
        assert!(!p.contains(Ipv4Addr::new(11, 0, 0, 0)));
        assert_eq!(p.nth(0x0001_0203), Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(p.to_string(), "10.0.0.0/8");
        let err = "10.0.0.1/8".parse::<Ipv4Prefix>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid IPv4 prefix 10.0.0.1/8: host bits are set (did you mean 10.0.0.0/8?)"
        );
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0/8", "x/8", "10.0.0.0/-1"] {
            assert!(bad.parse::<Ipv4Prefix>().is_err(), "{bad:?}");
        }
        let all: Ipv4Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.is_default() && all.size() == 1 << 32);
        let host: Ipv4Prefix = "1.2.3.4/32".parse().unwrap();
        assert_eq!(host.size(), 1);
    }

    #[test]
    fn overlap_is_containment_either_way() {
        let a: Ipv4Prefix = "10.0.0.0/8".parse().unwrap();
        let b: Ipv4Prefix = "10.1.0.0/16".parse().unwrap();
        let c: Ipv4Prefix = "11.0.0.0/8".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c) && !b.overlaps(&c));
    }
}
