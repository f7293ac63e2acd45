//! What a run reports: the [`Summary`] (built from the engine's outcome, printed as a table
//! or as JSON with the unit in every field name) and the live progress line.

use std::fmt::Write as _;

use aegis_dataplane::port::clock::cycles_to_ns;
use serde::Serialize;

use crate::engine::Outcome;
use crate::profile::{describe, RunSpec};
use crate::values::Rate;

/// The final figures of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// What was sent.
    pub traffic: TrafficInfo,
    /// Seconds of transmission (first tx core start to last tx core stop).
    pub duration_s: f64,
    /// Stopped early by a signal.
    pub interrupted: bool,
    /// Transmit side.
    pub tx: TxInfo,
    /// Receive side.
    pub rx: RxInfo,
    /// Sent minus distinct received.
    pub lost_packets: u64,
    /// `lost_packets / tx.packets`.
    pub loss_ratio: f64,
    /// Arrived after a higher sequence number of their stream.
    pub reordered_packets: u64,
    /// Arrived more than once.
    pub duplicate_packets: u64,
    /// One-way latency (transmit TSC to receive TSC) of every distinct packet.
    pub latency_ns: Latency,
    /// The longest time between two consecutive received packets, in ms (0 with fewer than
    /// two packets).
    pub longest_gap_ms: f64,
    /// Where that gap was.
    pub longest_gap: Option<GapInfo>,
    /// TSC frequency used for the conversions.
    pub tsc_hz: u64,
}

/// The run's set-up.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficInfo {
    /// e.g. `Ethernet/IPv4/udp`.
    pub headers: String,
    /// Frame size spec (bytes, FCS included).
    pub size_bytes: String,
    /// Distinct flows.
    pub flows: u64,
    /// Asked rate (`line`, `100000pps`, `1000000000bps`).
    pub rate: String,
    /// Tx cores (streams).
    pub tx_cores: u16,
    /// Transmit port devargs.
    pub tx_port: String,
    /// Receive port devargs.
    pub rx_port: String,
}

/// Transmit totals.
#[derive(Debug, Clone, Serialize)]
pub struct TxInfo {
    /// Packets the driver accepted.
    pub packets: u64,
    /// Their bytes (FCS excluded).
    pub bytes: u64,
    /// Packets per second.
    pub pps: f64,
    /// Bits per second of frames, FCS included.
    pub bps: f64,
    /// Asked packets per second (`None` for line rate or a bit rate).
    pub asked_pps: Option<f64>,
    /// Packets skipped because a tx core fell more than 50 ms behind schedule (core busy
    /// elsewhere, or the port full).
    pub late_packets: u64,
    /// Bursts skipped because the mempool was empty.
    pub alloc_failures: u64,
}

/// Receive totals.
#[derive(Debug, Clone, Serialize)]
pub struct RxInfo {
    /// Stamped packets, duplicates included.
    pub packets: u64,
    /// Distinct stamped packets.
    pub unique_packets: u64,
    /// Bytes of stamped packets (FCS excluded).
    pub bytes: u64,
    /// Distinct packets per second over the transmission time.
    pub pps: f64,
    /// Bits per second of received frames (FCS included) over the transmission time.
    pub bps: f64,
    /// Packets without a stamp (ARP, other traffic).
    pub foreign_packets: u64,
}

/// Latency figures in ns.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Packets measured.
    pub samples: u64,
    /// Smallest.
    pub min: u64,
    /// Mean.
    pub avg: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
}

/// The longest gap in detail.
#[derive(Debug, Clone, Serialize)]
pub struct GapInfo {
    /// Its length in ms.
    pub ms: f64,
    /// When it began, in seconds since transmission started.
    pub start_s: f64,
    /// The stream of the packet that ended it.
    pub stream: u16,
    /// Highest sequence number of that stream received before it.
    pub last_seq_before: Option<u64>,
    /// Sequence number of the packet that ended it.
    pub first_seq_after: u64,
    /// Sequence numbers of that stream missing across the gap.
    pub missing_packets: u64,
}

