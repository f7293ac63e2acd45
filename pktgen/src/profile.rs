//! Traffic profiles: a small TOML file (documented field by field in `docs/pktgen.md`) with
//! three sections, `[port]`, `[traffic]` and `[run]`. Every field is optional in the file;
//! command-line flags override it ([`Profile::overlay`]); [`Profile::resolve`] fills the
//! defaults and checks every value, naming the offending field (`traffic.size: ...`).
//! Unknown fields are errors.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::net::MacAddr;
use crate::template::{Geneve, TrafficSpec, Vlan, MAX_FLOWS};
use crate::values::{AddrRange, FlowMode, PortRange, Protocol, Rate, SizeSpec};

/// EAL arguments used when neither the profile nor the command line gives any.
pub const DEFAULT_EAL: [&str; 4] = ["--no-huge", "-m", "512", "--no-pci"];
/// Most tx cores (streams).
pub const MAX_TX_CORES: u16 = 64;
/// Largest burst.
pub const MAX_BURST: usize = 256;

/// Why a profile was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The file cannot be read.
    #[error("cannot read profile {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax, an unknown field or a value of the wrong type.
    #[error("profile {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// toml's message (with line, column and field).
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("{field}: {reason}")]
    Bad {
        /// `section.field` (or the command-line flag that sets it).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn bad<T>(field: &'static str, reason: impl Into<String>) -> Result<T, ProfileError> {
    Err(ProfileError::Bad {
        field,
        reason: reason.into(),
    })
}

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    /// Where packets go.
    pub port: PortSection,
    /// What they look like.
    pub traffic: TrafficSection,
    /// How fast and how long.
    pub run: RunSection,
}

/// `[port]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortSection {
    /// DPDK devargs of the transmit port.
    pub tx: Option<String>,
    /// DPDK devargs of the receive port (default: the transmit port).
    pub rx: Option<String>,
    /// EAL arguments.
    pub eal: Option<Vec<String>>,
    /// Seconds to wait for the link(s) to come up.
    pub link_timeout_s: Option<f64>,
}

/// `[traffic]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrafficSection {
    /// `udp` or `tcp-syn`.
    pub protocol: Option<Protocol>,
    /// Frame size(s).
    pub size: Option<SizeSpec>,
    /// Distinct flows.
    pub flows: Option<u64>,
    /// `sequential` or `random`.
    pub flow_mode: Option<FlowMode>,
    /// Ethernet source.
    pub src_mac: Option<MacAddr>,
    /// Ethernet destination.
    pub dst_mac: Option<MacAddr>,
    /// IPv4 sources.
    pub src_ip: Option<AddrRange>,
    /// IPv4 destinations.
    pub dst_ip: Option<AddrRange>,
    /// L4 source ports.
    pub src_port: Option<PortRange>,
    /// L4 destination ports.
    pub dst_port: Option<PortRange>,
    /// IPv4 TTL.
    pub ttl: Option<u8>,
    /// 802.1Q VLAN id.
    pub vlan: Option<u16>,
    /// 802.1Q priority.
    pub vlan_pcp: Option<u8>,
    /// Geneve encapsulation.
    pub geneve: Option<GeneveSection>,
    /// Random seed.
    pub seed: Option<u64>,
}

/// `[traffic.geneve]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeneveSection {
    /// Virtual network identifier (required).
    pub vni: Option<u32>,
    /// Outer IPv4 source.
    pub outer_src_ip: Option<Ipv4Addr>,
    /// Outer IPv4 destination.
    pub outer_dst_ip: Option<Ipv4Addr>,
    /// Inner Ethernet source.
    pub inner_src_mac: Option<MacAddr>,
    /// Inner Ethernet destination.
    pub inner_dst_mac: Option<MacAddr>,
}

/// `[run]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// Transmit rate.
    pub rate: Option<Rate>,
    /// Seconds of transmission.
    pub duration_s: Option<f64>,
    /// Transmit cores (one stream each).
    pub tx_cores: Option<u16>,
    /// Packets per burst.
    pub burst: Option<usize>,
    /// Milliseconds the receiver keeps polling after transmission stops.
    pub drain_ms: Option<u64>,
}

/// A resolved, checked run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Transmit port devargs.
    pub tx_port: String,
    /// Receive port devargs (may equal `tx_port`).
    pub rx_port: String,
    /// EAL arguments.
    pub eal: Vec<String>,
    /// Wait for link up at most this long.
    pub link_timeout: Duration,
    /// The packets.
    pub traffic: TrafficSpec,
    /// The rate (over all tx cores).
    pub rate: Rate,
    /// Transmission time.
    pub duration: Duration,
    /// Transmit cores.
    pub tx_cores: u16,
    /// Burst size.
    pub burst: usize,
    /// Receive time after transmission stops.
    pub drain: Duration,
}

