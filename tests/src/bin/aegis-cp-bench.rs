//! `aegis-cp-bench`: measures the Aegis control cluster — write throughput and latency of a
//! single node (loopback) and of the 3-node cluster in network namespaces (through the cluster
//! IP), and leader failover times over repeated `kill -9`s of the leader. Prints a Markdown
//! report; `scripts/cp-bench.sh` builds and runs it, docs/controlplane.md records a run.
//!
//! Usage: `aegis-cp-bench [--seconds S] [--writers 1,16] [--kills N] [--skip-single]
//! [--skip-cluster] [--skip-failover]` (root, for the namespaces; binaries from
//! `$AEGIS_BIN_DIR` or target/release).
//!
//! Failover is measured two ways, alternating:
//! - process death: `kill -9` of the leader's daemon. Its host's kernel keeps the cluster IP
//!   (nobody removes it), so ping keeps being answered there; what counts is when a survivor
//!   has the address, when the client's ARP entry names it (gratuitous ARP), and the client's
//!   first acknowledged write after the kill.
//! - host death: `kill -9` and the leader's cable cut at the same moment (a crashed machine).
//!   Here ping of the cluster IP stops, and "answering again" is the first echo reply after
//!   the kill.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::thread::sleep;
use std::time::{Duration, Instant};

use aegis_lab::cpcluster::{
    percentile, ping_reply_times, spawn_writers, unix_now, CpCluster, LocalCp, Timing, WriterSpec,
    Writes,
};
use aegis_lab::wait::{self, Poll};
use aegis_lab::{Bins, LabError};

