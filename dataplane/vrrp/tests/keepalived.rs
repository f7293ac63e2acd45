//! Interop vectors: advertisements a real keepalived 2.2.7 sent (vrid 77, priority 150,
//! advert_int 1, virtual address 10.77.0.100, from 10.77.0.1; testdata/, copied from the
//! capture). Decoding them gives keepalived's parameters, and encoding those parameters
//! gives keepalived's bytes, frame and all.

use std::net::Ipv4Addr;

use aegis_vrrp::envelope::{self, FrameError, GROUP};
use aegis_vrrp::wire::{AuthType, Packet, Repr, Version};

const CAPTURE: &str = include_str!("../testdata/keepalived-2.2.7-adverts.txt");
const SRC: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);
const KEEPALIVED_MAC: [u8; 6] = [0xce, 0x9d, 0x47, 0xfb, 0x04, 0x8a];

fn hex(key: &str) -> Vec<u8> {
    let line = CAPTURE
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} not in the capture file"));
    (0..line.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&line[i..i + 2], 16).unwrap())
        .collect()
}

fn keepalived(version: Version) -> Repr {
    Repr {
        version,
        vrid: 77,
        priority: 150,
        interval_cs: 100,
        auth_type: AuthType::None,
        auth_data: [0; 8],
        addresses: vec![VIP],
    }
}

#[test]
fn keepalived_frames_decode_to_its_parameters() {
    for (key, version) in [("v2", Version::V2), ("v3", Version::V3)] {
        let frame = hex(&format!("{key}.frame_hex"));
        let got = envelope::parse_frame(&frame).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(got.src, SRC, "{key}");
        assert_eq!(got.dst, GROUP, "{key}");
        assert_eq!(got.src_mac, KEEPALIVED_MAC, "{key}");
        assert_eq!(got.repr, keepalived(version), "{key}");
        // The message alone, as the checksum sees it.
        let msg = hex(&format!("{key}.vrrp_hex"));
        let p = Packet::new_checked(&msg[..]).unwrap();
        assert_eq!(
            p.checksum(),
            p.expected_checksum(Some((SRC, GROUP))),
            "{key}"
        );
        assert_eq!(p.interval_raw(), if key == "v2" { 1 } else { 100 });
    }
}

#[test]
fn our_encoding_of_keepalived_parameters_is_byte_identical() {
    for (key, version) in [("v2", Version::V2), ("v3", Version::V3)] {
        let r = keepalived(version);
        let mut msg = vec![0u8; r.buffer_len()];
        r.emit(&mut msg, SRC, GROUP).unwrap();
        assert_eq!(msg, hex(&format!("{key}.vrrp_hex")), "{key} message");
        let frame = envelope::emit_frame(&r, KEEPALIVED_MAC, None, SRC, GROUP, 1).unwrap();
        assert_eq!(frame, hex(&format!("{key}.frame_hex")), "{key} frame");
    }
}

#[test]
fn a_flipped_bit_anywhere_in_the_message_is_refused() {
    for key in ["v2", "v3"] {
        let frame = hex(&format!("{key}.frame_hex"));
        let vrrp_at = 14 + 20;
        for byte in vrrp_at..frame.len() {
            for bit in 0..8 {
                let mut f = frame.clone();
                f[byte] ^= 1 << bit;
                // Version, type, count or checksum: every single-bit change is caught.
                let got = envelope::parse_frame(&f);
                assert!(
                    matches!(got, Err(FrameError::Vrrp(_))),
                    "{key}: byte {byte} bit {bit} flipped: {got:?}"
                );
            }
        }
    }
}

#[test]
fn off_link_and_malformed_frames_are_refused_with_their_reason() {
    let frame = hex("v2.frame_hex");
    // TTL 254 (IPv4 checksum patched so only the TTL is wrong).
    let mut f = frame.clone();
    f[14 + 8] = 254;
    let mut c = u16::from_be_bytes([f[24], f[25]]);
    c = c.wrapping_add(0x0100);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    assert_eq!(envelope::parse_frame(&f), Err(FrameError::Ttl(254)));
    // A broken IPv4 header checksum.
    let mut f = frame.clone();
    f[25] ^= 1;
    assert_eq!(envelope::parse_frame(&f), Err(FrameError::Ipv4Checksum));
    // Every truncation.
    for n in 0..frame.len() {
        assert!(envelope::parse_frame(&frame[..n]).is_err(), "{n} bytes");
    }
    // Ethernet padding to 60 bytes is fine.
    let mut padded = hex("v3.frame_hex");
    padded.resize(60, 0);
    assert_eq!(
        envelope::parse_frame(&padded).unwrap().repr,
        keepalived(Version::V3)
    );
}

#[test]
fn sub_second_v3_intervals_round_trip() {
    let r = Repr {
        interval_cs: 10,
        priority: 200,
        addresses: vec![VIP, Ipv4Addr::new(10, 77, 0, 101)],
        ..keepalived(Version::V3)
    };
    let frame = envelope::emit_frame(&r, envelope::virtual_mac(77), None, SRC, GROUP, 9).unwrap();
    let got = envelope::parse_frame(&frame).unwrap();
    assert_eq!(got.repr, r);
    assert_eq!(got.src_mac, [0, 0, 0x5e, 0, 1, 77]);
}
