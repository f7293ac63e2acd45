//! `aegisctl dp capture`: packet capture on a running dataplane, at ports (rx, tx), on the
//! drop path and at the input of graph nodes (`--node`). The tcpdump filter is
//! compiled here with libpcap ([`filter`]); the dataplane runs the program on its workers and
//! streams matching packets (the `Capture` RPC); they are written as pcapng ([`pcapng`],
//! `-w FILE`, `-w -` for stdout) or printed one line each ([`summary`], JSON lines with
//! `-o json`). The capture ends after `-c N` packets, `--duration S`, Ctrl-C, or when the
//! dataplane stops; the dataplane stops capturing as soon as this command goes.

pub mod filter;
pub mod pcapng;
pub mod summary;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aegis_api::dataplane::v1 as pb;
use clap::{Args, ValueEnum};
use pb::dataplane_admin_client::DataplaneAdminClient;
use tonic::transport::Channel;

use crate::error::CliError;

/// Options of `aegisctl dp capture`.
#[derive(Debug, Clone, Args)]
pub struct CaptureArgs {
    /// Port to capture on (repeat for several; default: every port).
    #[arg(long = "port")]
    pub ports: Vec<String>,
    /// Which port traffic: received, transmitted or both (default: both; with --drops or
    /// --node and no --port: none).
    #[arg(long, value_enum)]
    pub direction: Option<DirectionArg>,
    /// Capture dropped packets, with their drop reason.
    #[arg(long)]
    pub drops: bool,
    /// Capture the input of this graph node, as `dp show runtime` names it (e.g.
    /// ip4-forward, security-group; repeat for several).
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    /// tcpdump filter expression, e.g. 'icmp or tcp port 80'.
    #[arg(long, short = 'f', default_value = "")]
    pub filter: String,
    /// Stop after this many packets (0: no limit).
    #[arg(short = 'c', long = "count")]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Bytes kept per packet (at most 2048).
    #[arg(long, default_value_t = 2048)]
    pub snaplen: u32,
    /// Write pcapng to this file ("-" = stdout) instead of printing a line per packet.
    #[arg(short = 'w', long = "write")]
    pub write: Option<PathBuf>,
}

/// `--direction` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    /// Received packets.
    Rx,
    /// Transmitted packets.
    Tx,
    /// Both.
    Both,
}

