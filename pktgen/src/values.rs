//! Values written in traffic profiles and on the command line: address and port ranges,
//! packet sizes and rates. Each parses from the same text in both places (`FromStr`), and
//! from a TOML integer where a number makes sense.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::Deserialize;

use crate::net::Ipv4Prefix;

/// A TOML value that may be written as a number or a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum NumOrStr {
    /// `size = 64`
    Num(i64),
    /// `size = "64-1518"`
    Str(String),
}

impl fmt::Display for NumOrStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumOrStr::Num(n) => write!(f, "{n}"),
            NumOrStr::Str(s) => f.write_str(s),
        }
    }
}

macro_rules! from_num_or_str {
    ($t:ty) => {
        impl TryFrom<NumOrStr> for $t {
            type Error = String;
            fn try_from(v: NumOrStr) -> Result<Self, String> {
                v.to_string().parse()
            }
        }
    };
}

/// An inclusive range of IPv4 addresses: `10.0.0.1`, `10.0.0.1-10.0.0.99` or a prefix
/// `10.0.0.0/24` (every address in it, network and broadcast included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AddrRange {
    /// First address.
    pub first: Ipv4Addr,
    /// Last address (`>= first`).
    pub last: Ipv4Addr,
}

impl AddrRange {
    /// One address.
    pub fn single(a: Ipv4Addr) -> AddrRange {
        AddrRange { first: a, last: a }
    }

    /// Number of addresses.
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.last)) - u64::from(u32::from(self.first)) + 1
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `i`-th address (`i < len`).
    pub fn nth(&self, i: u64) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.first).wrapping_add(i as u32))
    }
}

impl FromStr for AddrRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = |what: &str| {
            format!("invalid address range {s:?}: {what} (expected A.B.C.D, A.B.C.D-E.F.G.H or A.B.C.D/LEN)")
        };
        if s.contains('/') {
            let p: Ipv4Prefix = s.parse().map_err(|e: crate::net::NetError| e.to_string())?;
            return Ok(AddrRange {
                first: p.network(),
                last: p.nth(p.size() - 1),
            });
        }
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let first: Ipv4Addr = a.trim().parse().map_err(|_| bad("not an address"))?;
        let last: Ipv4Addr = b.trim().parse().map_err(|_| bad("not an address"))?;
        if u32::from(last) < u32::from(first) {
            return Err(bad("the last address is below the first"));
        }
        Ok(AddrRange { first, last })
    }
}

impl TryFrom<String> for AddrRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// An inclusive range of UDP/TCP ports: `5001` or `1024-65535`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "NumOrStr")]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port (`>= first`).
    pub last: u16,
}

impl PortRange {
    /// One port.
    pub fn single(p: u16) -> PortRange {
        PortRange { first: p, last: p }
    }

    /// Number of ports.
    pub fn len(&self) -> u64 {
        u64::from(self.last) - u64::from(self.first) + 1
    }

    /// Always false: a range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `i`-th port (`i < len`).
    pub fn nth(&self, i: u64) -> u16 {
        self.first.wrapping_add(i as u16)
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = |what: &str| {
            format!(
                "invalid port range {s:?}: {what} (expected N or N-M with 0 <= N <= M <= 65535)"
            )
        };
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let first: u16 = a.trim().parse().map_err(|_| bad("not a port number"))?;
        let last: u16 = b.trim().parse().map_err(|_| bad("not a port number"))?;
        if last < first {
            return Err(bad("the last port is below the first"));
        }
        Ok(PortRange { first, last })
    }
}
from_num_or_str!(PortRange);

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Simple IMIX: frame sizes and weights (7 × 64, 4 × 570, 1 × 1518 bytes).
pub const IMIX: [(u16, u32); 3] = [(64, 7), (570, 4), (1518, 1)];

/// Ethernet frame sizes, FCS included: `64`, `64-1518` (uniform) or `imix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "NumOrStr")]
pub enum SizeSpec {
    /// Every frame this size.
    Fixed(u16),
    /// Uniform in `lo..=hi`.
    Range(u16, u16),
    /// [`IMIX`].
    Imix,
}

impl SizeSpec {
    /// Smallest frame this spec produces.
    pub fn min(&self) -> u16 {
        match *self {
            SizeSpec::Fixed(s) | SizeSpec::Range(s, _) => s,
            SizeSpec::Imix => IMIX[0].0,
        }
    }

    /// Largest frame this spec produces.
    pub fn max(&self) -> u16 {
        match *self {
            SizeSpec::Fixed(s) | SizeSpec::Range(_, s) => s,
            SizeSpec::Imix => IMIX[2].0,
        }
    }
}

