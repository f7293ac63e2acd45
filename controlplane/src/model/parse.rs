//! Field syntax: IPv4 addresses, prefixes, MAC addresses and names, each parsed with an
//! error that names the field and the value.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::ModelError;

/// Longest object name.
pub const MAX_NAME_LEN: usize = 63;

/// Checks an object name: 1..=63 of `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn name(what: &str, value: &str) -> Result<(), ModelError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NAME_LEN
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ModelError::invalid(format!(
            "{what} {value:?}: a name is 1 to {MAX_NAME_LEN} letters, digits, '.', '_' or '-', starting with a letter or digit"
        )))
    }
}

/// Parses an IPv4 address.
pub fn ipv4(field: &str, value: &str) -> Result<Ipv4Addr, ModelError> {
    value
        .parse()
        .map_err(|_| ModelError::invalid(format!("{field} {value:?} is not an IPv4 address")))
}

/// Parses an interface address with prefix length (`10.0.1.1/24`): host bits allowed.
pub fn interface_address(field: &str, value: &str) -> Result<Ipv4Net, ModelError> {
    let net: Ipv4Net = value.parse().map_err(|_| {
        ModelError::invalid(format!(
            "{field} {value:?} is not an IPv4 address with prefix length (a.b.c.d/n)"
        ))
    })?;
    if net.prefix_len() == 0 || net.prefix_len() > 32 {
        return Err(ModelError::invalid(format!(
            "{field} {value:?}: the prefix length must be 1..32"
        )));
    }
    Ok(net)
}

/// Parses a network prefix (`10.0.1.0/24`): host bits must be zero.
pub fn prefix(field: &str, value: &str) -> Result<Ipv4Net, ModelError> {
    let net: Ipv4Net = value.parse().map_err(|_| {
        ModelError::invalid(format!(
            "{field} {value:?} is not an IPv4 prefix (a.b.c.d/n)"
        ))
    })?;
    if net.trunc() != net {
        return Err(ModelError::invalid(format!(
            "{field} {value:?} has host bits set (did you mean {}?)",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Parses a unicast MAC address (`02:00:00:00:00:01`).
pub fn mac(field: &str, value: &str) -> Result<[u8; 6], ModelError> {
    let bad = || {
        ModelError::invalid(format!(
            "{field} {value:?} is not a MAC address (xx:xx:xx:xx:xx:xx)"
        ))
    };
    let mut out = [0u8; 6];
    let mut parts = value.split([':', '-']);
    for byte in &mut out {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    if out[0] & 1 != 0 {
        return Err(ModelError::invalid(format!(
            "{field} {value:?} is a multicast/broadcast MAC; a port needs a unicast one"
        )));
    }
    if out == [0; 6] {
        return Err(ModelError::invalid(format!(
            "{field} {value:?} is the zero MAC"
        )));
    }
    Ok(out)
}

/// Whether `addr` is a usable host address of `net` (not its network or broadcast address,
/// for prefixes shorter than /31).
pub fn is_host_of(net: &Ipv4Net, addr: Ipv4Addr) -> bool {
    net.contains(&addr)
        && (net.prefix_len() >= 31 || (addr != net.network() && addr != net.broadcast()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("vpc", "blue").is_ok());
        assert!(name("vpc", "c1.rack-2_a").is_ok());
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(64)] {
            assert!(name("vpc", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes_need_zero_host_bits() {
        assert_eq!(
            prefix("cidr", "10.1.0.0/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
        let e = prefix("cidr", "10.1.0.1/16").unwrap_err();
        assert!(e.message.contains("10.1.0.0/16"), "{e}");
        assert!(prefix("cidr", "10.1.0.0").is_err());
        assert!(prefix("cidr", "10.1.0.0/33").is_err());
        assert!(interface_address("address", "10.1.0.1/16").is_ok());
        assert!(interface_address("address", "10.1.0.1/0").is_err());
    }

    #[test]
    fn macs() {
        assert_eq!(mac("mac", "02:00:00:00:00:01").unwrap(), [2, 0, 0, 0, 0, 1]);
        assert_eq!(
            mac("mac", "02-0A-00-00-00-ff").unwrap(),
            [2, 10, 0, 0, 0, 255]
        );
        for bad in [
            "",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "0g:00:00:00:00:01",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "2:0:0:0:0:1",
        ] {
            assert!(mac("mac", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_addresses() {
        let net: Ipv4Net = "10.0.0.0/24".parse().unwrap();
        assert!(is_host_of(&net, "10.0.0.1".parse().unwrap()));
        assert!(!is_host_of(&net, "10.0.0.0".parse().unwrap()));
        assert!(!is_host_of(&net, "10.0.0.255".parse().unwrap()));
        assert!(!is_host_of(&net, "10.0.1.1".parse().unwrap()));
        let p2p: Ipv4Net = "10.0.0.0/31".parse().unwrap();
        assert!(is_host_of(&p2p, "10.0.0.0".parse().unwrap()));
    }
}