/// Longest a written packet waits in the pcapng output's buffer while packets flow.
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Where packets go.
enum Sink<'a> {
    Pcapng(pcapng::PcapngOut<&'a mut dyn Write>),
    Lines { out: &'a mut dyn Write, json: bool },
}

impl CaptureArgs {
    /// The request, with the filter compiled (a bad filter is a usage error).
    pub fn request(&self) -> Result<pb::CaptureRequest, CliError> {
        let program = filter::compile(&self.filter)?;
        let direction = match self.direction {
            Some(DirectionArg::Rx) => pb::CaptureDirection::Rx,
            Some(DirectionArg::Tx) => pb::CaptureDirection::Tx,
            Some(DirectionArg::Both) => pb::CaptureDirection::Both,
            None if (self.drops || !self.nodes.is_empty()) && self.ports.is_empty() => {
                pb::CaptureDirection::None
            }
            None => pb::CaptureDirection::Both,
        };
        let duration_seconds = match self.duration {
            Some(d) if d.is_finite() && d > 0.0 => d,
            Some(d) => {
                return Err(CliError::Usage(format!(
                    "--duration {d}: a positive number of seconds"
                )))
            }
            None => 0.0,
        };
        if self.snaplen == 0 || self.snaplen > 2048 {
            return Err(CliError::Usage(format!(
                "--snaplen {}: between 1 and 2048",
                self.snaplen
            )));
        }
        Ok(pb::CaptureRequest {
            ports: self.ports.clone(),
            direction: direction as i32,
            drops: self.drops,
            filter: self.filter.clone(),
            program,
            snaplen: self.snaplen,
            count: self.count.unwrap_or(0),
            duration_seconds,
            nodes: self.nodes.clone(),
        })
    }
}

/// Runs a capture against `client` (connected to `socket`), writing to `out`.
pub async fn run(
    client: &mut DataplaneAdminClient<Channel>,
    socket: &Path,
    args: &CaptureArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let req = args.request()?;
    let call_err = |s: tonic::Status| CliError::from_status(s, socket);
    let stream = client.capture(req).await.map_err(call_err)?.into_inner();
    record(stream, args, json, out, &call_err).await
}

/// Writes the events of an opened capture `stream` (from the local dataplane, or a host's
/// through the control plane: `aegisctl capture --host`) as pcapng or lines, with the
/// progress and the summary; `call_err` classifies a failure of the first event.
pub async fn record(
    mut stream: tonic::Streaming<pb::CaptureEvent>,
    args: &CaptureArgs,
    json: bool,
    out: &mut dyn Write,
    call_err: &dyn Fn(tonic::Status) -> CliError,
) -> Result<(), CliError> {
    let started = match stream.message().await.map_err(call_err)? {
        Some(pb::CaptureEvent {
            event: Some(pb::capture_event::Event::Started(s)),
        }) => s,
        other => {
            return Err(CliError::Rejected(tonic::Status::internal(format!(
                "the capture did not start with its description: {other:?}"
            ))))
        }
    };
    let mut file = None;
    let mut progress = None;
    let out: &mut dyn Write = &mut *out;
    let sink = match &args.write {
        Some(p) if p.as_os_str() == "-" => {
            Sink::Pcapng(pcapng::PcapngOut::new(out, &started, &args.filter)?)
        }
        Some(p) => {
            let f = std::fs::File::create(p)
                .map_err(|e| CliError::Usage(format!("cannot create {}: {e}", p.display())))?;
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            progress = Some(bar);
            let w: &mut dyn Write = file.insert(BufWriter::new(f));
            Sink::Pcapng(pcapng::PcapngOut::new(w, &started, &args.filter)?)
        }
        None => Sink::Lines { out, json },
    };
    let target = args
        .write
        .as_ref()
        .map_or_else(String::new, |p| p.display().to_string());
    let Pumped {
        packets,
        overflow,
        shutdown,
        sink,
    } = pump(
        &mut stream,
        &started,
        args.count.filter(|&c| c > 0),
        sink,
        progress.as_ref(),
        &target,
    )
    .await?;
    let overflow_note = if overflow > 0 {
        format!(
            ", {overflow} not captured (capture_overflow: the workers' capture rings were full)"
        )
    } else {
        String::new()
    };
    if let Sink::Pcapng(w) = sink {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        w.finish(overflow, now)?;
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let end = if shutdown {
        " (the dataplane shut down)"
    } else {
        ""
    };
    eprintln!(
        "{packets} packets captured on {}{overflow_note}{end}",
        started.host
    );
    Ok(())
}

/// Moves packets from the stream to the sink until the stream ends, `count` packets or
/// Ctrl-C.
async fn pump<'a>(
    stream: &mut tonic::Streaming<pb::CaptureEvent>,
    started: &pb::CaptureStarted,
    count: Option<u64>,
    mut sink: Sink<'a>,
    progress: Option<&indicatif::ProgressBar>,
    target: &str,
) -> Result<Pumped<'a>, CliError> {
    let mut packets = 0u64;
    let mut bytes = 0u64;
    let mut overflow = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    // pcapng is flushed at most every FLUSH_EVERY while packets flow, and on every stats
    // event (about every second), so a live reader sees packets promptly.
    let mut last_flush = std::time::Instant::now();
    let mut shutdown = false;
    loop {
        if count.is_some_and(|c| packets >= c) {
            break;
        }
        let msg = tokio::select! {
            m = stream.message() => m,
            _ = &mut ctrl_c => break,
        };
        let event = match msg {
            Ok(Some(pb::CaptureEvent { event: Some(e) })) => e,
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(s) => return Err(CliError::Rejected(s)),
        };
        match event {
            pb::capture_event::Event::Packet(p) => {
                packets += 1;
                bytes += p.data.len() as u64;
                match &mut sink {
                    Sink::Pcapng(w) => {
                        w.packet(&p)?;
                        if last_flush.elapsed() >= FLUSH_EVERY {
                            w.flush()?;
                            last_flush = std::time::Instant::now();
                        }
                    }
                    Sink::Lines { out, json } => {
                        let v = summary::PacketView::new(&p, started);
                        if *json {
                            serde_json::to_writer(&mut **out, &v)?;
                            writeln!(out)?;
                        } else {
                            writeln!(out, "{}", v.line())?;
                        }
                        out.flush()?;
                    }
                }
                if let Some(bar) = progress {
                    bar.set_message(format!("{packets} packets ({bytes} bytes) to {target}"));
                }
            }
            pb::capture_event::Event::Stats(s) => {
                overflow = s.overflow;
                if s.reason == "shutdown" {
                    shutdown = true;
                }
                if let Sink::Pcapng(w) = &mut sink {
                    w.flush()?;
                    last_flush = std::time::Instant::now();
                }
                if s.last {
                    break;
                }
            }
            pb::capture_event::Event::Started(_) => {}
        }
    }
    Ok(Pumped {
        packets,
        overflow,
        shutdown,
        sink,
    })
}

