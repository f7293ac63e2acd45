//! The VRRP advertisement: byte layout, validation and conversion to and from [`Repr`].
//!
//! ```text
//!  0        4        8               16              24              32
//!  | ver    | type   | VRID          | priority      | count IPvX    |
//!  v2: | auth type   | adver int (s) | checksum                      |
//!  v3: | rsvd | max adver int (cs, 12 bits)          | checksum      |
//!  | IPv4 addresses (count × 4) ...                                  |
//!  v2 only: | authentication data (8 bytes)                          |
//! ```
//!
//! The v2 checksum covers the VRRP message only; the v3 checksum also covers the IPv4
//! pseudo-header (source, destination, protocol 112, length), so parsing v3 needs the
//! addresses of the IPv4 header it came in. Unknown message types and authentication
//! types are values ([`MessageType::Unknown`], [`AuthType::Unknown`]), not errors.

use std::net::Ipv4Addr;

/// IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// Largest number of addresses one advertisement carries (the count is one byte).
pub const MAX_ADDRESSES: usize = 255;

/// Byte offsets of the fixed header.
mod field {
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// v2: authentication type; v3: the high 4 bits are reserved, the low 4 are the top of
    /// the 12-bit interval.
    pub const AUTH_OR_RSVD: usize = 4;
    /// v2: advertisement interval in seconds; v3: the low 8 bits of the interval.
    pub const INTERVAL: usize = 5;
    pub const CHECKSUM: usize = 6;
    pub const ADDRESSES: usize = 8;
    /// Authentication data after the addresses (v2).
    pub const AUTH_DATA_LEN: usize = 8;
}

/// Length of the fixed header before the addresses.
pub const HEADER_LEN: usize = field::ADDRESSES;

/// VRRP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// RFC 3768: interval in seconds, optional (deprecated) authentication.
    V2,
    /// RFC 5798: interval in centiseconds, checksum over a pseudo-header.
    V3,
}

/// The message type field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// 1: advertisement, the only type defined.
    Advertisement,
    /// Anything else.
    Unknown(u8),
}

/// VRRPv2 authentication type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// 0: none.
    None,
    /// 1: a clear-text password in the authentication data (keepalived `auth_type PASS`).
    SimpleText,
    /// 2: IP authentication header (historic; keepalived `auth_type AH`).
    Ah,
    /// Anything else.
    Unknown(u8),
}

/// Why bytes are not a valid advertisement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Shorter than the header, or than the header plus the addresses (and, for v2, the
    /// authentication data) it announces.
    #[error("truncated VRRP message: {len} bytes, {need} needed")]
    Truncated {
        /// Bytes present.
        len: usize,
        /// Bytes the header announces.
        need: usize,
    },
    /// Neither 2 nor 3.
    #[error("unsupported VRRP version {0}")]
    Version(u8),
    /// Not an advertisement.
    #[error("unsupported VRRP message type {0}")]
    MessageType(u8),
    /// The checksum does not match.
    #[error("bad VRRP checksum {found:#06x} (expected {expected:#06x})")]
    Checksum {
        /// In the packet.
        found: u16,
        /// Computed.
        expected: u16,
    },
    /// v3 sets reserved bits or an interval of 0, or v2 an interval of 0.
    #[error("invalid advertisement interval {0} (v2: seconds, v3: centiseconds; 0 is invalid)")]
    Interval(u16),
    /// A value that cannot be encoded in the chosen version.
    #[error("cannot encode: {0}")]
    Encode(&'static str),
}

