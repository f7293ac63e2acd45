//! `aegisctl trace`: a probe sent as a VM would send it, traced through every dataplane it
//! crosses; printed as numbered hops grouped by host (with the time between hosts), the
//! verdict, the path the desired state expects, and where the two disagree.

use std::io::Write;

use aegis_api::controlplane::v1::{TraceRequest, TraceResponse};
use aegis_api::dataplane::v1::InjectProbeRequest;
use clap::{Args, Subcommand, ValueEnum};

use super::watch::TraceWatchArgs;
use super::{render, Ctx};
use crate::error::CliError;

/// How `trace` prints its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum TraceOutput {
    /// Hops grouped by host, verdict, expected path and findings.
    #[default]
    Table,
    /// The control plane's TraceResponse as JSON (schema in docs/trace.md).
    Json,
    /// A Graphviz graph of the hops (`| dot -Tsvg`).
    Dot,
}

/// `trace`: a probe (the options), or `trace watch` (the subcommand).
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TraceArgs {
    /// `watch`: trace real traffic instead of a probe.
    #[command(subcommand)]
    pub sub: Option<TraceSub>,
    /// The VM port (Port object) the probe is sent from.
    #[arg(
        long,
        required_unless_present = "from_external",
        conflicts_with = "from_external"
    )]
    pub from: Option<String>,
    /// A gateway group: the probe enters at its master's external port as if from the
    /// external network (for inbound problems; --src defaults to the external network's
    /// gateway address).
    #[arg(long, value_name = "GROUP")]
    pub from_external: Option<String>,
    /// Destination address.
    #[arg(long, required = true)]
    pub dst: Option<std::net::Ipv4Addr>,
    /// Source address (default: the port's first address).
    #[arg(long)]
    pub src: Option<std::net::Ipv4Addr>,
    /// Protocol.
    #[arg(long, default_value = "icmp", value_parser = ["icmp", "tcp", "udp"])]
    pub proto: String,
    /// Source port (tcp/udp).
    #[arg(long, default_value_t = 33434)]
    pub sport: u16,
    /// Destination port (tcp/udp).
    #[arg(long, default_value_t = 80)]
    pub dport: u16,
    /// IPv4 TTL.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u8).range(1..))]
    pub ttl: u8,
    /// IPv4 total length in bytes (default 64).
    #[arg(long)]
    pub size: Option<u16>,
    /// How long to gather hop records, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub wait_ms: u32,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: TraceOutput,
}

/// `trace`'s subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum TraceSub {
    /// Trace real traffic that matches a filter on one host, continuously, and print each
    /// packet's path through that host's dataplane as it completes.
    Watch(TraceWatchArgs),
}

/// Runs the trace (or the watch) and prints it.
pub(super) async fn trace(ctx: &Ctx, a: &TraceArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if let Some(TraceSub::Watch(w)) = &a.sub {
        return super::watch::watch(ctx, w, out).await;
    }
    let Some(dst) = a.dst else {
        return Err(CliError::Usage("--dst is required".into()));
    };
    let req = TraceRequest {
        probe: Some(InjectProbeRequest {
            port: a.from.clone().unwrap_or_default(),
            dst: dst.to_string(),
            src: a.src.map(|s| s.to_string()).unwrap_or_default(),
            proto: a.proto.clone(),
            sport: u32::from(a.sport),
            dport: u32::from(a.dport),
            ttl: u32::from(a.ttl),
            size: a.size.map(u32::from).unwrap_or_default(),
            trace_id: 0,
            from_external: false,
        }),
        wait_ms: a.wait_ms,
        from_external: a.from_external.clone().unwrap_or_default(),
    };
    let r = ctx
        .call(|mut c| {
            let req = req.clone();
            async move { c.diagnostics.trace(req).await }
        })
        .await?;
    match a.output {
        TraceOutput::Json => render::json(out, &r),
        TraceOutput::Table => text(out, &r),
        TraceOutput::Dot => dot(out, &r),
    }
}