impl Profile {
    /// Reads and parses a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Profile::parse(&text, &path.display().to_string())
    }

    /// Parses profile text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        toml::from_str(text).map_err(|e| ProfileError::Parse {
            path: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }

    /// Every field set in `over` replaces the one here.
    pub fn overlay(self, over: Profile) -> Profile {
        let (p, t, r) = (self.port, self.traffic, self.run);
        let (op, ot, or) = (over.port, over.traffic, over.run);
        let geneve = match (t.geneve, ot.geneve) {
            (Some(g), Some(o)) => Some(GeneveSection {
                vni: o.vni.or(g.vni),
                outer_src_ip: o.outer_src_ip.or(g.outer_src_ip),
                outer_dst_ip: o.outer_dst_ip.or(g.outer_dst_ip),
                inner_src_mac: o.inner_src_mac.or(g.inner_src_mac),
                inner_dst_mac: o.inner_dst_mac.or(g.inner_dst_mac),
            }),
            (g, o) => o.or(g),
        };
        Profile {
            port: PortSection {
                tx: op.tx.or(p.tx),
                rx: op.rx.or(p.rx),
                eal: op.eal.or(p.eal),
                link_timeout_s: op.link_timeout_s.or(p.link_timeout_s),
            },
            traffic: TrafficSection {
                protocol: ot.protocol.or(t.protocol),
                size: ot.size.or(t.size),
                flows: ot.flows.or(t.flows),
                flow_mode: ot.flow_mode.or(t.flow_mode),
                src_mac: ot.src_mac.or(t.src_mac),
                dst_mac: ot.dst_mac.or(t.dst_mac),
                src_ip: ot.src_ip.or(t.src_ip),
                dst_ip: ot.dst_ip.or(t.dst_ip),
                src_port: ot.src_port.or(t.src_port),
                dst_port: ot.dst_port.or(t.dst_port),
                ttl: ot.ttl.or(t.ttl),
                vlan: ot.vlan.or(t.vlan),
                vlan_pcp: ot.vlan_pcp.or(t.vlan_pcp),
                geneve,
                seed: ot.seed.or(t.seed),
            },
            run: RunSection {
                rate: or.rate.or(r.rate),
                duration_s: or.duration_s.or(r.duration_s),
                tx_cores: or.tx_cores.or(r.tx_cores),
                burst: or.burst.or(r.burst),
                drain_ms: or.drain_ms.or(r.drain_ms),
            },
        }
    }

    /// Fills defaults and checks every value.
    pub fn resolve(self) -> Result<RunSpec, ProfileError> {
        let (p, t, r) = (self.port, self.traffic, self.run);
        let tx_port = match p.tx {
            Some(s) if !s.trim().is_empty() => s,
            _ => {
                return bad(
                    "port.tx",
                    "required: the DPDK devargs of the port to send on, e.g. \
                     net_memif0,role=client,socket=/run/peer.sock (profile [port] tx, or --port)",
                )
            }
        };
        let rx_port = p.rx.unwrap_or_else(|| tx_port.clone());
        let link_timeout = seconds("port.link_timeout_s", p.link_timeout_s.unwrap_or(10.0))?;
        let eal = p
            .eal
            .unwrap_or_else(|| DEFAULT_EAL.iter().map(|s| (*s).to_owned()).collect());

        let vlan = match (t.vlan, t.vlan_pcp) {
            (None, Some(_)) => return bad("traffic.vlan_pcp", "needs traffic.vlan"),
            (None, None) => None,
            (Some(id), pcp) => {
                if id > 4095 {
                    return bad("traffic.vlan", format!("{id} is not a VLAN id (0..=4095)"));
                }
                let pcp = pcp.unwrap_or(0);
                if pcp > 7 {
                    return bad(
                        "traffic.vlan_pcp",
                        format!("{pcp} is not a priority (0..=7)"),
                    );
                }
                Some(Vlan { id, pcp })
            }
        };
        let geneve = match t.geneve {
            None => None,
            Some(g) => {
                let Some(vni) = g.vni else {
                    return bad(
                        "traffic.geneve.vni",
                        "required when [traffic.geneve] is given",
                    );
                };
                if vni > 0xff_ffff {
                    return bad(
                        "traffic.geneve.vni",
                        format!("{vni} does not fit 24 bits (0..=16777215)"),
                    );
                }
                Some(Geneve {
                    vni,
                    outer_src_ip: g.outer_src_ip.unwrap_or(Ipv4Addr::new(192, 0, 2, 1)),
                    outer_dst_ip: g.outer_dst_ip.unwrap_or(Ipv4Addr::new(192, 0, 2, 2)),
                    inner_src_mac: g.inner_src_mac.unwrap_or(MacAddr([2, 0, 0, 0, 1, 1])),
                    inner_dst_mac: g.inner_dst_mac.unwrap_or(MacAddr([2, 0, 0, 0, 1, 2])),
                })
            }
        };
        let ttl = t.ttl.unwrap_or(64);
        if ttl == 0 {
            return bad("traffic.ttl", "must be at least 1");
        }
        let traffic = TrafficSpec {
            protocol: t.protocol.unwrap_or(Protocol::Udp),
            size: t.size.unwrap_or(SizeSpec::Fixed(64)),
            flows: t.flows.unwrap_or(1),
            flow_mode: t.flow_mode.unwrap_or(FlowMode::Sequential),
            src_mac: t.src_mac.unwrap_or(MacAddr([2, 0, 0, 0, 0, 0x99])),
            dst_mac: t.dst_mac.unwrap_or(MacAddr([2, 0, 0, 0, 0, 1])),
            src_ip: t
                .src_ip
                .unwrap_or(AddrRange::single(Ipv4Addr::new(198, 18, 0, 1))),
            dst_ip: t
                .dst_ip
                .unwrap_or(AddrRange::single(Ipv4Addr::new(198, 19, 0, 1))),
            src_port: t.src_port.unwrap_or(PortRange::single(1024)),
            dst_port: t.dst_port.unwrap_or(PortRange::single(5001)),
            ttl,
            vlan,
            geneve,
            seed: t.seed.unwrap_or(1),
        };
        let (min, max) = (traffic.min_frame(), traffic.max_frame());
        let (lo, hi) = (
            usize::from(traffic.size.min()),
            usize::from(traffic.size.max()),
        );
        if traffic.size != SizeSpec::Imix && (lo < min || hi > max) {
            return bad(
                "traffic.size",
                format!(
                    "{} does not fit {min}..={max} bytes (FCS included): {} headers of {} \
                     bytes, an 18-byte measurement stamp and the 4-byte FCS need at least {min}; \
                     a 1500-byte MTU allows at most {max}",
                    traffic.size,
                    describe(&traffic),
                    traffic.header_len()
                ),
            );
        }
        if traffic.flows == 0 || traffic.flows > MAX_FLOWS {
            return bad(
                "traffic.flows",
                format!("{} is out of range 1..={MAX_FLOWS}", traffic.flows),
            );
        }
        if traffic.flow_mode == FlowMode::Sequential
            && u128::from(traffic.flows) > traffic.combinations()
        {
            return bad(
                "traffic.flows",
                format!(
                    "{} sequential flows asked, but the address and port ranges give only {} \
                     distinct ones (widen src_ip/dst_ip/src_port/dst_port or use flow_mode = \
                     \"random\")",
                    traffic.flows,
                    traffic.combinations()
                ),
            );
        }

        let rate = r.rate.unwrap_or(Rate::Pps(1_000_000.0));
        let duration = seconds("run.duration_s", r.duration_s.unwrap_or(10.0))?;
        if duration.is_zero() {
            return bad("run.duration_s", "must be greater than 0");
        }
        let tx_cores = r.tx_cores.unwrap_or(1);
        if tx_cores == 0 || tx_cores > MAX_TX_CORES {
            return bad(
                "run.tx_cores",
                format!("{tx_cores} is out of range 1..={MAX_TX_CORES}"),
            );
        }
        let burst = r.burst.unwrap_or(32);
        if burst == 0 || burst > MAX_BURST {
            return bad(
                "run.burst",
                format!("{burst} is out of range 1..={MAX_BURST}"),
            );
        }
        let drain_ms = r.drain_ms.unwrap_or(500);
        if drain_ms > 60_000 {
            return bad("run.drain_ms", format!("{drain_ms} is above 60000"));
        }
        Ok(RunSpec {
            tx_port,
            rx_port,
            eal,
            link_timeout,
            traffic,
            rate,
            duration,
            tx_cores,
            burst,
            drain: Duration::from_millis(drain_ms),
        })
    }
}

