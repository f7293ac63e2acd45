//! Runtime changes made through the admin API (routes, addresses, port state) survive a
//! restart or a SIGKILL: each accepted change is appended to a journal as one text line
//! (`route add 10.3.0.0/16 via 10.0.2.2`) and fsynced before the API answers; at start the
//! journal is replayed over host.toml. A torn last line (a crash mid-write) or a line that
//! no longer applies is reported with its line number and skipped; the rest is kept.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::ctl::{AdminError, Ipv4Cidr, RouteTarget};
use crate::fib::Prefix;
use crate::state::forwarding::{IfAddr, RouteTarget as StateTarget};
use crate::state::{StateError, Tables};

/// One runtime change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `route add PREFIX via GW | dev PORT | blackhole | unreachable`
    AddRoute {
        prefix: Ipv4Cidr,
        target: RouteTarget,
    },
    /// `route del PREFIX`
    DeleteRoute { prefix: Ipv4Cidr },
    /// `address add PORT CIDR`
    AddAddress { port: String, address: Ipv4Cidr },
    /// `address del PORT CIDR`
    DeleteAddress { port: String, address: Ipv4Cidr },
    /// `port PORT up|down`
    PortState { port: String, up: bool },
}

impl Change {
    /// Applies the change to `tables`; the error names the request field at fault.
    pub fn apply(&self, t: &mut Tables) -> Result<u64, AdminError> {
        match self {
            Change::AddRoute { prefix, target } => {
                let p = prefix_of(*prefix)?;
                let target = match target {
                    RouteTarget::Via(gw) => StateTarget::Via(*gw),
                    RouteTarget::Port(name) => StateTarget::Port(port(t, name)?),
                    RouteTarget::Blackhole => StateTarget::Blackhole,
                    RouteTarget::Unreachable => StateTarget::Unreachable,
                };
                t.add_route(p, target).map_err(|e| admin_error("prefix", e))
            }
            Change::DeleteRoute { prefix } => {
                let p = prefix_of(*prefix)?;
                t.del_route(p).map_err(|e| admin_error("prefix", e))
            }
            Change::AddAddress {
                port: name,
                address,
            } => {
                let idx = port(t, name)?;
                t.add_address(idx, if_addr(*address))
                    .map_err(|e| admin_error("address", e))
            }
            Change::DeleteAddress {
                port: name,
                address,
            } => {
                let idx = port(t, name)?;
                t.del_address(idx, if_addr(*address))
                    .map_err(|e| admin_error("address", e))
            }
            Change::PortState { port: name, up } => {
                let idx = port(t, name)?;
                t.set_port_up(idx, *up).map_err(|e| admin_error("port", e))
            }
        }
    }

    /// The journal line for this change.
    pub fn to_line(&self) -> String {
        match self {
            Change::AddRoute { prefix, target } => match target {
                RouteTarget::Via(gw) => format!("route add {prefix} via {gw}"),
                RouteTarget::Port(p) => format!("route add {prefix} dev {p}"),
                RouteTarget::Blackhole => format!("route add {prefix} blackhole"),
                RouteTarget::Unreachable => format!("route add {prefix} unreachable"),
            },
            Change::DeleteRoute { prefix } => format!("route del {prefix}"),
            Change::AddAddress { port, address } => format!("address add {port} {address}"),
            Change::DeleteAddress { port, address } => format!("address del {port} {address}"),
            Change::PortState { port, up } => {
                format!("port {port} {}", if *up { "up" } else { "down" })
            }
        }
    }

    /// Parses a journal line.
    pub fn parse(line: &str) -> Result<Change, String> {
        let w: Vec<&str> = line.split_whitespace().collect();
        let cidr = |s: &str| {
            s.parse::<Ipv4Cidr>()
                .map_err(|e| format!("{s:?} is not an IPv4 prefix: {e}"))
        };
        match w.as_slice() {
            ["route", "add", p, "via", gw] => Ok(Change::AddRoute {
                prefix: cidr(p)?,
                target: RouteTarget::Via(
                    gw.parse()
                        .map_err(|_| format!("{gw:?} is not an IPv4 address"))?,
                ),
            }),
            ["route", "add", p, "dev", port] => Ok(Change::AddRoute {
                prefix: cidr(p)?,
                target: RouteTarget::Port((*port).to_owned()),
            }),
            ["route", "add", p, "blackhole"] => Ok(Change::AddRoute {
                prefix: cidr(p)?,
                target: RouteTarget::Blackhole,
            }),
            ["route", "add", p, "unreachable"] => Ok(Change::AddRoute {
                prefix: cidr(p)?,
                target: RouteTarget::Unreachable,
            }),
            ["route", "del", p] => Ok(Change::DeleteRoute { prefix: cidr(p)? }),
            ["address", op @ ("add" | "del"), port, a] => {
                let (port, address) = ((*port).to_owned(), cidr(a)?);
                Ok(if *op == "add" {
                    Change::AddAddress { port, address }
                } else {
                    Change::DeleteAddress { port, address }
                })
            }
            ["port", port, s @ ("up" | "down")] => Ok(Change::PortState {
                port: (*port).to_owned(),
                up: *s == "up",
            }),
            _ => Err(format!("unrecognised change {line:?}")),
        }
    }
}

/// The journal file (or none: changes then last until the process ends).
#[derive(Debug, Default)]
pub struct RuntimeLog {
    path: Option<PathBuf>,
}

/// A journal line that was not applied at start, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

impl RuntimeLog {
    /// No journal.
    pub fn disabled() -> Self {
        RuntimeLog { path: None }
    }

