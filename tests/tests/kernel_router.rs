//! The topology checks of `router.rs`, with r1's Linux kernel as the router instead of
//! aegis-dataplane. This proves the checks and the lab (addresses, offloads, tools, parsers)
//! independently of the dataplane: when a check fails in `router.rs` but passes here, the
//! difference is the dataplane's. Needs root, not the Aegis binaries.

mod common;

use aegis_lab::{cmd, env, Lab, RouterLab};
use common::OrPanic;

/// The RouterLab topology with r1's kernel routing: r1's veths get the router addresses and
/// forwarding is on.
fn kernel_router(test: &str, prefix: &str) -> Option<Lab> {
    if !env::lab_ready(test, common::TOOLS) {
        return None;
    }
    let mut lab = Lab::new(prefix).or_panic("lab");
    RouterLab::build_topology(&mut lab).or_panic("topology");
    lab.addr(
        RouterLab::R1,
        RouterLab::R1_H1_IF,
        &format!("{}/24", RouterLab::R1_H1_IP),
    )
    .or_panic("addr");
    lab.addr(
        RouterLab::R1,
        RouterLab::R1_H2_IF,
        &format!("{}/24", RouterLab::R1_H2_IP),
    )
    .or_panic("addr");
    lab.forwarding(RouterLab::R1, true).or_panic("forwarding");
    // Linux rate-limits ICMP errors per destination; traceroute sends them in bursts.
    lab.sysctl(RouterLab::R1, "net.ipv4.icmp_ratelimit", "0")
        .or_panic("sysctl");
    lab.wait_ping(
        RouterLab::H1,
        RouterLab::H2_IP,
        std::time::Duration::from_secs(10),
    )
    .or_panic("h1 reaches h2");
    Some(lab)
}

#[test]
fn kernel_ping_both_ways_and_the_router_itself() {
    let Some(lab) = kernel_router("kernel_ping", "kping") else {
        return;
    };
    common::ping_both_ways(&lab);
    common::router_answers_ping(&lab);
}

#[test]
fn kernel_tcp_transfer_of_4_mib_arrives_intact() {
    let Some(mut lab) = kernel_router("kernel_tcp", "ktcp") else {
        return;
    };
    common::tcp_transfer_4mib(&mut lab);
}

#[test]
fn kernel_traceroute_icmp_and_udp_show_the_router_as_hop_one() {
    let Some(lab) = kernel_router("kernel_traceroute", "ktrace") else {
        return;
    };
    common::traceroute_two_hops(&lab);
}

#[test]
fn kernel_unroutable_destination_gets_unreachable() {
    let Some(lab) = kernel_router("kernel_no_route", "knoroute") else {
        return;
    };
    common::unreachable_from_router(&lab, "10.99.0.1", 3);
}

#[test]
fn kernel_route_added_at_run_time_takes_effect_without_loss() {
    let Some(mut lab) = kernel_router("kernel_runtime_route", "kroute") else {
        return;
    };
    let r1 = lab.ns(RouterLab::R1).or_panic("ns");
    let ip_route = |verb: &str| {
        let mut args = vec!["-n", r1.as_str(), "route", verb, common::H3_NET];
        if verb == "add" {
            args.extend(["via", RouterLab::H2_IP]);
        }
        cmd::run("ip", &args).or_panic("ip route");
    };
    common::runtime_route_change(&mut lab, &mut || ip_route("add"), &mut || ip_route("del"));
}
