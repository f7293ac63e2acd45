//! Fuzzes the keepalived.conf importer: any text gives instances or an error with a line
//! number inside the text, never a panic; whatever imports builds a valid router.
#![no_main]

use aegis_vrrp::group::Router;
use aegis_vrrp::keepalived;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match keepalived::import(&text) {
        Ok(imp) => {
            let configs = imp
                .instances
                .into_iter()
                .map(|mut i| {
                    if i.config.primary.is_unspecified() {
                        i.config.primary = std::net::Ipv4Addr::new(192, 0, 2, 1);
                    }
                    i.config
                })
                .collect();
            let groups = imp.groups.into_iter().map(|g| g.group).collect();
            // Groups may name unknown instances (an error), but never panic.
            let _ = Router::new(configs, groups);
        }
        Err(e) => assert!(e.line >= 1 && e.line <= text.lines().count().max(1)),
    }
});
