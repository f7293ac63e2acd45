//! Route tables for the benchmark: random unique prefixes written as an Aegis routes file
//! (`PREFIX via GW` / `PREFIX dev PORT`) and as a DPDK l3fwd LPM rule file
//! (`RA.B.C.D/LEN PORT`), and the routes read back from an Aegis routes file.

use std::collections::HashSet;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::net::Ipv4Prefix;
use crate::rng::Rng;

/// Prefixes never generated: "this network", loopback, multicast and reserved.
pub const ALWAYS_EXCLUDED: [&str; 3] = ["0.0.0.0/8", "127.0.0.0/8", "224.0.0.0/3"];

/// Errors reading or generating routes.
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    /// The file cannot be read.
    #[error("cannot read routes file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A line is not a route.
    #[error("{path}:{line}: {reason}: {text:?}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// The file holds no route that forwards (via/dev).
    #[error("routes file {path} has no forwarding route (PREFIX via GW or PREFIX dev PORT)")]
    NoForwardingRoute {
        /// The file.
        path: PathBuf,
    },
    /// Generation parameters are invalid.
    #[error("cannot generate routes: {0}")]
    BadOptions(String),
}

/// What a route does with matching packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Forward via a gateway.
    Via(Ipv4Addr),
    /// Forward directly out of a port.
    Dev(String),
    /// Drop silently.
    Blackhole,
    /// Drop with ICMP unreachable.
    Unreachable,
}

impl Action {
    /// Whether matching packets are forwarded.
    pub fn forwards(&self) -> bool {
        matches!(self, Action::Via(_) | Action::Dev(_))
    }
}

/// One line of a routes file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub prefix: Ipv4Prefix,
    /// What happens to matching packets.
    pub action: Action,
}

/// Reads an Aegis routes file: one route per line, `#` comments and blank lines ignored.
pub fn read_routes(path: &Path) -> Result<Vec<Route>, RoutesError> {
    let text = std::fs::read_to_string(path).map_err(|source| RoutesError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_routes(&text, path)
}

/// Parses routes-file text; `path` only names the file in errors.
pub fn parse_routes(text: &str, path: &Path) -> Result<Vec<Route>, RoutesError> {
    let mut routes = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |reason: String| RoutesError::Line {
            path: path.to_owned(),
            line: i + 1,
            text: raw.to_owned(),
            reason,
        };
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let prefix: Ipv4Prefix = tokens[0].parse().map_err(|e| err(format!("{e}")))?;
        let action = match tokens[1..] {
            ["via", gw] => Action::Via(
                gw.parse()
                    .map_err(|_| err(format!("gateway {gw:?} is not an IPv4 address")))?,
            ),
            ["dev", port] => Action::Dev(port.to_owned()),
            ["blackhole"] => Action::Blackhole,
            ["unreachable"] => Action::Unreachable,
            _ => {
                return Err(err(
                    "expected PREFIX via GW | PREFIX dev PORT | PREFIX blackhole | \
                     PREFIX unreachable"
                        .into(),
                ))
            }
        };
        routes.push(Route { prefix, action });
    }
    Ok(routes)
}

/// The prefixes of the forwarding routes in `routes`, or an error naming `path` if none.
pub fn forwarding_prefixes(routes: &[Route], path: &Path) -> Result<Vec<Ipv4Prefix>, RoutesError> {
    let out: Vec<Ipv4Prefix> = routes
        .iter()
        .filter(|r| r.action.forwards())
        .map(|r| r.prefix)
        .collect();
    if out.is_empty() {
        return Err(RoutesError::NoForwardingRoute {
            path: path.to_owned(),
        });
    }
    Ok(out)
}

/// Parameters for [`generate`].
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Number of unique prefixes.
    pub count: usize,
    /// Shortest prefix length.
    pub min_len: u8,
    /// Longest prefix length; it also gets 60 % of the routes, like the /24s of real tables.
    pub max_len: u8,
    /// Prefixes the table must not overlap (besides [`ALWAYS_EXCLUDED`]).
    pub exclude: Vec<Ipv4Prefix>,
    /// Random seed.
    pub seed: u64,
}