fn hop_line(h: &aegis_api::dataplane::v1::TraceHop) -> String {
    let mut s = format!("{:<15} {:<11}", h.node, h.action);
    let mut what = Vec::new();
    if !h.next_node.is_empty() {
        what.push(format!("-> {}", h.next_node));
    }
    if !h.port.is_empty() {
        what.push(format!("port {}", h.port));
    }
    if !h.reason.is_empty() {
        what.push(format!("reason {}", h.reason));
    }
    if !h.detail.is_empty() {
        what.push(h.detail.clone());
    }
    if !what.is_empty() {
        s.push(' ');
        s.push_str(&what.join("  "));
    }
    s
}

/// The human rendering.
pub fn text(out: &mut dyn Write, r: &TraceResponse) -> Result<(), CliError> {
    writeln!(out, "trace {:016x} from host {}", r.trace_id, r.from_host)?;
    let mut n = 0;
    let mut prev_end: Option<u64> = None;
    for h in &r.hosts {
        let first = h.hops.first().map_or(0, |x| x.unix_ns);
        let gap = match prev_end {
            Some(p) => format!(
                ", +{:.3} ms after the previous host",
                first.saturating_sub(p) as f64 / 1e6
            ),
            None => String::new(),
        };
        writeln!(out)?;
        writeln!(
            out,
            "host {} (revision {}{gap})",
            h.host, h.applied_revision
        )?;
        for x in &h.hops {
            n += 1;
            let t = x.unix_ns.saturating_sub(first) as f64 / 1e3;
            writeln!(out, "  {n:>3}  {t:>8.1}us  {}", hop_line(x))?;
        }
        prev_end = h.hops.last().map(|x| x.unix_ns);
    }
    if r.hosts.is_empty() {
        writeln!(
            out,
            "\nno hop recorded (the probe was not injected, or records were lost)"
        )?;
    }
    writeln!(out)?;
    if let Some(v) = &r.verdict {
        match v.outcome.as_str() {
            "dropped" => {
                write!(
                    out,
                    "verdict: DROPPED on host {} at {}: {}",
                    v.host, v.node, v.reason
                )?;
                if !v.rule.is_empty() {
                    write!(out, " (rule {})", v.rule)?;
                }
                if !v.detail.is_empty() {
                    write!(out, " — {}", v.detail)?;
                }
                writeln!(out)?;
            }
            "delivered" => writeln!(
                out,
                "verdict: DELIVERED on host {} to {} (consumed there: probes never reach a VM)",
                v.host, v.port
            )?,
            _ => writeln!(out, "verdict: LOST — {} on host {}", v.detail, v.host)?,
        }
    }
    if let Some(e) = &r.expected {
        let what = match e.outcome.as_str() {
            "deliver" => format!("deliver to port {} on host {}", e.port, e.host),
            "external" => format!(
                "out to the external network through {}",
                e.gateways.join(" or ")
            ),
            o => o.replace('_', " "),
        };
        writeln!(
            out,
            "expected (desired state, revision {}): {what} — {}",
            r.desired_revision, e.via
        )?;
    }
    for f in &r.findings {
        writeln!(out, "finding: {f}")?;
    }
    for u in &r.unreachable {
        writeln!(out, "not asked: host {}: {}", u.host, u.error)?;
    }
    Ok(())
}

/// A Graphviz digraph: one cluster per host, hops in order.
pub fn dot(out: &mut dyn Write, r: &TraceResponse) -> Result<(), CliError> {
    writeln!(out, "digraph trace_{:016x} {{", r.trace_id)?;
    writeln!(out, "  rankdir=LR; node [shape=box, fontname=monospace];")?;
    let mut n = 0;
    for (i, h) in r.hosts.iter().enumerate() {
        writeln!(
            out,
            "  subgraph cluster_{i} {{ label={:?};",
            format!("host {}", h.host)
        )?;
        for x in &h.hops {
            n += 1;
            let color = match x.action.as_str() {
                "dropped" => ", color=red",
                "delivered" => ", color=darkgreen",
                _ => "",
            };
            writeln!(
                out,
                "    h{n} [label={:?}{color}];",
                format!("{n}. {}", hop_line(x))
            )?;
        }
        writeln!(out, "  }}")?;
    }
    for i in 1..n {
        writeln!(out, "  h{i} -> h{};", i + 1)?;
    }
    writeln!(out, "}}")?;
    Ok(())
}
