//! `aegis-pktgen`: writes benchmark traffic and route tables to files.
//!
//! ```text
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

use aegis_pktgen::flows::FlowMix;
use aegis_pktgen::net::{Ipv4Prefix, MacAddr};
use aegis_pktgen::routes::{self, Action, GenOptions};
use clap::{Args, Parser, Subcommand};

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