/// `udp`, `tcp-syn over VLAN`, `udp in Geneve`...
pub fn describe(t: &TrafficSpec) -> String {
    let mut s = format!("Ethernet/IPv4/{}", t.protocol);
    if t.vlan.is_some() {
        s = s.replacen("Ethernet", "Ethernet/802.1Q", 1);
    }
    if t.geneve.is_some() {
        s.push_str(" in Geneve");
    }
    s
}

fn seconds(field: &'static str, v: f64) -> Result<Duration, ProfileError> {
    if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
        return bad(
            field,
            format!("{v} is not a number of seconds in 0..=86400"),
        );
    }
    Ok(Duration::from_secs_f64(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> Result<RunSpec, String> {
        Profile::parse(text, "test.toml")
            .and_then(Profile::resolve)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn full_profile() {
        let spec = resolve(
            r#"
            [port]
            tx = "net_memif0,role=client,socket=/tmp/a.sock"
            eal = ["--no-huge", "-m", "256"]
            link_timeout_s = 3
            [traffic]
            protocol = "tcp-syn"
            size = "130-200"
            flows = 64
            flow_mode = "random"
            dst_mac = "02:00:00:00:00:05"
            src_ip = "10.0.0.0/24"
            dst_ip = "10.1.0.1-10.1.0.8"
            src_port = "1000-2000"
            dst_port = 80
            ttl = 9
            vlan = 7
            vlan_pcp = 5
            [traffic.geneve]
            vni = 42
            [run]
            rate = "2.5Mpps"
            duration_s = 1.5
            tx_cores = 2
            burst = 64
            drain_ms = 100
            "#,
        )
        .unwrap();
        assert_eq!(spec.rx_port, spec.tx_port);
        assert_eq!(spec.eal, ["--no-huge", "-m", "256"]);
        assert_eq!(spec.link_timeout, Duration::from_secs(3));
        assert_eq!(spec.traffic.protocol, Protocol::TcpSyn);
        assert_eq!(spec.traffic.size, SizeSpec::Range(130, 200));
        assert_eq!(spec.traffic.vlan, Some(Vlan { id: 7, pcp: 5 }));
        assert_eq!(spec.traffic.geneve.map(|g| g.vni), Some(42));
        assert_eq!(spec.traffic.dst_port, PortRange::single(80));
        assert_eq!(spec.rate, Rate::Pps(2.5e6));
        assert_eq!(spec.duration, Duration::from_millis(1500));
        assert_eq!((spec.tx_cores, spec.burst), (2, 64));
    }

    #[test]
    fn defaults_and_overlay() {
        let base = Profile::parse("[port]\ntx = \"net_null0\"\n[run]\nrate = 5000\n", "x").unwrap();
        let over = Profile {
            run: RunSection {
                duration_s: Some(2.0),
                ..RunSection::default()
            },
            ..Profile::default()
        };
        let spec = base.overlay(over).resolve().unwrap();
        assert_eq!(spec.rate, Rate::Pps(5000.0));
        assert_eq!(spec.duration, Duration::from_secs(2));
        assert_eq!(spec.traffic.size, SizeSpec::Fixed(64));
        assert_eq!(spec.eal, DEFAULT_EAL);
    }

    #[test]
    fn bad_profiles_name_the_field() {
        let tx = "[port]\ntx = \"net_null0\"\n";
        let cases: &[(&str, &[&str])] = &[
            ("[traffic]\nsize = 64\n", &["port.tx", "required"]),
            (
                &format!("{tx}[traffic]\nsiz = 64\n"),
                &["unknown field `siz`", "line 4"],
            ),
            (
                &format!("{tx}[traffic]\nsize = \"huge\"\n"),
                &["size", "invalid packet size"],
            ),
            (
                &format!("{tx}[run]\nrate = \"fast\"\n"),
                &["rate", "invalid rate"],
            ),
            (&format!("{tx}[traffic]\nttl = 300\n"), &["ttl", "300"]),
            (
                &format!("{tx}[traffic]\nsrc_ip = \"10.0.0.300\"\n"),
                &["src_ip", "10.0.0.300"],
            ),
            (
                &format!("{tx}[traffic]\ndst_mac = \"zz\"\n"),
                &["dst_mac", "invalid MAC"],
            ),
            (
                &format!("{tx}[traffic]\nprotocol = \"tcp-syn\"\nsize = 64\n"),
                &["traffic.size", "at least 76"],
            ),
            (
                &format!("{tx}[traffic]\nsize = 9000\n"),
                &["traffic.size", "at most 1518"],
            ),
            (
                &format!("{tx}[traffic]\nflows = 5\n"),
                &["traffic.flows", "only 1 distinct"],
            ),
            (
                &format!("{tx}[traffic]\nvlan = 5000\n"),
                &["traffic.vlan", "5000"],
            ),
            (
                &format!("{tx}[traffic.geneve]\nouter_src_ip = \"1.2.3.4\"\n"),
                &["traffic.geneve.vni", "required"],
            ),
            (&format!("{tx}[run]\ntx_cores = 0\n"), &["run.tx_cores"]),
            (
                &format!("{tx}[run]\nduration_s = -1\n"),
                &["run.duration_s"],
            ),
            (&format!("{tx}[run]\nburst = 1000\n"), &["run.burst"]),
            (&format!("{tx}[nonsense]\n"), &["unknown field `nonsense`"]),
            ("[port\ntx=1", &["test.toml"]),
        ];
        for (text, wants) in cases {
            let e = resolve(text).expect_err(text);
            for w in *wants {
                assert!(e.contains(w), "{text:?}: error {e:?} lacks {w:?}");
            }
        }
    }
}