/// A checked view of a VRRP message: [`Packet::new_checked`] validates the lengths once,
/// so no accessor can panic afterwards.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking that it holds the header, the announced addresses and
    /// (v2) the authentication data. Trailing bytes are allowed (padding).
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated {
                len: b.len(),
                need: HEADER_LEN,
            });
        }
        let p = Packet { buffer };
        let version = p.version_raw();
        let need = HEADER_LEN
            + 4 * usize::from(p.count())
            + match version {
                2 => field::AUTH_DATA_LEN,
                3 => 0,
                v => return Err(Error::Version(v)),
            };
        let len = p.buffer.as_ref().len();
        if len < need {
            return Err(Error::Truncated { len, need });
        }
        Ok(p)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn version_raw(&self) -> u8 {
        self.b()[field::VER_TYPE] >> 4
    }

    /// The version (2 or 3: checked by [`Packet::new_checked`]).
    pub fn version(&self) -> Version {
        if self.version_raw() == 2 {
            Version::V2
        } else {
            Version::V3
        }
    }

    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self.b()[field::VER_TYPE] & 0x0f {
            1 => MessageType::Advertisement,
            t => MessageType::Unknown(t),
        }
    }

    /// Virtual router id.
    pub fn vrid(&self) -> u8 {
        self.b()[field::VRID]
    }

    /// Priority (0: the master is leaving; 255: the address owner).
    pub fn priority(&self) -> u8 {
        self.b()[field::PRIORITY]
    }

    /// Number of addresses.
    pub fn count(&self) -> u8 {
        self.b()[field::COUNT]
    }

    /// v2 authentication type (meaningless for v3).
    pub fn auth_type(&self) -> AuthType {
        match self.b()[field::AUTH_OR_RSVD] {
            0 => AuthType::None,
            1 => AuthType::SimpleText,
            2 => AuthType::Ah,
            t => AuthType::Unknown(t),
        }
    }

    /// v3: the reserved bits before the interval (must be 0).
    pub fn reserved(&self) -> u8 {
        self.b()[field::AUTH_OR_RSVD] >> 4
    }

    /// The advertisement interval as sent: seconds (v2) or centiseconds (v3).
    pub fn interval_raw(&self) -> u16 {
        match self.version() {
            Version::V2 => u16::from(self.b()[field::INTERVAL]),
            Version::V3 => {
                u16::from(self.b()[field::AUTH_OR_RSVD] & 0x0f) << 8
                    | u16::from(self.b()[field::INTERVAL])
            }
        }
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes([self.b()[field::CHECKSUM], self.b()[field::CHECKSUM + 1]])
    }

    /// The `i`-th address, `i < count`.
    pub fn address(&self, i: u8) -> Option<Ipv4Addr> {
        if i >= self.count() {
            return None;
        }
        let at = field::ADDRESSES + 4 * usize::from(i);
        let a: [u8; 4] = self.b()[at..at + 4].try_into().ok()?;
        Some(Ipv4Addr::from(a))
    }

    /// v2 authentication data (zeros for v3).
    pub fn auth_data(&self) -> [u8; 8] {
        let mut out = [0; 8];
        if self.version() == Version::V2 {
            let at = field::ADDRESSES + 4 * usize::from(self.count());
            out.copy_from_slice(&self.b()[at..at + field::AUTH_DATA_LEN]);
        }
        out
    }

    /// The message's own bytes (header, addresses, v2 authentication data).
    pub fn message(&self) -> &[u8] {
        let len = message_len(self.version(), usize::from(self.count()));
        &self.b()[..len]
    }

    /// The checksum this message should carry; for v3, `pseudo` gives the IPv4 source and
    /// destination it travels between.
    pub fn expected_checksum(&self, pseudo: Option<(Ipv4Addr, Ipv4Addr)>) -> u16 {
        checksum(self.version(), self.message(), pseudo)
    }
}

/// Length of a message of `version` with `count` addresses.
pub fn message_len(version: Version, count: usize) -> usize {
    HEADER_LEN
        + 4 * count
        + match version {
            Version::V2 => field::AUTH_DATA_LEN,
            Version::V3 => 0,
        }
}