/// `count` unique random prefixes (lengths `min_len..=max_len`, 60 % at `max_len`) that
/// overlap none of the excluded prefixes, in generation order.
pub fn generate(opts: &GenOptions) -> Result<Vec<Ipv4Prefix>, RoutesError> {
    if opts.count == 0 {
        return Err(RoutesError::BadOptions("count must be at least 1".into()));
    }
    if !(8..=32).contains(&opts.min_len) || opts.min_len > opts.max_len || opts.max_len > 32 {
        return Err(RoutesError::BadOptions(format!(
            "prefix lengths {}..={} must satisfy 8 <= min <= max <= 32",
            opts.min_len, opts.max_len
        )));
    }
    let mut exclude: Vec<Ipv4Prefix> = ALWAYS_EXCLUDED
        .iter()
        .map(|p| p.parse().expect("built-in prefix"))
        .collect();
    exclude.extend(&opts.exclude);
    let mut rng = Rng::new(opts.seed);
    let mut seen = HashSet::with_capacity(opts.count);
    let mut out = Vec::with_capacity(opts.count);
    let max_attempts = opts.count.saturating_mul(50).saturating_add(10_000);
    for _ in 0..max_attempts {
        if out.len() == opts.count {
            break;
        }
        let len = if opts.min_len == opts.max_len || rng.percent(60) {
            opts.max_len
        } else {
            rng.range_u32(u32::from(opts.min_len), u32::from(opts.max_len) - 1) as u8
        };
        let prefix = Ipv4Prefix::containing(rng.next_u32(), len);
        if exclude.iter().any(|x| x.overlaps(&prefix)) || !seen.insert(prefix) {
            continue;
        }
        out.push(prefix);
    }
    if out.len() < opts.count {
        return Err(RoutesError::BadOptions(format!(
            "found only {} unique prefixes of lengths {}..={} outside the excluded ones; \
             ask for fewer or allow longer prefixes",
            out.len(),
            opts.min_len,
            opts.max_len
        )));
    }
    Ok(out)
}

/// Writes `prefixes` as an Aegis routes file, every route doing `action`.
pub fn write_aegis(prefixes: &[Ipv4Prefix], action: &Action, mut w: impl Write) -> io::Result<()> {
    let tail = match action {
        Action::Via(gw) => format!("via {gw}"),
        Action::Dev(port) => format!("dev {port}"),
        Action::Blackhole => "blackhole".to_owned(),
        Action::Unreachable => "unreachable".to_owned(),
    };
    for p in prefixes {
        writeln!(w, "{p} {tail}")?;
    }
    w.flush()
}