impl Summary {
    /// Builds the summary of `out` for `spec`.
    pub fn new(spec: &RunSpec, out: &Outcome) -> Summary {
        let hz = out.tsc_hz;
        let start = out.tx.iter().map(|t| t.start_tsc).min().unwrap_or(0);
        let end = out.tx.iter().map(|t| t.end_tsc).max().unwrap_or(start);
        let secs = cycles_to_ns(end.saturating_sub(start), hz) as f64 / 1e9;
        let per_s = |v: u64| if secs > 0.0 { v as f64 / secs } else { 0.0 };
        let tx_packets: u64 = out.tx.iter().map(|t| t.packets).sum();
        let tx_bytes: u64 = out.tx.iter().map(|t| t.bytes).sum();
        let totals = out.rx.totals();
        let lost = tx_packets.saturating_sub(totals.unique);
        let h = &out.rx.latency_ns;
        let gap = out.rx.longest_gap();
        Summary {
            traffic: TrafficInfo {
                headers: describe(&spec.traffic),
                size_bytes: spec.traffic.size.to_string(),
                flows: spec.traffic.flows,
                rate: spec.rate.to_string(),
                tx_cores: spec.tx_cores,
                tx_port: spec.tx_port.clone(),
                rx_port: spec.rx_port.clone(),
            },
            duration_s: secs,
            interrupted: out.interrupted,
            tx: TxInfo {
                packets: tx_packets,
                bytes: tx_bytes,
                pps: per_s(tx_packets),
                bps: per_s((tx_bytes + 4 * tx_packets) * 8),
                asked_pps: match spec.rate {
                    Rate::Pps(p) => Some(p),
                    _ => None,
                },
                late_packets: out.tx.iter().map(|t| t.late).sum(),
                alloc_failures: out.tx.iter().map(|t| t.alloc_failures).sum(),
            },
            rx: RxInfo {
                packets: out.rx.received,
                unique_packets: totals.unique,
                bytes: out.rx.bytes,
                pps: per_s(totals.unique),
                bps: per_s((out.rx.bytes + 4 * out.rx.received) * 8),
                foreign_packets: out.rx.foreign,
            },
            lost_packets: lost,
            loss_ratio: if tx_packets > 0 {
                lost as f64 / tx_packets as f64
            } else {
                0.0
            },
            reordered_packets: totals.reordered,
            duplicate_packets: totals.duplicates,
            latency_ns: Latency {
                samples: h.count(),
                min: h.min(),
                avg: (h.mean() * 10.0).round() / 10.0,
                p50: h.quantile(0.5),
                p90: h.quantile(0.9),
                p99: h.quantile(0.99),
                p999: h.quantile(0.999),
                max: h.max(),
            },
            longest_gap_ms: gap.map_or(0.0, |g| cycles_to_ns(g.cycles, hz) as f64 / 1e6),
            longest_gap: gap.map(|g| GapInfo {
                ms: cycles_to_ns(g.cycles, hz) as f64 / 1e6,
                start_s: cycles_to_ns(g.start_tsc.saturating_sub(start), hz) as f64 / 1e9,
                stream: g.stream,
                last_seq_before: g.seq_before,
                first_seq_after: g.seq_after,
                missing_packets: g.missing(),
            }),
            tsc_hz: hz,
        }
    }

