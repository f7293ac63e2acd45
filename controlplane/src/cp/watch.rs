//! `aegisctl trace watch --host H`: continuous tracing of real traffic on one host's
//! dataplane, through the control plane's `Diagnostics.TraceWatch`. The filter is compiled
//! here (tcpdump syntax, as for captures); each watched packet's path is printed as it
//! completes (a header line with the packet and its verdict, then its hops), or as one JSON
//! document per line; the counters go to stderr at the end.

use std::io::Write;

use aegis_api::controlplane::v1::HostTraceWatchRequest;
use aegis_api::dataplane::v1 as pb;
use clap::Args;

use super::{Ctx, Output};
use crate::dp::capture::filter;
use crate::error::CliError;

/// `trace watch`.
#[derive(Debug, Clone, Args)]
pub struct TraceWatchArgs {
    /// The host whose dataplane traces its traffic.
    #[arg(long)]
    pub host: String,
    /// Only packets this tcpdump filter takes (`man pcap-filter`): matched on the frame as
    /// received, and on the inner frame of Geneve packets from other hosts.
    #[arg(short = 'f', long, default_value = "")]
    pub filter: String,
    /// Only packets received on this dataplane port (repeat for several; default: every
    /// port).
    #[arg(long)]
    pub port: Vec<String>,
    /// Do not match the inner frames of Geneve packets from other hosts.
    #[arg(long)]
    pub no_overlay: bool,
    /// Most packets traced per second on each worker (the rest are counted, not traced).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: u32,
    /// Stop after this many paths.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// One line per packet (the header line only, no hops).
    #[arg(long)]
    pub brief: bool,
    /// Output format: text, or one JSON document per path.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

impl TraceWatchArgs {
    /// The request to the control plane (the filter compiled).
    pub fn request(&self) -> Result<HostTraceWatchRequest, CliError> {
        let program = if self.filter.trim().is_empty() {
            Vec::new()
        } else {
            filter::compile(&self.filter)?
        };
        if let Some(d) = self.duration {
            if !(d.is_finite() && d > 0.0) {
                return Err(CliError::Usage(format!(
                    "--duration {d}: expected a positive number of seconds"
                )));
            }
        }
        Ok(HostTraceWatchRequest {
            host: self.host.clone(),
            watch: Some(pb::TraceWatchRequest {
                ports: self.port.clone(),
                filter: self.filter.clone(),
                program,
                count: self.count.unwrap_or(0),
                duration_seconds: self.duration.unwrap_or(0.0),
                rate: self.rate,
                no_overlay: self.no_overlay,
            }),
        })
    }
}

/// Runs the watch until its count or duration, Ctrl-C, or the host's dataplane ends it.
pub(super) async fn watch(
    ctx: &Ctx,
    a: &TraceWatchArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let req = a.request()?;
    let mut stream = ctx
        .call(|mut c| {
            let req = req.clone();
            async move { c.diagnostics.trace_watch(req).await }
        })
        .await?;
    let server = ctx.server.clone();
    let call_err = |s: tonic::Status| {
        if s.code() == tonic::Code::Unavailable {
            CliError::ControlPlane {
                server: server.clone(),
                detail: s.message().to_owned(),
            }
        } else {
            CliError::Rejected(s)
        }
    };
    let mut host = a.host.clone();
    let mut last = None;
    let mut n = 0u64;
    loop {
        let event = tokio::select! {
            e = stream.message() => e.map_err(call_err)?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(pb::TraceWatchEvent { event: Some(event) }) = event else {
            break;
        };
        match event {
            pb::trace_watch_event::Event::Started(s) => {
                host = s.host.clone();
                if a.output == Output::Table {
                    let ports = if s.ports.is_empty() {
                        "no port".to_owned()
                    } else {
                        s.ports.join(", ")
                    };
                    let what = if a.filter.is_empty() {
                        "every packet".to_owned()
                    } else {
                        format!("'{}'", a.filter)
                    };
                    eprintln!(
                        "watching {what} on {host} (received on {ports}{}), at most {} packets/s per worker",
                        if a.no_overlay { "" } else { "; and from other hosts over Geneve" },
                        s.rate
                    );
                }
            }
            pb::trace_watch_event::Event::Path(p) => {
                n += 1;
                match a.output {
                    Output::Json => {
                        let doc = serde_json::json!({ "host": host, "path": p });
                        writeln!(out, "{doc}")?;
                    }
                    Output::Table => write_path(out, &host, n, &p, a.brief)?,
                }
                out.flush()?;
            }
            pb::trace_watch_event::Event::Stats(s) => {
                let done = s.last;
                last = Some(s);
                if done {
                    break;
                }
            }
        }
    }
    if let Some(s) = last {
        eprintln!("{}", stats_line(n, &s));
    }
    Ok(())
}

/// The counters, for stderr at the end.
fn stats_line(printed: u64, s: &pb::TraceWatchStats) -> String {
    let mut line = format!(
        "{printed} paths; {} packets matched, {} traced",
        s.matched, s.traced
    );
    if s.rate_limited > 0 {
        line += &format!(", {} over the rate (not traced)", s.rate_limited);
    }
    if s.no_slot > 0 {
        line += &format!(", {} not traced (no free trace slot)", s.no_slot);
    }
    if s.overwritten > 0 {
        line += &format!(
            ", {} paths overwritten before they were sent (slow reader)",
            s.overwritten
        );
    }
    if !s.reason.is_empty() {
        line += &format!("; ended: {}", s.reason);
    }
    line
}

fn clock(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let micros = (unix_ns % 1_000_000_000) / 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    format!("{h:02}:{m:02}:{s:02}.{micros:06}")
}

/// How the packet ended, in words.
fn verdict(p: &pb::WatchedPath) -> String {
    match p.verdict.as_str() {
        "dropped" => {
            let mut v = format!("DROPPED {} at {}", p.reason, p.node);
            if !p.rule.is_empty() {
                v += &format!(" (rule {})", p.rule);
            }
            v
        }
        "transmitted" => format!("transmitted on {}", p.port),
        "delivered" => format!("delivered to {}", p.port),
        "consumed" => format!("consumed by the dataplane at {}", p.node),
        "handed_off" => "handed to the worker that owns the flow".to_owned(),
        "incomplete" => format!("no end within a second (last seen at {})", p.node),
        other => other.to_owned(),
    }
}

/// A path: `TIME HOST #N SUMMARY -> VERDICT [(DURATION)]`, then its hops numbered.
fn write_path(
    out: &mut dyn Write,
    host: &str,
    n: u64,
    p: &pb::WatchedPath,
    brief: bool,
) -> std::io::Result<()> {
    let start = p.hops.first().map_or(0, |h| h.unix_ns);
    // Hops of one burst share its timestamp: a time shows only for a packet that waited
    // (held for a neighbour, handed to another worker).
    let took = if p.duration_ns > 0 {
        format!(" ({:.1} µs)", p.duration_ns as f64 / 1000.0)
    } else {
        String::new()
    };
    writeln!(
        out,
        "{} {host} #{n} {} -> {}{took}",
        clock(start),
        if p.summary.is_empty() {
            "(headers not recorded)"
        } else {
            &p.summary
        },
        verdict(p),
    )?;
    if brief {
        return Ok(());
    }
    let width = p.hops.iter().map(|h| h.node.len()).max().unwrap_or(0);
    for (i, h) in p.hops.iter().enumerate() {
        let mut what = h.action.clone();
        if !h.port.is_empty() {
            what += &format!(" {}", h.port);
        }
        if !h.next_node.is_empty() {
            what += &format!(" -> {}", h.next_node);
        }
        if !h.reason.is_empty() {
            what += &format!(" {}", h.reason);
        }
        let detail = if h.detail.is_empty() {
            String::new()
        } else {
            format!("  [{}]", h.detail)
        };
        writeln!(out, "  {:>2} {:<width$}  {what}{detail}", i + 1, h.node)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(node: &str, action: &str, unix_ns: u64) -> pb::TraceHop {
        pb::TraceHop {
            unix_ns,
            node: node.into(),
            action: action.into(),
            ..Default::default()
        }
    }

    #[test]
    fn paths_print_a_header_with_the_verdict_then_numbered_hops() {
        let mut h0 = hop("ethernet-input", "received", 3_600_000_001_000);
        h0.port = "vm-b1".into();
        h0.detail = "watch matched: IP 10.1.1.11 > 10.1.1.12: ICMP echo request, length 98".into();
        let mut h1 = hop("ethernet-input", "forwarded", 3_600_000_002_000);
        h1.next_node = "vm-input".into();
        let mut h2 = hop("security-group", "dropped", 3_600_000_004_500);
        h2.reason = "security_group_deny".into();
        h2.rule = "web/ssh".into();
        let p = pb::WatchedPath {
            trace_id: 1,
            summary: "IP 10.1.1.11 > 10.1.1.12: ICMP echo request, length 98".into(),
            hops: vec![h0, h1, h2],
            verdict: "dropped".into(),
            reason: "security_group_deny".into(),
            node: "security-group".into(),
            rule: "web/ssh".into(),
            duration_ns: 3_500,
            ..Default::default()
        };
        let mut out = Vec::new();
        write_path(&mut out, "c1", 7, &p, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "01:00:00.000001 c1 #7 IP 10.1.1.11 > 10.1.1.12: ICMP echo request, length 98 -> \
             DROPPED security_group_deny at security-group (rule web/ssh) (3.5 µs)"
        );
        assert_eq!(
            lines[1],
            "   1 ethernet-input  received vm-b1  [watch matched: IP 10.1.1.11 > 10.1.1.12: ICMP echo request, length 98]"
        );
        assert_eq!(lines[2], "   2 ethernet-input  forwarded -> vm-input");
        assert_eq!(lines[3], "   3 security-group  dropped security_group_deny");
        let mut brief = Vec::new();
        write_path(&mut brief, "c1", 7, &p, true).unwrap();
        assert_eq!(String::from_utf8(brief).unwrap().lines().count(), 1);
    }

    #[test]
    fn the_stats_line_names_what_was_not_traced() {
        let s = pb::TraceWatchStats {
            matched: 50,
            traced: 20,
            rate_limited: 30,
            overwritten: 2,
            reason: "count".into(),
            ..Default::default()
        };
        assert_eq!(
            stats_line(18, &s),
            "18 paths; 50 packets matched, 20 traced, 30 over the rate (not traced), 2 paths \
             overwritten before they were sent (slow reader); ended: count"
        );
    }
}