/// Writes `prefixes` as an l3fwd LPM rule file (`--rule_ipv4`), all to port `port`.
pub fn write_l3fwd(prefixes: &[Ipv4Prefix], port: u8, mut w: impl Write) -> io::Result<()> {
    for p in prefixes {
        writeln!(w, "R{p} {port}")?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(count: usize) -> GenOptions {
        GenOptions {
            count,
            min_len: 16,
            max_len: 24,
            exclude: vec!["192.168.0.0/16".parse().unwrap()],
            seed: 42,
        }
    }

    #[test]
    fn generated_tables_are_unique_in_range_and_reproducible() {
        let table = generate(&opts(20_000)).unwrap();
        assert_eq!(table.len(), 20_000);
        let unique: HashSet<_> = table.iter().collect();
        assert_eq!(unique.len(), table.len());
        let excluded: Vec<Ipv4Prefix> = ALWAYS_EXCLUDED
            .iter()
            .chain(["192.168.0.0/16"].iter())
            .map(|p| p.parse().unwrap())
            .collect();
        for p in &table {
            assert!((16..=24).contains(&p.prefix_len()), "{p}");
            assert!(
                !excluded.iter().any(|x| x.overlaps(p)),
                "{p} overlaps an exclusion"
            );
        }
        let slash24 = table.iter().filter(|p| p.prefix_len() == 24).count();
        assert!(
            (11_000..13_000).contains(&slash24),
            "about 60 % /24: {slash24}"
        );
        assert_eq!(
            generate(&opts(20_000)).unwrap(),
            table,
            "same seed, same table"
        );
        let other = generate(&GenOptions {
            seed: 43,
            ..opts(20_000)
        })
        .unwrap();
        assert_ne!(other, table);
    }

    #[test]
    fn bad_generation_options_are_refused() {
        let e = generate(&GenOptions {
            min_len: 25,
            max_len: 24,
            ..opts(5)
        })
        .unwrap_err();
        assert!(e.to_string().contains("25..=24"), "{e}");
        assert!(generate(&opts(0)).is_err());
        // Only 2^8 /8s exist, fewer outside the exclusions.
        let e = generate(&GenOptions {
            min_len: 8,
            max_len: 8,
            ..opts(300)
        })
        .unwrap_err();
        assert!(e.to_string().contains("found only"), "{e}");
    }

    #[test]
    fn both_file_formats_round_trip() {
        let table = generate(&opts(50)).unwrap();
        let gw = Ipv4Addr::new(192, 168, 1, 2);
        let mut aegis = Vec::new();
        write_aegis(&table, &Action::Via(gw), &mut aegis).unwrap();
        let text = String::from_utf8(aegis).unwrap();
        let routes = parse_routes(&text, Path::new("t")).unwrap();
        assert_eq!(routes.len(), 50);
        assert!(routes.iter().all(|r| r.action == Action::Via(gw)));
        assert_eq!(routes.iter().map(|r| r.prefix).collect::<Vec<_>>(), table);

        let mut l3fwd = Vec::new();
        write_l3fwd(&table, 1, &mut l3fwd).unwrap();
        let text = String::from_utf8(l3fwd).unwrap();
        let first = text.lines().next().unwrap();
        assert_eq!(first, format!("R{} 1", table[0]));
        assert_eq!(text.lines().count(), 50);
    }

    #[test]
    fn routes_file_syntax() {
        let text = "# table\n\n10.0.0.0/8 via 192.168.1.2  # comment\n10.1.0.0/16 dev eth1\n\
                    10.2.0.0/16 blackhole\n10.3.0.0/16 unreachable\n";
        let routes = parse_routes(text, Path::new("r.txt")).unwrap();
        assert_eq!(routes.len(), 4);
        assert_eq!(routes[1].action, Action::Dev("eth1".into()));
        let fwd = forwarding_prefixes(&routes, Path::new("r.txt")).unwrap();
        assert_eq!(fwd.len(), 2);

        let e = parse_routes("10.0.0.0/8 via\n", Path::new("r.txt")).unwrap_err();
        assert!(
            e.to_string().starts_with("r.txt:1: expected PREFIX via GW"),
            "{e}"
        );
        let e = parse_routes("\n10.0.0.1/8 blackhole\n", Path::new("r.txt")).unwrap_err();
        assert!(
            e.to_string()
                .contains("r.txt:2: invalid IPv4 prefix 10.0.0.1/8"),
            "{e}"
        );
        let e = parse_routes("10.0.0.0/8 via gw\n", Path::new("r.txt")).unwrap_err();
        assert!(e.to_string().contains("not an IPv4 address"), "{e}");
        let only_drops = parse_routes("10.0.0.0/8 blackhole\n", Path::new("d.txt")).unwrap();
        let e = forwarding_prefixes(&only_drops, Path::new("d.txt")).unwrap_err();
        assert!(
            e.to_string().contains("d.txt has no forwarding route"),
            "{e}"
        );
    }
}
