//! `aegis-lab`: the lab from the command line.
//!
//! - `aegis-lab demo [--hold]`: builds h1 — r1 (aegis-dataplane) — h2, shows ping, traceroute
//!   and the dataplane's `show` commands, then tears it down (`--hold` waits for Enter first,
//!   so you can try commands yourself).
//! - `aegis-lab cluster [--hold]`: builds a 3-node control cluster on a bridge, drives it with
//!   `aegisctl` through the cluster IP, kills the leader with SIGKILL and shows the cluster IP
//!   move and no write lost, then tears it down.
//! - `aegis-lab eastwest [--hold]`: builds three compute hosts (aegis-dataplane fed by
//!   aegis-controlplane) and VMs in two VPCs with overlapping addresses, pings across hosts,
//!   subnets and VPCs, shows the Geneve VNIs on the underlay, prints what to try next, then
//!   tears it down.
//! - `aegis-lab cleanup [--all] [--prefix P]`: removes leftovers of labs whose process died
//!   (`--all`: of every lab, also running ones).
#![deny(unsafe_code)]

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use aegis_lab::cleanup::{self, Selection};
use aegis_lab::{cmd, env, RouterLab};

const USAGE: &str = "\
usage: aegis-lab demo [--hold]
       aegis-lab cluster [--hold]
       aegis-lab eastwest [--hold]
       aegis-lab cleanup [--all] [--prefix PREFIX]

demo     build h1 -- r1 (aegis-dataplane) -- h2 in network namespaces, show ping, traceroute
         and `aegisctl dp show ...`, then remove everything. --hold keeps the lab up until
         you press Enter. Binaries come from $AEGIS_BIN_DIR or <workspace>/target/release.
cluster  build a 3-node aegis-controlplane cluster on a bridge (namespaces n1..n3, a client),
         use it through the cluster IP with aegisctl, kill -9 the leader, show the new
         leader taking the cluster IP and every write still there, then remove everything.
eastwest build c1..c3 (aegis-dataplane each, following aegis-controlplane) on an underlay
         bridge, VMs in VPCs blue (VNI 100) and red (VNI 200) with the same addresses,
         everything declared with aegisctl; ping inside and across VPCs, capture the Geneve
         traffic, print what to try next, then remove everything.
cleanup  remove namespaces, DPDK runtime dirs and temp dirs left by labs whose process is
         gone. --all also removes labs that are still running; --prefix limits it to labs
         created with that prefix.
Needs root.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["demo", rest @ ..] => parse_demo(rest).and_then(demo),
        ["cluster", rest @ ..] => parse_demo(rest).and_then(cluster_demo),
        ["eastwest", rest @ ..] => parse_demo(rest).and_then(eastwest_demo),
        ["cleanup", rest @ ..] => parse_cleanup(rest).and_then(|s| run_cleanup(&s)),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown command\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aegis-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_demo(rest: &[&str]) -> Result<bool, String> {
    match rest {
        [] => Ok(false),
        ["--hold"] => Ok(true),
        _ => Err(format!("demo: unexpected arguments {rest:?}\n\n{USAGE}")),
    }
}

