//! Fuzzes the session-sync receiver: any datagram is refused with a reason or applied,
//! never a panic; with the right key, arbitrary well-signed contents still cannot panic it.
#![no_main]

use aegis_sessionsync::{wire, Key, Receiver, Replica};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = Key::new(b"fuzz");
    let mut rx = Receiver::new(1, 2, key.clone());
    let mut replica = Replica::new();
    // As received (almost always refused by the tag) ...
    let _ = rx.receive(data, &mut replica);
    // ... and signed with the right key, so the parser behind the tag is reached.
    if data.len() >= wire::HEADER_LEN {
        let mut body = data.to_vec();
        body[0..4].copy_from_slice(&wire::MAGIC);
        let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"fuzz"), &body);
        body.extend_from_slice(tag.as_ref());
        let _ = rx.receive(&body, &mut replica);
        let _ = rx.poll(std::time::Duration::ZERO);
    }
});
