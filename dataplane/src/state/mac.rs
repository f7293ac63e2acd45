//! MAC address text form (`02:00:00:00:00:01`) and checks shared by the configuration, the
//! tables and the admin API.

use std::fmt;

use super::Mac;

pub use crate::wire::ethernet::parse_mac;

/// True for an individual (unicast) address other than all zeros.
pub fn is_unicast(mac: &Mac) -> bool {
    mac[0] & 1 == 0 && *mac != [0; 6]
}

/// Displays a MAC as `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacDisplay(pub Mac);

impl fmt::Display for MacDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_junk() {
        let mac = parse_mac("02:00:5E:10:0a:ff").unwrap();
        assert_eq!(mac, [0x02, 0x00, 0x5e, 0x10, 0x0a, 0xff]);
        assert_eq!(MacDisplay(mac).to_string(), "02:00:5e:10:0a:ff");
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "2:00:00:00:00:01",
            "02-00-00-00-00-01",
            "zz:00:00:00:00:01",
            "+2:00:00:00:00:01",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert!(is_unicast(&mac));
        assert!(!is_unicast(&[0x01, 0, 0x5e, 0, 0, 1]));
        assert!(!is_unicast(&[0; 6]));
    }
}