struct Opts {
    seconds: u64,
    writers: Vec<usize>,
    kills: u32,
    single: bool,
    cluster: bool,
    failover: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        seconds: 5,
        writers: vec![1, 16],
        kills: 5,
        single: true,
        cluster: true,
        failover: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--seconds" => o.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--writers" => {
                o.writers = value()?
                    .split(',')
                    .map(|w| w.parse().map_err(|e| format!("--writers: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--kills" => o.kills = value()?.parse().map_err(|e| format!("--kills: {e}"))?,
            "--skip-single" => o.single = false,
            "--skip-cluster" => o.cluster = false,
            "--skip-failover" => o.failover = false,
            "-h" | "--help" => {
                return Err(
                    "usage: aegis-cp-bench [--seconds S] [--writers 1,16] [--kills N] \
                            [--skip-single] [--skip-cluster] [--skip-failover]"
                        .into(),
                )
            }
            _ => return Err(format!("unknown argument {a:?} (see --help)")),
        }
    }
    Ok(o)
}

/// Runs `writers` writers against `server` (from `netns` if given) for `secs` seconds.
fn load(
    netns: Option<std::path::PathBuf>,
    server: String,
    writers: usize,
    secs: u64,
    first_vni: u32,
) -> Result<(Writes, Duration), LabError> {
    let spec = WriterSpec::new(server, writers);
    spec.next_vni.store(first_vni, Ordering::Relaxed);
    let stop = spec.stop.clone();
    let started = Instant::now();
    let h = spawn_writers(netns, spec);
    sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let w = h.join().map_err(|_| LabError::Spawn {
        cmd: "writer thread".into(),
        source: std::io::Error::other("panicked"),
    })??;
    Ok((w, started.elapsed()))
}

fn row(setup: &str, writers: usize, w: &Writes, elapsed: Duration) -> String {
    let lat = w.latencies();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    format!(
        "| {setup} | {writers} | {} | {:.0} | {} | {} | {} | {} |",
        w.acked_names().len(),
        w.acked_names().len() as f64 / elapsed.as_secs_f64(),
        ms(percentile(&lat, 50.0)),
        ms(percentile(&lat, 99.0)),
        ms(lat.last().copied().unwrap_or_default()),
        w.errors.len()
    )
}

const TABLE_HEAD: &str = "| setup | writers | acknowledged | writes/s | p50 ms | p99 ms | max ms | failed attempts |\n|---|---|---|---|---|---|---|---|";

fn single(o: &Opts, bins: &Bins) -> Result<Vec<String>, LabError> {
    let mut rows = Vec::new();
    for (i, &n) in o.writers.iter().enumerate() {
        let mut node = LocalCp::new("cpbench", bins)?;
        node.start()?;
        let (w, el) = load(
            None,
            node.endpoint(),
            n,
            o.seconds,
            1 + 1_000_000 * i as u32,
        )?;
        rows.push(row("1 node, loopback", n, &w, el));
        eprintln!("{}", rows.last().map(String::as_str).unwrap_or_default());
    }
    Ok(rows)
}

fn cluster_load(o: &Opts, bins: &Bins) -> Result<Vec<String>, LabError> {
    let c = CpCluster::start("cpbench", bins, 3, Timing::default())?;
    let mut rows = Vec::new();
    for (i, &n) in o.writers.iter().enumerate() {
        let ns = c.netns_path(CpCluster::CLIENT)?;
        let (w, el) = load(
            Some(ns),
            CpCluster::vip_endpoint(),
            n,
            o.seconds,
            1 + 1_000_000 * i as u32,
        )?;
        rows.push(row("3 nodes, netns bridge, via cluster IP", n, &w, el));
        eprintln!("{}", rows.last().map(String::as_str).unwrap_or_default());
    }
    Ok(rows)
}

/// One failover measurement, in ms from the kill.
struct Failover {
    host_death: bool,
    ip_on_survivor: f64,
    arp: Option<f64>,
    ping: Option<f64>,
    write: Option<f64>,
}

fn failover(o: &Opts, bins: &Bins) -> Result<Vec<Failover>, LabError> {
    let mut c = CpCluster::start("cpbenchfo", bins, 3, Timing::default())?;
    let ids = c.ids();
    let mut out = Vec::new();
    let next_vni = WriterSpec::new("", 1).next_vni;
    for k in 0..o.kills * 2 {
        let host_death = k % 2 == 1;
        let old = c.wait_leader(&ids, None, Duration::from_secs(10))?;
        c.lab.wait_ping(
            CpCluster::CLIENT,
            CpCluster::CLUSTER_IP,
            Duration::from_secs(5),
        )?;
        let ping = c.lab.spawn(
            CpCluster::CLIENT,
            &format!("ping-{k}"),
            "stdbuf",
            &[
                "-oL",
                "ping",
                "-D",
                "-n",
                "-i",
                "0.02",
                "-W",
                "1",
                CpCluster::CLUSTER_IP,
            ],
        )?;
        let mut spec = WriterSpec::new(CpCluster::vip_endpoint(), 1);
        spec.next_vni = next_vni.clone();
        spec.attempt_timeout = Duration::from_millis(500);
        spec.retry_pause = Duration::from_millis(10);
        let stop = spec.stop.clone();
        let h = spawn_writers(Some(c.netns_path(CpCluster::CLIENT)?), spec);
        sleep(Duration::from_millis(1000));

        let (killed_at, _) = c.kill9(old)?;
        let killed_unix = unix_now();
        if host_death {
            c.cable(old, false)?;
        }
        let survivors: Vec<u64> = ids.iter().copied().filter(|&i| i != old).collect();
        let (holder, vip_at) = wait::until(
            "a survivor to hold the cluster IP",
            Duration::from_secs(10),
            Duration::from_millis(5),
            || match c.cluster_ip_holders(&survivors) {
                Ok(h) if h.len() == 1 => Poll::Ready((h[0], Instant::now())),
                Ok(h) => Poll::Pending(format!("{h:?}")),
                Err(e) => Poll::Fail(e),
            },
        )?;
        let mac = c.mac(holder)?;
        let arp_at = wait::until(
            "the client's ARP entry to name the new holder",
            Duration::from_secs(5),
            Duration::from_millis(5),
            || match c.client_cluster_ip_mac() {
                Ok(Some(m)) if m == mac => Poll::Ready(Instant::now()),
                Ok(m) => Poll::Pending(format!("{m:?}")),
                Err(e) => Poll::Fail(e),
            },
        )
        .ok();
        sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        let writes = h.join().map_err(|_| LabError::Spawn {
            cmd: "writer thread".into(),
            source: std::io::Error::other("panicked"),
        })??;
        let log = c.lab.stop(ping);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let replies = ping_reply_times(&log);
        // First echo reply after the kill (allowing 5 ms for replies already in flight).
        let ping_ms = replies
            .iter()
            .find(|&&t| t > killed_unix + 0.005)
            .map(|t| (t - killed_unix) * 1000.0);
        let f = Failover {
            host_death,
            ip_on_survivor: ms(vip_at - killed_at),
            arp: arp_at.map(|a| ms(a - killed_at)),
            ping: ping_ms,
            write: writes
                .first_ack_after(killed_at)
                .map(|r| ms(r.finished - killed_at)),
        };
        eprintln!(
            "kill {k} ({}): node {old} -> {holder}: ip {:.0} ms, arp {:?}, ping {:?}, write {:?}",
            if host_death {
                "host death"
            } else {
                "process death"
            },
            f.ip_on_survivor,
            f.arp,
            f.ping,
            f.write
        );
        out.push(f);
        if host_death {
            c.cable(old, true)?;
        }
        c.start_node(old, false)?;
        c.wait_converged(&ids, Duration::from_secs(20))?;
    }
    Ok(out)
}

fn stats(v: &[f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    format!(
        "{:.0} / {:.0} / {:.0}",
        s[0],
        s[s.len() / 2],
        s[s.len() - 1]
    )
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let bins = Bins::locate();
    let run = || -> Result<(), LabError> {
        println!("# aegis-cp-bench, {} s per load run\n", o.seconds);
        let mut rows = Vec::new();
        if o.single {
            rows.extend(single(&o, &bins)?);
        }
        if o.cluster {
            rows.extend(cluster_load(&o, &bins)?);
        }
        if !rows.is_empty() {
            println!("## Writes (vpc create, one in flight per writer)\n\n{TABLE_HEAD}");
            for r in &rows {
                println!("{r}");
            }
            println!();
        }
        if o.failover {
            let f = failover(&o, &bins)?;
            println!("## Leader failover, ms after kill -9 (min / median / max)\n");
            println!("| failure | runs | cluster IP on a survivor | client ARP updated | ping answered again | first acknowledged write |\n|---|---|---|---|---|---|");
            for (label, hd) in [
                ("process death (kill -9)", false),
                ("host death (kill -9 + cable cut)", true),
            ] {
                let sel: Vec<&Failover> = f.iter().filter(|x| x.host_death == hd).collect();
                let col = |g: &dyn Fn(&Failover) -> Option<f64>| {
                    stats(&sel.iter().filter_map(|x| g(x)).collect::<Vec<_>>())
                };
                println!(
                    "| {label} | {} | {} | {} | {} | {} |",
                    sel.len(),
                    col(&|x| Some(x.ip_on_survivor)),
                    col(&|x| x.arp),
                    if hd {
                        col(&|x| x.ping)
                    } else {
                        "n/a (old kernel keeps answering)".into()
                    },
                    col(&|x| x.write)
                );
            }
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aegis-cp-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
