//! Fuzzes the whole forwarding graph on heap buffers: the input is split into frames
//! (a length byte pair, then the bytes), fed in on port 0 or 1, and every packet must be
//! transmitted, dropped with a counted reason, consumed or held — never lost, never a panic.
#![no_main]

use aegis_dataplane::testkit::Pipeline;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&port, mut rest)) = data.split_first() else {
        return;
    };
    let mut frames = Vec::new();
    while rest.len() >= 2 && frames.len() < 256 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize % 1600;
        rest = &rest[2..];
        let take = len.min(rest.len());
        frames.push(rest[..take].to_vec());
        rest = &rest[take..];
    }
    let mut p = Pipeline::new();
    p.run_accounted(u16::from(port), &frames);
});
