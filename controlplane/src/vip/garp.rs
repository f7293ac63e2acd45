//! Gratuitous ARP: the 42-byte Ethernet + ARP frames that announce the cluster IP, and
//! sending them on one interface through an `AF_PACKET` socket (via `pnet_datalink`).
//!
//! The frames follow RFC 5944 §4.6 / RFC 5227: sender and target protocol address are both
//! the announced address, the sender hardware address is the interface's MAC, and the frame
//! goes to the Ethernet broadcast address. The request form leaves the target hardware
//! address zero; the reply form sets it to the sender's MAC.

use std::io;
use std::net::Ipv4Addr;
use std::time::Duration;

use pnet_datalink::{Channel, Config, MacAddr, NetworkInterface};

/// Length of a gratuitous ARP frame: 14 bytes of Ethernet header + 28 bytes of ARP.
pub const GARP_FRAME_LEN: usize = 42;

/// EtherType of ARP.
const ETHERTYPE_ARP: u16 = 0x0806;
/// ARP hardware type Ethernet.
const HTYPE_ETHERNET: u16 = 1;
/// ARP protocol type IPv4.
const PTYPE_IPV4: u16 = 0x0800;
/// ARP operation: request.
const OPER_REQUEST: u16 = 1;
/// ARP operation: reply.
const OPER_REPLY: u16 = 2;
/// How long one send may wait for the socket to become writable.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// The gratuitous ARP request announcing that `ip` is at `mac`: broadcast, ARP request,
/// sender = target protocol address = `ip`, sender hardware address = `mac`, target
/// hardware address zero.
pub fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; GARP_FRAME_LEN] {
    frame(mac, ip, OPER_REQUEST, [0; 6])
}

/// The ARP reply form of [`gratuitous_arp`]: same frame with operation "reply" and the
/// target hardware address set to `mac` too. Some hosts only update their caches from one
/// of the two forms, so the announcer sends both.
pub fn gratuitous_arp_reply(mac: [u8; 6], ip: Ipv4Addr) -> [u8; GARP_FRAME_LEN] {
    frame(mac, ip, OPER_REPLY, mac)
}

fn frame(mac: [u8; 6], ip: Ipv4Addr, oper: u16, target_mac: [u8; 6]) -> [u8; GARP_FRAME_LEN] {
    let ip = ip.octets();
    let mut f = [0u8; GARP_FRAME_LEN];
    // Ethernet header.
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    // ARP.
    f[14..16].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
    f[16..18].copy_from_slice(&PTYPE_IPV4.to_be_bytes());
    f[18] = 6; // hardware address length
    f[19] = 4; // protocol address length
    f[20..22].copy_from_slice(&oper.to_be_bytes());
    f[22..28].copy_from_slice(&mac); // sender hardware address
    f[28..32].copy_from_slice(&ip); // sender protocol address
    f[32..38].copy_from_slice(&target_mac); // target hardware address
    f[38..42].copy_from_slice(&ip); // target protocol address
    f
}

/// Sends `frames` as they are on the interface `name` (kernel index `index`, MAC `mac`)
/// through a fresh packet socket bound to it.
///
/// The socket is created in the network namespace of the calling thread, so call this on
/// the thread that should be in the interface's namespace (do not hand it to a blocking
/// pool). Sending does not block for long: each frame waits at most one second for the
/// socket to be writable.
pub fn send_frames(name: &str, index: u32, mac: [u8; 6], frames: &[&[u8]]) -> io::Result<()> {
    let interface = NetworkInterface {
        name: name.to_string(),
        description: String::new(),
        index,
        mac: Some(MacAddr::from(mac)),
        ips: Vec::new(),
        flags: 0,
    };
    let config = Config {
        write_timeout: Some(SEND_TIMEOUT),
        read_timeout: Some(Duration::from_millis(1)),
        promiscuous: false,
        ..Config::default()
    };
    let mut tx = match pnet_datalink::channel(&interface, config)? {
        Channel::Ethernet(tx, _rx) => tx,
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the packet socket is not an Ethernet channel",
            ))
        }
    };
    for frame in frames {
        match tx.send_to(frame, None) {
            Some(result) => result?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "frame larger than the packet socket's write buffer",
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x42, 0xac, 0x11, 0x00, 0x07];
    const IP: Ipv4Addr = Ipv4Addr::new(10, 20, 30, 40);

    #[test]
    fn request_frame_fields() {
        let f = gratuitous_arp(MAC, IP);
        assert_eq!(f.len(), 42);
        assert_eq!(&f[0..6], &[0xff; 6], "destination: broadcast");
        assert_eq!(&f[6..12], &MAC, "source MAC");
        assert_eq!(&f[12..14], &[0x08, 0x06], "EtherType ARP");
        assert_eq!(&f[14..16], &[0x00, 0x01], "hardware type Ethernet");
        assert_eq!(&f[16..18], &[0x08, 0x00], "protocol type IPv4");
        assert_eq!(f[18], 6, "hardware address length");
        assert_eq!(f[19], 4, "protocol address length");
        assert_eq!(&f[20..22], &[0x00, 0x01], "operation request");
        assert_eq!(&f[22..28], &MAC, "sender hardware address");
        assert_eq!(&f[28..32], &[10, 20, 30, 40], "sender protocol address");
        assert_eq!(&f[32..38], &[0; 6], "target hardware address");
        assert_eq!(&f[38..42], &[10, 20, 30, 40], "target protocol address");
    }

    #[test]
    fn request_frame_bytes() {
        let f = gratuitous_arp(MAC, IP);
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x42, 0xac, 0x11, 0x00, 0x07, 0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x42, 0xac, 0x11, 0x00, 0x07, 10,
            20, 30, 40, 0, 0, 0, 0, 0, 0, 10, 20, 30, 40,
        ];
        assert_eq!(f, expected);
    }

    #[test]
    fn reply_frame_fields() {
        let f = gratuitous_arp_reply(MAC, IP);
        assert_eq!(&f[0..6], &[0xff; 6], "destination: broadcast");
        assert_eq!(&f[6..12], &MAC);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0x00, 0x02], "operation reply");
        assert_eq!(&f[22..28], &MAC);
        assert_eq!(&f[28..32], &IP.octets());
        assert_eq!(&f[32..38], &MAC, "target hardware address = sender's");
        assert_eq!(&f[38..42], &IP.octets());
        // Everything but the operation and target MAC equals the request form.
        let r = gratuitous_arp(MAC, IP);
        assert_eq!(&f[..20], &r[..20]);
        assert_eq!(&f[22..32], &r[22..32]);
        assert_eq!(&f[38..], &r[38..]);
    }
}