fn parse_cleanup(rest: &[&str]) -> Result<Selection, String> {
    let mut sel = Selection::default();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match *a {
            "--all" => sel.all = true,
            "--prefix" => {
                let p = it.next().ok_or("cleanup: --prefix needs a value")?;
                aegis_lab::names::validate_prefix(p).map_err(|e| e.to_string())?;
                sel.prefix = Some(p.to_string());
            }
            other => return Err(format!("cleanup: unexpected argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(sel)
}

fn run_cleanup(sel: &Selection) -> Result<(), String> {
    if !env::is_root() {
        return Err("cleanup needs root".into());
    }
    let report = cleanup::cleanup(sel).map_err(|e| e.to_string())?;
    for r in &report.removed {
        println!("removed {r}");
    }
    for l in &report.live {
        println!("kept {l} (its process is still running; use --all to remove it)");
    }
    if report.removed.is_empty() {
        println!("nothing to clean up");
    }
    Ok(())
}

/// Bold headings and cyan commands on a terminal, plain text otherwise.
fn color() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal()
}

fn heading(text: &str) {
    if color() {
        println!("\n\x1b[1m== {text}\x1b[0m");
    } else {
        println!("\n== {text}");
    }
}

fn show_cmd(line: &str) {
    if color() {
        println!("\x1b[36m$ {line}\x1b[0m");
    } else {
        println!("$ {line}");
    }
}

fn demo(hold: bool) -> Result<(), String> {
    env::check(&["ping", "traceroute", "ethtool", "python3"])?;
    heading("Building the lab");
    println!(
        "  h1 {h1}/24 --veth-- [{p1} {r1a}/24] r1: aegis-dataplane [{p2} {r1b}/24] --veth-- h2 {h2}/24",
        h1 = RouterLab::H1_IP,
        h2 = RouterLab::H2_IP,
        p1 = RouterLab::R1_H1_IF,
        p2 = RouterLab::R1_H2_IF,
        r1a = RouterLab::R1_H1_IP,
        r1b = RouterLab::R1_H2_IP,
    );
    let mut rl = RouterLab::start("demo").map_err(|e| e.to_string())?;
    let id = rl.lab.id().clone();
    let ns = |h: &str| id.ns(h);
    println!("  namespaces: {}, {}, {}", ns("h1"), ns("h2"), ns("r1"));
    println!("  config:     {}", rl.config.display());
    println!("  admin API:  {}", rl.ctl.socket().display());
    println!(
        "  log:        {}",
        rl.lab.proc(rl.dataplane).log_path().display()
    );

    let result = demo_steps(&mut rl);
    if result.is_err() {
        eprintln!(
            "\n--- aegis-dataplane log (tail) ---\n{}",
            rl.lab.proc(rl.dataplane).log_tail(40)
        );
    } else if hold {
        heading("The lab is up");
        println!("Try, in another shell:");
        println!("  ip netns exec {} ping {}", ns("h1"), RouterLab::H2_IP);
        println!("  {}", rl.ctl.display(false, &["show", "neighbours"]));
        println!("  {}", rl.ctl.display(false, &["show", "routes"]));
        println!("Press Enter to tear it down.");
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
    heading("Tearing down");
    rl.lab.teardown().map_err(|e| e.to_string())?;
    println!("  namespaces, processes and temp files removed");
    result
}

fn demo_steps(rl: &mut RouterLab) -> Result<(), String> {
    rl.wait_forwarding(Duration::from_secs(20))
        .map_err(|e| e.to_string())?;

    let ns_h1 = rl.lab.id().ns(RouterLab::H1);
    let steps: [(&str, &str, &str, Vec<&str>); 2] = [
        (
            "Ping h1 -> h2 through the dataplane",
            "h1 sends to its gateway 10.0.1.1 (the dataplane), which routes to h2; \
             ttl=63 is the one routed hop.",
            "ping",
            vec!["-n", "-c", "3", "-i", "0.2", RouterLab::H2_IP],
        ),
        (
            "Traceroute h1 -> h2",
            "The TTL-1 probe expires at the dataplane, which answers with ICMP \
             time-exceeded from 10.0.1.1.",
            "traceroute",
            vec![
                "-n",
                "-I",
                "-q",
                "1",
                "-w",
                "1",
                "-m",
                "5",
                RouterLab::H2_IP,
            ],
        ),
    ];
    for (title, about, prog, args) in steps {
        heading(title);
        println!("{about}");
        let mut line = vec!["netns", "exec", ns_h1.as_str(), prog];
        line.extend(args.iter().copied());
        show_cmd(&cmd::display("ip", &line));
        let out = rl
            .lab
            .exec_ok(RouterLab::H1, prog, &args)
            .map_err(|e| e.to_string())?;
        print!("{out}");
    }
    let shows = [
        (
            "runtime",
            "Per graph node: calls, packets (vectors) and CPU cycles per packet.",
        ),
        (
            "errors",
            "Every dropped packet is counted under a reason; the expired traceroute probe \
             shows up as ip4_ttl_expired.",
        ),
        (
            "interfaces",
            "The DPDK ports, their addresses and counters.",
        ),
    ];
    for (what, about) in shows {
        heading(&format!("aegisctl dp show {what}"));
        println!("{about}");
        show_cmd(&rl.ctl.display(false, &["show", what]));
        let out = rl.ctl.text(&["show", what]).map_err(|e| e.to_string())?;
        print!("{out}");
    }
    rl.check_alive("the demo").map_err(|e| e.to_string())
}

/// `aegis-lab cluster`: the control cluster, through the eyes of an operator.
fn cluster_demo(hold: bool) -> Result<(), String> {
    use aegis_lab::cpcluster::{CpCluster, Timing};
    use aegis_lab::Bins;

    env::check(&["ping"])?;
    heading("Building a 3-node control cluster");
    println!(
        "  n1 {} / n2 {} / n3 {} and a client {} on one bridge; cluster IP {}",
        CpCluster::addr(1),
        CpCluster::addr(2),
        CpCluster::addr(3),
        CpCluster::CLIENT_IP,
        CpCluster::CLUSTER_IP
    );
    let bins = Bins::locate();
    let mut c =
        CpCluster::start("democp", &bins, 3, Timing::default()).map_err(|e| e.to_string())?;
    let result = cluster_steps(&mut c, hold);
    heading("Tearing down");
    drop(c);
    result
}

fn cluster_steps(c: &mut aegis_lab::cpcluster::CpCluster, hold: bool) -> Result<(), String> {
    use aegis_lab::cpcluster::CpCluster;

    let vip = CpCluster::vip_endpoint();
    let ctl = |c: &CpCluster, args: &[&str]| -> Result<(), String> {
        show_cmd(&format!("aegisctl --server {vip} {}", args.join(" ")));
        let out = c
            .ctl(CpCluster::CLIENT, &vip, args)
            .map_err(|e| e.to_string())?;
        print!("{}", cmd::lossy(&out.stdout));
        eprint!("{}", cmd::lossy(&out.stderr));
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("aegisctl {} failed", args.join(" ")))
        }
    };
    heading("The cluster, asked through the cluster IP");
    ctl(c, &["cluster", "status"])?;
    heading("Declaring some desired state");
    ctl(
        c,
        &[
            "host",
            "create",
            "c1",
            "--role",
            "compute",
            "--address",
            "eth0=10.0.1.1/24",
            "--network",
            "management=eth0",
        ],
    )?;
    ctl(c, &["vpc", "create", "blue", "--vni", "1001"])?;
    ctl(
        c,
        &[
            "subnet",
            "create",
            "blue-web",
            "--vpc",
            "blue",
            "--cidr",
            "10.10.1.0/24",
            "--gateway",
            "10.10.1.1",
        ],
    )?;
    ctl(
        c,
        &[
            "route",
            "create",
            "c1-default",
            "--host",
            "c1",
            "--prefix",
            "0.0.0.0/0",
            "--via",
            "10.0.1.254",
        ],
    )?;
    println!("A rejected request changes nothing:");
    let _ = ctl(
        c,
        &[
            "subnet",
            "create",
            "blue-db",
            "--vpc",
            "blue",
            "--cidr",
            "10.10.1.128/25",
            "--gateway",
            "10.10.1.129",
        ],
    );
    let _ = ctl(c, &["vpc", "delete", "blue"]);
    ctl(c, &["host", "list"])?;

    let leader = c
        .wait_leader(&c.ids(), None, Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    heading(&format!("kill -9 the leader (node {leader})"));
    let (killed_at, _) = c.kill9(leader).map_err(|e| e.to_string())?;
    let others: Vec<u64> = c.ids().into_iter().filter(|i| *i != leader).collect();
    // The dead leader's kernel still has the address (nothing ran to remove it), so ping
    // proves nothing here: watch for a survivor to hold it.
    let mut took = None;
    while took.is_none() && killed_at.elapsed() < Duration::from_secs(10) {
        if c.cluster_ip_holders(&others)
            .map_err(|e| e.to_string())?
            .is_empty()
        {
            std::thread::sleep(Duration::from_millis(10));
        } else {
            took = Some(killed_at.elapsed());
        }
    }
    let took = took.ok_or("no survivor took the cluster IP within 10 s")?;
    let new = c
        .wait_leader(&others, Some(leader), Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    println!(
        "node {new} leads and holds the cluster IP {:.0} ms after the kill (two election \
         rounds are typical: see docs/controlplane.md)",
        took.as_secs_f64() * 1000.0
    );
    ctl(c, &["cluster", "status"])?;
    heading("Nothing was lost; writes go on");
    ctl(c, &["vpc", "list"])?;
    ctl(c, &["vpc", "create", "red", "--vni", "1002"])?;
    heading(&format!("Node {leader} comes back and catches up"));
    c.start_node(leader, false).map_err(|e| e.to_string())?;
    let rev = c
        .wait_converged(&c.ids(), Duration::from_secs(20))
        .map_err(|e| e.to_string())?;
    println!("all three nodes at revision {rev}");
    if hold {
        heading("The cluster is up");
        println!("Try, in another shell:");
        println!(
            "  ip netns exec {} aegisctl --server {vip} cluster status",
            c.lab.ns(CpCluster::CLIENT).map_err(|e| e.to_string())?
        );
        println!("Press Enter to tear it down.");
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
    Ok(())
}

/// `aegis-lab eastwest`: VMs on three dataplanes, two VPCs, Geneve on the underlay.
fn eastwest_demo(hold: bool) -> Result<(), String> {
    use aegis_lab::eastwest::{self, EastWestLab};

    env::check(&["ping", "ethtool", "python3", "tshark"])?;
    heading("Building the east-west lab");
    println!(
        "  fabric: bridges {ul} (underlay) and {mg} (management {cp}/24), aegis-controlplane \
         on {addr}",
        ul = eastwest::UNDERLAY_BRIDGE,
        mg = eastwest::MGMT_BRIDGE,
        cp = eastwest::CP_IP,
        addr = eastwest::CP_ADDR,
    );
    for h in eastwest::HOSTS {
        let vms: Vec<String> = eastwest::VMS
            .iter()
            .filter(|v| v.host == h)
            .map(|v| format!("{} {} ({})", v.name, v.ip, v.vpc))
            .collect();
        println!(
            "  {h}: aegis-dataplane, underlay {}, VMs {}",
            eastwest::underlay_ip(h).map_err(|e| e.to_string())?,
            vms.join(", ")
        );
    }
    let mut ew = EastWestLab::start("demoew").map_err(|e| e.to_string())?;
    println!("  lab dir (configs, logs): {}", ew.lab.dir().display());
    heading("The desired state, declared with aegisctl");
    for args in eastwest::declarations().map_err(|e| e.to_string())? {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        show_cmd(&format!(
            "aegisctl {}",
            cmd::display("", &argv).trim_start()
        ));
    }
    for kind in ["host", "port"] {
        show_cmd(&ew.cp_display(&[kind, "list"]));
        print!("{}", ew.cp(&[kind, "list"]).map_err(|e| e.to_string())?);
    }

    let result = eastwest_steps(&mut ew);
    if result.is_err() {
        eprintln!(
            "\n(the tour failed; run with AEGIS_LAB_KEEP=1 to keep the daemons' logs in {})",
            ew.lab.dir().display()
        );
    }
    heading("What to try next");
    let ns = |h: &str| ew.lab.id().ns(h);
    let dp = |h: &str, rest: &[&str]| ew.dp(h).map(|c| c.display(false, rest)).unwrap_or_default();
    println!("  ip netns exec {} ping 10.1.2.14   # b1 -> b4", ns("b1"));
    println!(
        "  ip netns exec {} tshark -i {} -f 'udp port {}' -T fields -e geneve.vni -e ip.src -e ip.dst",
        ns(eastwest::FABRIC),
        eastwest::UNDERLAY_BRIDGE,
        eastwest::GENEVE_PORT
    );
    println!("  {}", ew.cp_display(&["host", "list"]));
    println!(
        "  {}",
        ew.cp_display(&[
            "security-group",
            "create",
            "sg-web",
            "--rule",
            "id=ssh,dir=ingress,proto=tcp,ports=22,remote=10.1.0.0/16,action=allow"
        ])
    );
    println!(
        "  {}   # then edit security_groups and: aegisctl apply -f b2.json",
        ew.cp_display(&["port", "get", "b2", "-o", "json"])
    );
    println!("  {}", dp("c1", &["show", "errors"]));
    println!("  {}", dp("c1", &["show", "interfaces"]));
    if hold {
        println!("The lab is up. Press Enter to tear it down.");
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
    heading("Tearing down");
    ew.lab.teardown().map_err(|e| e.to_string())?;
    println!("  namespaces, processes and temp files removed");
    result
}

fn eastwest_steps(ew: &mut aegis_lab::EastWestLab) -> Result<(), String> {
    use aegis_lab::eastwest;

    let pings: [(&str, &str, &str, bool); 4] = [
        (
            "b1 (c1) -> b2 (c2): same subnet, over Geneve",
            "b1",
            "10.1.1.12",
            true,
        ),
        (
            "b1 (c1) -> b4 (c3): another subnet, routed by the distributed router",
            "b1",
            "10.1.2.14",
            true,
        ),
        (
            "r1 (c2) -> 10.1.1.12: the same address in red is r2 (c3), not b2",
            "r1",
            "10.1.1.12",
            true,
        ),
        (
            "b1 -> 10.1.3.5: only red has it, so blue gets no answer",
            "b1",
            "10.1.3.5",
            false,
        ),
    ];
    for (title, from, dst, answers) in pings {
        heading(title);
        if answers {
            ew.wait_ping(from, dst, Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
        }
        let ns = ew.lab.id().ns(from);
        show_cmd(&format!("ip netns exec {ns} ping -c 3 -i 0.2 {dst}"));
        let out = ew.ping(from, dst, 3).map_err(|e| e.to_string())?;
        print!("{}", cmd::lossy(&out.stdout));
        if out.status.success() != answers {
            return Err(format!(
                "ping {from} -> {dst}: expected {}",
                if answers { "answers" } else { "no answer" }
            ));
        }
    }
    heading("The underlay: each VPC under its VNI");
    show_cmd(&format!(
        "ip netns exec {} tshark -i {} -f 'udp port {}' -T fields -e geneve.vni -e ip.src -e ip.dst",
        ew.lab.id().ns(eastwest::FABRIC),
        eastwest::UNDERLAY_BRIDGE,
        eastwest::GENEVE_PORT
    ));
    let records = ew
        .capture_underlay(|ew| {
            ew.ping("b1", "10.1.1.12", 1)?;
            ew.ping("r1", "10.1.1.12", 1)?;
            Ok(())
        })
        .map_err(|e| e.to_string())?;
    for r in &records {
        println!("  {r}");
    }
    if records.is_empty() {
        return Err("no Geneve packet seen on the underlay".into());
    }
    let traces: [(&str, &[&str]); 2] = [
        (
            "Trace a probe b1 -> b4: every hop on c1 and c3, and the verdict",
            &["trace", "--from", "b1", "--dst", "10.1.2.14"],
        ),
        (
            "Trace b1 -> 10.1.3.5: where and why it dies, beside the expected path",
            &["trace", "--from", "b1", "--dst", "10.1.3.5"],
        ),
    ];
    for (title, args) in traces {
        heading(title);
        show_cmd(&ew.cp_display(args));
        print!("{}", ew.cp(args).map_err(|e| e.to_string())?);
    }
    heading("Drops of every host, through the control plane");
    show_cmd(&ew.cp_display(&["drops"]));
    print!("{}", ew.cp(&["drops"]).map_err(|e| e.to_string())?);
    heading("Drops on c1");
    let c1 = ew.dp("c1").map_err(|e| e.to_string())?;
    show_cmd(&c1.display(false, &["show", "errors"]));
    print!(
        "{}",
        c1.text(&["show", "errors"]).map_err(|e| e.to_string())?
    );
    let views: [(&str, &[&str]); 3] = [
        (
            "The VPCs as c1 sees them: subnets, routes, where each port lives",
            &["show", "vpc"],
        ),
        (
            "c1's connection table: the pings above, tracked on b1's port",
            &["show", "connections", "--port", "b1"],
        ),
        (
            "VM ports on c1 with their counters",
            &["show", "interfaces"],
        ),
    ];
    for (title, args) in views {
        heading(title);
        show_cmd(&c1.display(false, args));
        print!("{}", c1.text(args).map_err(|e| e.to_string())?);
    }
    ew.check_alive("the tour").map_err(|e| e.to_string())
}