impl FromStr for SizeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("imix") {
            return Ok(SizeSpec::Imix);
        }
        let bad =
            || format!("invalid packet size {s:?}: expected N, N-M (bytes, FCS included) or imix");
        match s.split_once('-') {
            None => Ok(SizeSpec::Fixed(s.parse().map_err(|_| bad())?)),
            Some((a, b)) => {
                let lo: u16 = a.trim().parse().map_err(|_| bad())?;
                let hi: u16 = b.trim().parse().map_err(|_| bad())?;
                if hi < lo {
                    return Err(format!(
                        "invalid packet size {s:?}: the upper bound is below the lower"
                    ));
                }
                Ok(if lo == hi {
                    SizeSpec::Fixed(lo)
                } else {
                    SizeSpec::Range(lo, hi)
                })
            }
        }
    }
}
from_num_or_str!(SizeSpec);

impl fmt::Display for SizeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeSpec::Fixed(s) => write!(f, "{s}"),
            SizeSpec::Range(a, b) => write!(f, "{a}-{b}"),
            SizeSpec::Imix => f.write_str("imix"),
        }
    }
}

/// A transmit rate: `line` (as fast as the port takes), packets per second (`100000`,
/// `100kpps`, `1.5Mpps`) or bits per second of Ethernet frames, FCS included, preamble and
/// inter-frame gap not (`500Mbps`, `10Gbps`).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "NumOrStr")]
pub enum Rate {
    /// No pacing.
    Line,
    /// Packets per second.
    Pps(f64),
    /// Bits per second.
    Bps(f64),
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("line") {
            return Ok(Rate::Line);
        }
        let bad = || {
            format!(
                "invalid rate {t:?}: expected line, a packet rate (100000, 100kpps, 1.5Mpps) \
                 or a bit rate (500Mbps, 10Gbps), greater than 0"
            )
        };
        let lower = t.to_ascii_lowercase();
        let split = lower
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(lower.len());
        let (num, unit) = lower.split_at(split);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let (mult, bits) = match unit.trim() {
            "" | "pps" => (1.0, false),
            "kpps" => (1e3, false),
            "mpps" => (1e6, false),
            "bps" => (1.0, true),
            "kbps" => (1e3, true),
            "mbps" => (1e6, true),
            "gbps" => (1e9, true),
            _ => return Err(bad()),
        };
        let v = value * mult;
        if !(v.is_finite() && v > 0.0) {
            return Err(bad());
        }
        Ok(if bits { Rate::Bps(v) } else { Rate::Pps(v) })
    }
}
from_num_or_str!(Rate);

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Line => f.write_str("line"),
            Rate::Pps(p) => write!(f, "{p}pps"),
            Rate::Bps(b) => write!(f, "{b}bps"),
        }
    }
}

/// Order in which flows take values from the address and port ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FlowMode {
    /// Flow `i` is the `i`-th combination (destination address varies fastest, then source
    /// address, destination port, source port): every flow distinct.
    Sequential,
    /// Every field of every flow drawn uniformly from its range (seeded).
    Random,
}

/// The transport header of the generated packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// UDP datagrams.
    Udp,
    /// TCP segments with only SYN set.
    TcpSyn,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Udp => "udp",
            Protocol::TcpSyn => "tcp-syn",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_ranges() {
        let r: AddrRange = "10.0.0.1-10.0.0.10".parse().unwrap();
        assert_eq!((r.len(), r.nth(9)), (10, Ipv4Addr::new(10, 0, 0, 10)));
        let r: AddrRange = "10.1.0.0/16".parse().unwrap();
        assert_eq!(r.len(), 65536);
        assert_eq!(r.last, Ipv4Addr::new(10, 1, 255, 255));
        assert_eq!("1.2.3.4".parse::<AddrRange>().unwrap().len(), 1);
        assert!("10.0.0.9-10.0.0.1".parse::<AddrRange>().is_err());
        assert!("10.0.0".parse::<AddrRange>().is_err());
    }

    #[test]
    fn port_ranges_and_sizes() {
        assert_eq!("1024-1027".parse::<PortRange>().unwrap().len(), 4);
        assert!("70000".parse::<PortRange>().is_err());
        assert_eq!("64".parse::<SizeSpec>().unwrap(), SizeSpec::Fixed(64));
        assert_eq!(
            "64-1518".parse::<SizeSpec>().unwrap(),
            SizeSpec::Range(64, 1518)
        );
        assert_eq!("IMIX".parse::<SizeSpec>().unwrap(), SizeSpec::Imix);
        assert!("big".parse::<SizeSpec>().is_err());
    }

    #[test]
    fn rates() {
        assert_eq!("line".parse::<Rate>().unwrap(), Rate::Line);
        assert_eq!("100kpps".parse::<Rate>().unwrap(), Rate::Pps(100_000.0));
        assert_eq!("1.5Mpps".parse::<Rate>().unwrap(), Rate::Pps(1_500_000.0));
        assert_eq!("250".parse::<Rate>().unwrap(), Rate::Pps(250.0));
        assert_eq!("10Gbps".parse::<Rate>().unwrap(), Rate::Bps(1e10));
        for bad in ["0", "-5pps", "fast", "10 furlongs", ""] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}