    /// The summary as an aligned two-column table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
        let t = &self.traffic;
        row(
            "traffic",
            format!(
                "{}, {} B, {} flow(s), {} tx core(s)",
                t.headers, t.size_bytes, t.flows, t.tx_cores
            ),
        );
        row("ports", format!("tx {}  rx {}", t.tx_port, t.rx_port));
        row(
            "duration",
            format!(
                "{:.3} s{}",
                self.duration_s,
                if self.interrupted {
                    " (interrupted)"
                } else {
                    ""
                }
            ),
        );
        let asked = self.tx.asked_pps.map_or(format!("asked {}", t.rate), |a| {
            format!(
                "asked {}, {:+.2} %",
                human_pps(a),
                (self.tx.pps / a - 1.0) * 100.0
            )
        });
        row(
            "tx",
            format!(
                "{} packets, {}, {} ({asked})",
                self.tx.packets,
                human_pps(self.tx.pps),
                human_bps(self.tx.bps)
            ),
        );
        if self.tx.late_packets > 0 || self.tx.alloc_failures > 0 {
            row(
                "tx late",
                format!(
                    "{} packets behind schedule, {} bursts without mbufs",
                    self.tx.late_packets, self.tx.alloc_failures
                ),
            );
        }
        row(
            "rx",
            format!(
                "{} packets ({} distinct), {}, {}",
                self.rx.packets,
                self.rx.unique_packets,
                human_pps(self.rx.pps),
                human_bps(self.rx.bps)
            ),
        );
        row(
            "loss",
            format!(
                "{} packets ({:.4} %)",
                self.lost_packets,
                self.loss_ratio * 100.0
            ),
        );
        row(
            "reordered / duplicate",
            format!("{} / {}", self.reordered_packets, self.duplicate_packets),
        );
        if self.rx.foreign_packets > 0 {
            row("foreign (no stamp)", self.rx.foreign_packets.to_string());
        }
        let l = &self.latency_ns;
        row(
            "latency",
            format!(
                "min {} avg {} p50 {} p90 {} p99 {} p99.9 {} max {}",
                human_ns(l.min as f64),
                human_ns(l.avg),
                human_ns(l.p50 as f64),
                human_ns(l.p90 as f64),
                human_ns(l.p99 as f64),
                human_ns(l.p999 as f64),
                human_ns(l.max as f64)
            ),
        );
        let gap = match &self.longest_gap {
            None => "-".to_owned(),
            Some(g) => format!(
                "{:.3} ms at {:.3} s, stream {} seq {} -> {} ({} missing)",
                g.ms,
                g.start_s,
                g.stream,
                g.last_seq_before.map_or("-".to_owned(), |s| s.to_string()),
                g.first_seq_after,
                g.missing_packets
            ),
        };
        row("longest gap", gap);
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        out
    }
}

/// One progress line: elapsed seconds, tx and rx packet rates over the last second,
/// packets sent but not (yet) received, and the longest gap so far.
pub fn progress_line(
    t_s: f64,
    tx_pps: f64,
    rx_pps: f64,
    in_flight_or_lost: u64,
    gap_ms: f64,
) -> String {
    format!(
        "[{t_s:6.1} s] tx {:>12}  rx {:>12}  not received {in_flight_or_lost:>10}  longest gap {gap_ms:9.3} ms",
        human_pps(tx_pps),
        human_pps(rx_pps)
    )
}

/// `12.35 Mpps`, `100.0 kpps`, `512 pps`.
pub fn human_pps(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} Mpps", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} kpps", v / 1e3)
    } else {
        format!("{v:.0} pps")
    }
}

/// `9.87 Gbps`, `512.0 Mbps`.
pub fn human_bps(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} Gbps", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.1} Mbps", v / 1e6)
    } else {
        format!("{:.1} kbps", v / 1e3)
    }
}

/// `850 ns`, `12.3 µs`, `4.56 ms`.
pub fn human_ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} us", v / 1e3)
    } else {
        format!("{v:.0} ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_pps(12_345_678.0), "12.35 Mpps");
        assert_eq!(human_pps(100_000.0), "100.0 kpps");
        assert_eq!(human_bps(9.87e9), "9.87 Gbps");
        assert_eq!(human_ns(4_560_000.0), "4.56 ms");
        assert!(progress_line(3.0, 1e5, 1e5, 0, 0.02).contains("100.0 kpps"));
    }
}