/// The Internet checksum of `msg` with its checksum field taken as 0; v3 adds the IPv4
/// pseudo-header of `pseudo` (v3 without `pseudo` computes as v2 would).
pub fn checksum(version: Version, msg: &[u8], pseudo: Option<(Ipv4Addr, Ipv4Addr)>) -> u16 {
    let mut sum: u32 = 0;
    if let (Version::V3, Some((src, dst))) = (version, pseudo) {
        for half in src.octets().chunks(2).chain(dst.octets().chunks(2)) {
            sum += u32::from(u16::from_be_bytes([half[0], half[1]]));
        }
        sum += u32::from(PROTOCOL);
        sum += msg.len() as u32;
    }
    for (i, pair) in msg.chunks(2).enumerate() {
        if i == field::CHECKSUM / 2 {
            continue;
        }
        let hi = pair[0];
        let lo = pair.get(1).copied().unwrap_or(0);
        sum += u32::from(u16::from_be_bytes([hi, lo]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A parsed advertisement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr {
    /// Version.
    pub version: Version,
    /// Virtual router id (1..=255 in practice; 0 is passed through).
    pub vrid: u8,
    /// Priority.
    pub priority: u8,
    /// Advertisement interval in centiseconds (v2 intervals are whole seconds: 100 × s).
    pub interval_cs: u16,
    /// v2 authentication type ([`AuthType::None`] for v3).
    pub auth_type: AuthType,
    /// v2 authentication data (zeros for v3 and for no authentication).
    pub auth_data: [u8; 8],
    /// The virtual addresses.
    pub addresses: Vec<Ipv4Addr>,
}

impl Repr {
    /// Validates `p` — an advertisement, a valid checksum (v3: over the pseudo-header of
    /// `src` → `dst`), a non-zero interval, no reserved bits — and converts it.
    pub fn parse<T: AsRef<[u8]>>(
        p: &Packet<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<Repr, Error> {
        if let MessageType::Unknown(t) = p.message_type() {
            return Err(Error::MessageType(t));
        }
        let expected = p.expected_checksum(Some((src, dst)));
        if p.checksum() != expected {
            return Err(Error::Checksum {
                found: p.checksum(),
                expected,
            });
        }
        let raw = p.interval_raw();
        if raw == 0 || (p.version() == Version::V3 && p.reserved() != 0) {
            return Err(Error::Interval(raw));
        }
        let (interval_cs, auth_type) = match p.version() {
            Version::V2 => (raw * 100, p.auth_type()),
            Version::V3 => (raw, AuthType::None),
        };
        Ok(Repr {
            version: p.version(),
            vrid: p.vrid(),
            priority: p.priority(),
            interval_cs,
            auth_type,
            auth_data: p.auth_data(),
            addresses: (0..p.count()).filter_map(|i| p.address(i)).collect(),
        })
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        message_len(self.version, self.addresses.len())
    }

    /// Writes the message into the start of `buf` (at least [`Repr::buffer_len`] bytes),
    /// checksum included (v3: over the pseudo-header of `src` → `dst`). v2 needs a whole
    /// number of seconds (1..=255); v3 an interval of 1..=4095 centiseconds.
    pub fn emit(&self, buf: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<usize, Error> {
        let len = self.buffer_len();
        if self.addresses.len() > MAX_ADDRESSES {
            return Err(Error::Encode("more than 255 addresses"));
        }
        if buf.len() < len {
            return Err(Error::Encode("buffer too short"));
        }
        let b = &mut buf[..len];
        b.fill(0);
        let v = match self.version {
            Version::V2 => 2,
            Version::V3 => 3,
        };
        b[field::VER_TYPE] = v << 4 | 1;
        b[field::VRID] = self.vrid;
        b[field::PRIORITY] = self.priority;
        b[field::COUNT] = self.addresses.len() as u8;
        match self.version {
            Version::V2 => {
                if !self.interval_cs.is_multiple_of(100)
                    || !(100..=25500).contains(&self.interval_cs)
                {
                    return Err(Error::Encode("VRRPv2 intervals are 1..=255 whole seconds"));
                }
                b[field::AUTH_OR_RSVD] = match self.auth_type {
                    AuthType::None => 0,
                    AuthType::SimpleText => 1,
                    AuthType::Ah => 2,
                    AuthType::Unknown(t) => t,
                };
                b[field::INTERVAL] = (self.interval_cs / 100) as u8;
                let at = field::ADDRESSES + 4 * self.addresses.len();
                b[at..at + field::AUTH_DATA_LEN].copy_from_slice(&self.auth_data);
            }
            Version::V3 => {
                if !(1..=0x0fff).contains(&self.interval_cs) {
                    return Err(Error::Encode("VRRPv3 intervals are 1..=4095 centiseconds"));
                }
                b[field::AUTH_OR_RSVD] = (self.interval_cs >> 8) as u8;
                b[field::INTERVAL] = self.interval_cs as u8;
            }
        }
        for (i, a) in self.addresses.iter().enumerate() {
            let at = field::ADDRESSES + 4 * i;
            b[at..at + 4].copy_from_slice(&a.octets());
        }
        let c = checksum(self.version, b, Some((src, dst)));
        b[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c.to_be_bytes());
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
    const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

    fn v3_bytes() -> Vec<u8> {
        vec![
            0x31, 0x4d, 0x96, 0x01, 0x00, 0x64, 0x42, 0xbf, 0x0a, 0x4d, 0x00, 0x64,
        ]
    }

    #[test]
    fn unknown_type_and_auth_are_values() {
        let mut b = v3_bytes();
        b[0] = 0x37;
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.message_type(), MessageType::Unknown(7));
        assert_eq!(Repr::parse(&p, SRC, GROUP), Err(Error::MessageType(7)));
        let mut v2 = vec![0x21, 1, 100, 0, 9, 1, 0, 0];
        v2.extend([0; 8]);
        let p = Packet::new_checked(&v2[..]).unwrap();
        assert_eq!(p.auth_type(), AuthType::Unknown(9));
    }

    #[test]
    fn v3_checksum_covers_the_pseudo_header() {
        let b = v3_bytes();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(Repr::parse(&p, SRC, GROUP).is_ok());
        let other = Ipv4Addr::new(10, 77, 0, 2);
        assert!(matches!(
            Repr::parse(&p, other, GROUP),
            Err(Error::Checksum { .. })
        ));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let b = v3_bytes();
        for n in 0..b.len() {
            assert!(
                matches!(Packet::new_checked(&b[..n]), Err(Error::Truncated { .. })),
                "{n} bytes"
            );
        }
        let mut big = vec![0x21, 1, 100, 255, 0, 1, 0, 0];
        big.extend([0; 100]);
        assert_eq!(
            Packet::new_checked(&big[..]).unwrap_err(),
            Error::Truncated {
                len: 108,
                need: 8 + 4 * 255 + 8
            }
        );
    }

    #[test]
    fn bad_version_and_intervals() {
        let mut b = v3_bytes();
        b[0] = 0x41;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Version(4));
        let r = Repr {
            version: Version::V3,
            vrid: 1,
            priority: 100,
            interval_cs: 0,
            auth_type: AuthType::None,
            auth_data: [0; 8],
            addresses: vec![SRC],
        };
        let mut buf = [0u8; 64];
        assert!(r.emit(&mut buf, SRC, GROUP).is_err());
        let r = Repr {
            version: Version::V2,
            interval_cs: 150,
            ..r
        };
        assert!(r.emit(&mut buf, SRC, GROUP).is_err());
        // A v3 interval of 0 on the wire (checksum fixed up) is refused.
        let mut z = v3_bytes();
        z[4] = 0;
        z[5] = 0;
        let c = checksum(Version::V3, &z, Some((SRC, GROUP)));
        z[6..8].copy_from_slice(&c.to_be_bytes());
        let p = Packet::new_checked(&z[..]).unwrap();
        assert_eq!(Repr::parse(&p, SRC, GROUP), Err(Error::Interval(0)));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8)
                .collect();
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = Repr::parse(&p, SRC, GROUP);
                let n = (0..=255).filter_map(|i| p.address(i)).count();
                assert_eq!(n, usize::from(p.count()));
            }
        }
    }
}
