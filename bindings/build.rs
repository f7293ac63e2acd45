//! Generates the DPDK bindings with bindgen and compiles the C shim, both with the raw
//! cflags pkg-config prints for libdpdk (the `pkg-config` crate would drop
//! `-include rte_config.h` and `-march`, which the headers need).

use std::env;
use std::path::PathBuf;
use std::process::Command;

const INSTALL_HINT: &str = "DPDK 22.11 development files were not found by pkg-config.\n\
     On Debian 12 install them with:\n    apt-get install -y dpdk libdpdk-dev pkg-config clang libclang-dev\n\
     (or run scripts/install-deps.sh from the repository root).";

fn pkg_config(args: &[&str]) -> String {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("libdpdk")
        .output()
        .unwrap_or_else(|e| panic!("cannot run pkg-config ({e}).\n{INSTALL_HINT}"));
    if !out.status.success() {
        panic!(
            "pkg-config {} libdpdk failed: {}\n{INSTALL_HINT}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).expect("pkg-config printed non-UTF-8")
}

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/shim.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let version = pkg_config(&["--modversion"]);
    let version = version.trim();
    if !version.starts_with("22.11") {
        println!("cargo:warning=found libdpdk {version}; Aegis is written against DPDK 22.11");
    }

    let cflags: Vec<String> = pkg_config(&["--cflags"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let libs = pkg_config(&["--libs"]);

    // The C shim: exported forwarders for DPDK's static inline functions.
    let mut build = cc::Build::new();
    build.file("shim/shim.c").opt_level(3).warnings(false);
    for flag in &cflags {
        build.flag(flag);
    }
    build.compile("aegis_dpdk_shim");

    // Link against the shared libdpdk libraries.
    for token in libs.split_whitespace() {
        if let Some(dir) = token.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = token.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
        }
    }
    // Drivers are plugins in DPDK's PMD folder; EAL loads them itself. The PMD folder is
    // compiled into librte_eal, so nothing else is needed here, except for net_ring, whose
    // `rte_eth_from_rings` we call directly (the plugin and this library are one file, so the
    // EAL's plugin load finds it already loaded).
    println!("cargo:rustc-link-lib=rte_net_ring");

    let bindings = bindgen::Builder::default()
        .header("shim/shim.h")
        .clang_args(&cflags)
        .allowlist_function("aegis_.*")
        .allowlist_function("rte_eal_(init|cleanup|mp_wait_lcore|wait_lcore|remote_launch|process_type|get_runtime_dir|has_hugepages)")
        .allowlist_function("rte_eal_mp_remote_launch")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_version")
        .allowlist_function("rte_lcore_is_enabled")
        .allowlist_function("rte_get_tsc_hz")
        .allowlist_function("rte_lcore_(count|to_socket_id|index)")
        .allowlist_function("rte_get_(main|next)_lcore")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_pktmbuf_free_bulk")
        .allowlist_function("rte_mempool_(free|avail_count|in_use_count)")
        .allowlist_function("rte_eth_dev_(configure|start|stop|close|count_avail|info_get|socket_id|get_name_by_port|get_port_by_name|set_mtu|get_mtu|is_valid_port|set_link_up|set_link_down|adjust_nb_rx_tx_desc)")
        .allowlist_function("rte_eth_(rx|tx)_queue_setup")
        .allowlist_function("rte_eth_(stats_get|stats_reset|macaddr_get|link_get_nowait|promiscuous_enable|promiscuous_disable|allmulticast_enable|xstats_get|xstats_get_names)")
        .allowlist_function("rte_dev_(probe|remove|name)")
        .allowlist_function("rte_vdev_init")
        .allowlist_function("rte_eth_from_rings")
        .allowlist_function("rte_ring_(create|free)")
        .allowlist_type("rte_mbuf")
        .allowlist_type("rte_eth_(conf|dev_info|stats|link|rxconf|txconf)")
        .allowlist_type("rte_ether_addr")
        .allowlist_var("RTE_ETH_.*")
        .allowlist_var("AEGIS_.*")
        .allowlist_var("RING_F_(SP_ENQ|SC_DEQ)")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("RTE_MBUF_DEFAULT_.*")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MAX_(LCORE|ETHPORTS)")
        .allowlist_var("RTE_PROC_.*")
        .allowlist_var("RTE_ETHER_ADDR_LEN")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on the DPDK headers: {e}\n{INSTALL_HINT}"));

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("cannot write bindings.rs");
}