/// What [`pump`] leaves.
struct Pumped<'a> {
    packets: u64,
    overflow: u64,
    /// The dataplane ended the capture because it is shutting down.
    shutdown: bool,
    sink: Sink<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> CaptureArgs {
        CaptureArgs {
            ports: Vec::new(),
            direction: None,
            drops: false,
            nodes: Vec::new(),
            filter: String::new(),
            count: None,
            duration: None,
            snaplen: 2048,
            write: None,
        }
    }

    #[test]
    fn drops_alone_take_no_port_traffic() {
        let a = CaptureArgs {
            drops: true,
            ..args()
        };
        assert_eq!(
            a.request().unwrap().direction,
            pb::CaptureDirection::None as i32
        );
        let a = CaptureArgs {
            drops: true,
            ports: vec!["eth0".into()],
            ..args()
        };
        assert_eq!(
            a.request().unwrap().direction,
            pb::CaptureDirection::Both as i32
        );
        assert_eq!(
            args().request().unwrap().direction,
            pb::CaptureDirection::Both as i32
        );
    }

    #[test]
    fn nodes_alone_take_no_port_traffic() {
        let a = CaptureArgs {
            nodes: vec!["ip4-forward".into(), "security-group".into()],
            ..args()
        };
        let r = a.request().unwrap();
        assert_eq!(r.direction, pb::CaptureDirection::None as i32);
        assert_eq!(r.nodes, ["ip4-forward", "security-group"]);
        let a = CaptureArgs {
            nodes: vec!["ip4-forward".into()],
            ports: vec!["eth0".into()],
            direction: Some(DirectionArg::Rx),
            ..args()
        };
        let r = a.request().unwrap();
        assert_eq!(r.direction, pb::CaptureDirection::Rx as i32);
        assert_eq!((r.ports.len(), r.nodes.len()), (1, 1));
    }

    #[test]
    fn bad_options_are_usage_errors() {
        for a in [
            CaptureArgs {
                filter: "port".into(),
                ..args()
            },
            CaptureArgs {
                snaplen: 4000,
                ..args()
            },
            CaptureArgs {
                duration: Some(-1.0),
                ..args()
            },
        ] {
            assert!(matches!(a.request(), Err(CliError::Usage(_))), "{a:?}");
        }
    }
}
