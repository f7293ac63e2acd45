//! Fuzzes the east-west path (VM ports and Geneve from the underlay) of a compute host on
//! heap buffers. The first byte picks the port (0 = underlay, 1–2 = VM ports) and whether
//! frames start from a valid seed frame (Geneve from the other host, a VM's L2, L3, ARP or
//! gateway ping) that the rest of the input then overwrites; every packet must be
//! transmitted, dropped with a counted reason, consumed or held — never lost, never a panic.
//! With bit 0x40 of the first byte the host is gateway g instead (Geneve from compute hosts
//! to the gateway, replies from the external network: source NAT, floating IP, hairpin).
//! With bit 0x20 a trace watch takes every packet (on every port and on Geneve inner
//! frames): the watch's header parsing and tracing run on every input too.
#![no_main]

use aegis_dataplane::testkit::overlay::{
    gateway_objects, gateway_seed_frames, seed_frames, HostPipeline,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, mut rest)) = data.split_first() else {
        return;
    };
    let gateway = ctl & 0x40 != 0;
    let seeds = if gateway {
        gateway_seed_frames()
    } else {
        seed_frames()
    };
    let mut frames = Vec::new();
    let mut port = u16::from(ctl & 3);
    while rest.len() >= 3 && frames.len() < 64 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize % 1600;
        let seed = rest[2];
        rest = &rest[3..];
        let take = len.min(rest.len());
        let bytes = &rest[..take];
        rest = &rest[take..];
        if ctl & 0x80 != 0 {
            let (p, mut f) = seeds[usize::from(seed) % seeds.len()].clone();
            port = p;
            // The input's bytes overwrite the seed from an offset it chooses.
            let at = usize::from(seed) % f.len().max(1);
            for (i, b) in bytes.iter().enumerate() {
                if let Some(x) = f.get_mut(at + i) {
                    *x ^= b;
                }
            }
            if bytes.len() == 1 {
                f.truncate(usize::from(bytes[0]));
            }
            frames.push(f);
        } else {
            frames.push(bytes.to_vec());
        }
    }
    let mut h = if gateway {
        HostPipeline::gateway(&gateway_objects(), 1024)
    } else {
        HostPipeline::new("a", 1024)
    };
    let _records = (ctl & 0x20 != 0).then(|| h.watch_all());
    h.run_accounted(port, &frames);
});