    /// Replays the journal at `path` (if it exists) into `tables`, then rewrites it with
    /// only the changes that applied (atomically: temporary file, fsync, rename).
    pub fn open(path: &Path, tables: &mut Tables) -> io::Result<(RuntimeLog, Vec<Skipped>)> {
        let mut kept = Vec::new();
        let mut skipped = Vec::new();
        match std::fs::read(path) {
            Ok(bytes) => {
                // A last line without its newline was cut by a crash mid-write: it may parse
                // as a different change (a prefix length or address cut short), so it is
                // never applied.
                let complete = bytes.ends_with(b"\n");
                let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
                let n = lines.len();
                for (i, line) in lines.into_iter().enumerate() {
                    if i + 1 == n {
                        if !complete && !line.is_empty() {
                            skipped.push(Skipped {
                                line: i + 1,
                                reason: "incomplete last line (a torn write)".into(),
                            });
                        }
                        break;
                    }
                    let text = String::from_utf8_lossy(line);
                    let text = text.trim();
                    if text.is_empty() || text.starts_with('#') {
                        continue;
                    }
                    let result = Change::parse(text)
                        .and_then(|c| c.apply(tables).map(|_| c).map_err(|e| e.to_string()));
                    match result {
                        Ok(c) => kept.push(c),
                        Err(reason) => skipped.push(Skipped {
                            line: i + 1,
                            reason,
                        }),
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            writeln!(
                f,
                "# aegis-dataplane runtime changes, replayed over the config at start"
            )?;
            for c in &kept {
                writeln!(f, "{}", c.to_line())?;
            }
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            // Make the rename itself durable.
            File::open(dir)?.sync_all()?;
        }
        Ok((
            RuntimeLog {
                path: Some(path.to_owned()),
            },
            skipped,
        ))
    }

    /// Appends an applied change and flushes it to disk.
    pub fn append(&mut self, change: &Change) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut f = OpenOptions::new().append(true).create(true).open(path)?;
        // One write of the whole line, newline included.
        f.write_all(format!("{}\n", change.to_line()).as_bytes())?;
        f.sync_data()
    }
}

fn prefix_of(c: Ipv4Cidr) -> Result<Prefix, AdminError> {
    Prefix::new(c.addr(), c.prefix_len()).map_err(|e| AdminError::invalid("prefix", e.to_string()))
}

fn if_addr(c: Ipv4Cidr) -> IfAddr {
    IfAddr {
        addr: c.addr(),
        len: c.prefix_len(),
    }
}

fn port(t: &Tables, name: &str) -> Result<u16, AdminError> {
    t.port_index(name).map_err(|e| admin_error("port", e))
}

/// Maps a refused change to the admin error class operators expect.
pub fn admin_error(field: &'static str, e: StateError) -> AdminError {
    let msg = e.to_string();
    match e {
        StateError::NoSuchPort { .. } | StateError::NoSuchPortName { .. } => {
            AdminError::not_found("port", msg)
        }
        StateError::NoSuchAddress { .. }
        | StateError::NoSuchRoute { .. }
        | StateError::NoSuchNeighbour { .. } => AdminError::not_found(field, msg),
        StateError::AddressExists { .. } | StateError::RouteExists { .. } => {
            AdminError::exists(field, msg)
        }
        StateError::GatewayUnreachable { .. }
        | StateError::GatewayIsLocal { .. }
        | StateError::GatewayNotHost { .. } => AdminError::invalid("via", msg),
        _ => AdminError::invalid(field, msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::forwarding::{ForwardingConfig, PortConfig};

    fn tables() -> Tables {
        let mut p = PortConfig::new("eth0");
        p.addresses.push(IfAddr {
            addr: "10.0.1.1".parse().unwrap(),
            len: 24,
        });
        p.mac = Some([2, 0, 0, 0, 0, 1]);
        Tables::new(&ForwardingConfig {
            ports: vec![p],
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn lines_round_trip() {
        for l in [
            "route add 10.3.0.0/16 via 10.0.1.2",
            "route add 10.4.0.0/16 dev eth0",
            "route add 10.5.0.0/16 blackhole",
            "route add 10.6.0.0/16 unreachable",
            "route del 10.3.0.0/16",
            "address add eth0 10.0.9.1/24",
            "address del eth0 10.0.9.1/24",
            "port eth0 down",
        ] {
            assert_eq!(Change::parse(l).unwrap().to_line(), l);
        }
        assert!(Change::parse("route add banana").is_err());
        assert!(Change::parse("route add 10.0.0.0/33 blackhole").is_err());
    }

    #[test]
    fn journal_survives_restart_and_skips_torn_or_stale_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("changes");
        let mut t = tables();
        let (mut log, skipped) = RuntimeLog::open(&path, &mut t).unwrap();
        assert!(skipped.is_empty());
        let c = Change::parse("route add 10.3.0.0/16 via 10.0.1.2").unwrap();
        c.apply(&mut t).unwrap();
        log.append(&c).unwrap();
        // A stale change and a torn line, as a crash mid-write would leave: the torn line
        // would parse as a valid /1 route if it were applied.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        write!(
            f,
            "route add 10.9.0.0/16 via 10.77.0.1\nroute add 0.0.0.0/1"
        )
        .unwrap();
        drop(f);

        let mut fresh = tables();
        let (_, skipped) = RuntimeLog::open(&path, &mut fresh).unwrap();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert_eq!(skipped[0].line, 3);
        assert!(
            skipped[0].reason.contains("gateway"),
            "{}",
            skipped[0].reason
        );
        assert_eq!(skipped[1].line, 4);
        assert!(skipped[1].reason.contains("torn"), "{}", skipped[1].reason);
        assert!(fresh
            .route_entries()
            .iter()
            .any(|r| r.prefix.to_string() == "10.3.0.0/16"));
        // The rewritten journal holds only what applied.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 1);
    }
}
