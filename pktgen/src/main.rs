//! `aegis-pktgen`: a DPDK traffic generator measuring rate, loss, latency and outage gaps
//! (`run`, see docs/pktgen.md), and benchmark traffic and route tables written to files.
//!
//! ```text
//! aegis-pktgen run --port net_memif0,role=client,socket=/tmp/peer.sock --rate 100kpps \
//!     --duration 5 --output json -- -l 0,1 --no-huge -m 512 --no-pci
//! aegis-pktgen pcap --out flows.pcap --count 100000 --flows 1024 \
//!     --src-mac 02:00:00:00:00:99 --dst-mac 02:00:00:00:00:01 --routes routes.txt --seed 1
//! aegis-pktgen routes --count 100000 --out routes.txt --via 192.168.1.2 \
//!     --l3fwd-out rules.cfg --l3fwd-port 1 --exclude 192.168.0.0/16 --seed 1
//! ```
#![deny(unsafe_code)]

use std::fs::File;
use std::io::BufWriter;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use aegis_pktgen::engine;
use aegis_pktgen::flows::FlowMix;
use aegis_pktgen::net::{Ipv4Prefix, MacAddr};
use aegis_pktgen::profile::{GeneveSection, PortSection, Profile, RunSection, TrafficSection};
use aegis_pktgen::report::Summary;
use aegis_pktgen::routes::{self, Action, GenOptions};
use aegis_pktgen::template::FrameTable;
use aegis_pktgen::values::{AddrRange, FlowMode, PortRange, Protocol, Rate, SizeSpec};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "aegis-pktgen",
    version,
    about = "Benchmark traffic and route tables for Aegis"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Send traffic on a DPDK port and measure what comes back: rate, loss, reordering,
    /// duplicates, latency and the longest gap (see docs/pktgen.md).
    Run(Box<RunArgs>),
    /// Write a pcap of 64-byte (by default) Ethernet/IPv4/UDP packets from a flow mix.
    Pcap(PcapArgs),
    /// Write a random route table as an Aegis routes file (and an l3fwd rule file).
    Routes(RoutesArgs),
}

#[derive(Args, Debug)]
struct PcapArgs {
    /// Output pcap file.
    #[arg(long)]
    out: PathBuf,
    /// Number of packets.
    #[arg(long)]
    count: usize,
    /// Number of distinct flows (5-tuples).
    #[arg(long, default_value_t = 1024)]
    flows: usize,
    /// Ethernet source MAC.
    #[arg(long, default_value = "02:00:00:00:00:99")]
    src_mac: MacAddr,
    /// Ethernet destination MAC (the device under test).
    #[arg(long)]
    dst_mac: MacAddr,
    /// Source addresses are drawn from this prefix.
    #[arg(long, default_value = "198.18.0.0/15")]
    src_prefix: Ipv4Prefix,
    /// Destination prefix (repeatable); each flow picks one uniformly and a host in it.
    #[arg(long = "dst-prefix", conflicts_with = "routes")]
    dst_prefix: Vec<Ipv4Prefix>,
    /// Aegis routes file: each flow picks one of its forwarding routes uniformly and a host
    /// in that route's prefix.
    #[arg(long)]
    routes: Option<PathBuf>,
    /// Ethernet frame size including the 4-byte FCS, which is not stored (64 -> 60 bytes).
    #[arg(long, default_value_t = 64)]
    frame_size: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Output format of the final summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Aligned text.
    Table,
    /// One JSON object (units in the field names).
    Json,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Traffic profile (TOML, see docs/pktgen.md); the flags below override its fields.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// DPDK devargs of the port to send on (and receive on, without --rx-port) [port.tx].
    #[arg(long)]
    port: Option<String>,
    /// DPDK devargs of the port to receive on [port.rx].
    #[arg(long)]
    rx_port: Option<String>,
    /// Seconds to wait for the link(s) [port.link_timeout_s].
    #[arg(long)]
    link_timeout: Option<f64>,
    /// line, packets/s (100000, 100kpps, 1.5Mpps) or bits/s (500Mbps, 10Gbps) [run.rate].
    #[arg(long)]
    rate: Option<Rate>,
    /// Seconds of transmission [run.duration_s].
    #[arg(long)]
    duration: Option<f64>,
    /// Transmit cores, one stream each [run.tx_cores].
    #[arg(long)]
    tx_cores: Option<u16>,
    /// Packets per tx burst [run.burst].
    #[arg(long)]
    burst: Option<usize>,
    /// Milliseconds to keep receiving after transmission stops [run.drain_ms].
    #[arg(long)]
    drain_ms: Option<u64>,
    /// udp or tcp-syn [traffic.protocol].
    #[arg(long, value_enum)]
    protocol: Option<Protocol>,
    /// Frame size, FCS included: 64, 64-1518 or imix [traffic.size].
    #[arg(long)]
    size: Option<SizeSpec>,
    /// Distinct flows [traffic.flows].
    #[arg(long)]
    flows: Option<u64>,
    /// sequential or random [traffic.flow_mode].
    #[arg(long, value_enum)]
    flow_mode: Option<FlowMode>,
    /// Ethernet source [traffic.src_mac].
    #[arg(long)]
    src_mac: Option<MacAddr>,
    /// Ethernet destination [traffic.dst_mac].
    #[arg(long)]
    dst_mac: Option<MacAddr>,
    /// IPv4 sources: A.B.C.D, A.B.C.D-E.F.G.H or A.B.C.D/LEN [traffic.src_ip].
    #[arg(long)]
    src_ip: Option<AddrRange>,
    /// IPv4 destinations [traffic.dst_ip].
    #[arg(long)]
    dst_ip: Option<AddrRange>,
    /// L4 source ports: N or N-M [traffic.src_port].
    #[arg(long)]
    src_port: Option<PortRange>,
    /// L4 destination ports [traffic.dst_port].
    #[arg(long)]
    dst_port: Option<PortRange>,
    /// IPv4 TTL [traffic.ttl].
    #[arg(long)]
    ttl: Option<u8>,
    /// 802.1Q VLAN id [traffic.vlan].
    #[arg(long)]
    vlan: Option<u16>,
    /// Geneve VNI: encapsulate every packet in Geneve [traffic.geneve.vni].
    #[arg(long)]
    geneve_vni: Option<u32>,
    /// Random seed [traffic.seed].
    #[arg(long)]
    seed: Option<u64>,
    /// Final summary format (stdout).
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// EAL arguments, after `--` [port.eal] (default: --no-huge -m 512 --no-pci).
    #[arg(last = true)]
    eal: Vec<String>,
}

