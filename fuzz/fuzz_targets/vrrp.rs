//! Fuzzes the VRRP frame parser (`aegis_vrrp::envelope::parse_frame`): any bytes give an
//! advertisement or an error, never a panic; an accepted advertisement encodes back to a
//! frame that parses to the same value.
#![no_main]

use aegis_vrrp::envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(got) = envelope::parse_frame(data) {
        let r = &got.repr;
        // v2 intervals decode to whole seconds and v3 to 1..=4095 cs, so they re-encode.
        let frame = envelope::emit_frame(r, got.src_mac, None, got.src, got.dst, 0)
            .expect("a parsed advertisement encodes");
        let again = envelope::parse_frame(&frame).expect("our own frame parses");
        assert_eq!(&again.repr, r);
    }
});