impl RunArgs {
    /// The flags as a profile, to overlay on the file's.
    fn as_profile(&self) -> Profile {
        Profile {
            port: PortSection {
                tx: self.port.clone(),
                rx: self.rx_port.clone(),
                eal: (!self.eal.is_empty()).then(|| self.eal.clone()),
                link_timeout_s: self.link_timeout,
            },
            traffic: TrafficSection {
                protocol: self.protocol,
                size: self.size,
                flows: self.flows,
                flow_mode: self.flow_mode,
                src_mac: self.src_mac,
                dst_mac: self.dst_mac,
                src_ip: self.src_ip,
                dst_ip: self.dst_ip,
                src_port: self.src_port,
                dst_port: self.dst_port,
                ttl: self.ttl,
                vlan: self.vlan,
                vlan_pcp: None,
                geneve: self.geneve_vni.map(|vni| GeneveSection {
                    vni: Some(vni),
                    ..GeneveSection::default()
                }),
                seed: self.seed,
            },
            run: RunSection {
                rate: self.rate,
                duration_s: self.duration,
                tx_cores: self.tx_cores,
                burst: self.burst,
                drain_ms: self.drain_ms,
            },
        }
    }
}

#[derive(Args, Debug)]
struct RoutesArgs {
    /// Number of unique prefixes.
    #[arg(long)]
    count: usize,
    /// Output Aegis routes file.
    #[arg(long)]
    out: PathBuf,
    /// Every route goes via this gateway ...
    #[arg(long, conflicts_with = "dev", required_unless_present = "dev")]
    via: Option<Ipv4Addr>,
    /// ... or directly out of this port.
    #[arg(long)]
    dev: Option<String>,
    /// Also write the table as a DPDK l3fwd LPM rule file (--rule_ipv4).
    #[arg(long)]
    l3fwd_out: Option<PathBuf>,
    /// l3fwd output port for every rule.
    #[arg(long, default_value_t = 1)]
    l3fwd_port: u8,
    /// Shortest prefix length.
    #[arg(long, default_value_t = 16)]
    min_len: u8,
    /// Longest prefix length (60 % of the routes have it).
    #[arg(long, default_value_t = 24)]
    max_len: u8,
    /// Prefixes the table must not overlap (repeatable), e.g. the connected subnets.
    #[arg(long)]
    exclude: Vec<Ipv4Prefix>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Run(args) => return run(*args),
        Cmd::Pcap(args) => pcap(args),
        Cmd::Routes(args) => routes_cmd(args),
    };
    match result {
        Ok(msg) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("aegis-pktgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exit code for a refused profile or flag (as clap's usage errors).
const EXIT_CONFIG: u8 = 2;

fn run(args: RunArgs) -> ExitCode {
    let fail = |code: u8, msg: String| {
        eprintln!("aegis-pktgen: {msg}");
        ExitCode::from(code)
    };
    let base = match &args.profile {
        Some(path) => match Profile::load(path) {
            Ok(p) => p,
            Err(e) => return fail(EXIT_CONFIG, e.to_string()),
        },
        None => Profile::default(),
    };
    let spec = match base.overlay(args.as_profile()).resolve() {
        Ok(s) => s,
        Err(e) => return fail(EXIT_CONFIG, e.to_string()),
    };
    let table = match FrameTable::build(&spec.traffic) {
        Ok(t) => Arc::new(t),
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, interrupt.clone()) {
            return fail(1, format!("cannot install the signal handler: {e}"));
        }
    }
    let outcome = match engine::run(&spec, table, &interrupt, !args.quiet) {
        Ok(o) => o,
        Err(e) => return fail(1, e.to_string()),
    };
    let summary = Summary::new(&spec, &outcome);
    match args.output {
        Output::Table => print!("{}", summary.table()),
        Output::Json => match serde_json::to_string_pretty(&summary) {
            Ok(j) => println!("{j}"),
            Err(e) => return fail(1, format!("cannot encode the summary: {e}")),
        },
    }
    ExitCode::SUCCESS
}

fn create(path: &Path) -> Result<BufWriter<File>, String> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

fn pcap(args: PcapArgs) -> Result<String, String> {
    let destinations = match &args.routes {
        Some(path) => {
            let table = routes::read_routes(path).map_err(|e| e.to_string())?;
            routes::forwarding_prefixes(&table, path).map_err(|e| e.to_string())?
        }
        None if args.dst_prefix.is_empty() => vec!["10.0.0.0/8".parse().expect("literal")],
        None => args.dst_prefix.clone(),
    };
    let mix = FlowMix {
        count: args.count,
        flows: args.flows,
        src_mac: args.src_mac,
        dst_mac: args.dst_mac,
        src_prefix: args.src_prefix,
        destinations,
        frame_size: args.frame_size,
        seed: args.seed,
    };
    mix.validate().map_err(|e| e.to_string())?;
    let out = create(&args.out)?;
    let s = mix.write_pcap(out).map_err(|e| e.to_string())?;
    Ok(format!(
        "wrote {} packets ({} flows, {} bytes) to {}",
        s.packets,
        s.flows,
        s.bytes,
        args.out.display()
    ))
}

fn routes_cmd(args: RoutesArgs) -> Result<String, String> {
    let table = routes::generate(&GenOptions {
        count: args.count,
        min_len: args.min_len,
        max_len: args.max_len,
        exclude: args.exclude.clone(),
        seed: args.seed,
    })
    .map_err(|e| e.to_string())?;
    let action = match (args.via, args.dev) {
        (Some(gw), _) => Action::Via(gw),
        (None, Some(dev)) => Action::Dev(dev),
        (None, None) => return Err("one of --via or --dev is required".into()),
    };
    let write_err = |p: &Path, e: std::io::Error| format!("cannot write {}: {e}", p.display());
    routes::write_aegis(&table, &action, create(&args.out)?)
        .map_err(|e| write_err(&args.out, e))?;
    let mut msg = format!("wrote {} routes to {}", table.len(), args.out.display());
    if let Some(path) = &args.l3fwd_out {
        routes::write_l3fwd(&table, args.l3fwd_port, create(path)?)
            .map_err(|e| write_err(path, e))?;
        msg.push_str(&format!(" and {}", path.display()));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_values_name_the_option() {
        let e = Cli::try_parse_from([
            "aegis-pktgen",
            "pcap",
            "--out",
            "x",
            "--count",
            "1",
            "--dst-mac",
            "zz",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--dst-mac") && e.contains("invalid MAC address"),
            "{e}"
        );
        let e = Cli::try_parse_from(["aegis-pktgen", "routes", "--count", "1", "--out", "x"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--via"), "{e}");
    }
}
