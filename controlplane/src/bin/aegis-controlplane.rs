//! `aegis-controlplane`: one node of the Aegis control cluster (see `--help`).
#![deny(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aegis_controlplane::client::ClientConfig;
use aegis_controlplane::server::{run, ClusterIpConfig, NodeConfig};
use clap::Parser;

/// One node of the Aegis control cluster: the desired-state API over gRPC, replicated with
/// Raft. Start the first node alone; start the others with --join ADDR of a running node.
#[derive(Parser, Debug)]
#[command(name = "aegis-controlplane", version)]
struct Args {
    /// Node id: unique in the cluster, never reused (1, 2, 3...).
    #[arg(long, default_value_t = 1)]
    id: u64,
    /// gRPC listen address (API, agents, peers).
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: SocketAddr,
    /// Address other nodes and clients reach this node at (default: --listen).
    #[arg(long)]
    advertise: Option<String>,
    /// Data directory (the Raft log, snapshots).
    #[arg(long, default_value = "/var/lib/aegis/controlplane")]
    data_dir: PathBuf,
    /// Join an existing cluster through this node (repeatable); ignored once a member.
    #[arg(long)]
    join: Vec<String>,
    /// Cluster IP the leader holds, with prefix length (e.g. 10.0.0.100/24).
    #[arg(long, requires = "cluster_ip_interface")]
    cluster_ip: Option<String>,
    /// Interface to put the cluster IP on (the management network's).
    #[arg(long)]
    cluster_ip_interface: Option<String>,
    /// Raft heartbeat interval in ms.
    #[arg(long, default_value_t = 50)]
    heartbeat_ms: u64,
    /// Minimum election timeout in ms (also the leader's lease on the cluster IP).
    #[arg(long, default_value_t = 300)]
    election_min_ms: u64,
    /// Maximum election timeout in ms.
    #[arg(long, default_value_t = 600)]
    election_max_ms: u64,
    /// Heartbeat silence after which a host is shown down, in ms.
    #[arg(long, default_value_t = 3000)]
    host_down_after_ms: u64,
    /// Changes kept for watchers (older ones get a full resync).
    #[arg(long, default_value_t = 10_000)]
    history: usize,
    /// Take a snapshot (and purge the log) after this many entries.
    #[arg(long, default_value_t = 5000)]
    snapshot_every: u64,
    /// How long a write may wait to be committed, in ms.
    #[arg(long, default_value_t = 5000)]
    write_timeout_ms: u64,
    /// Bearer token required from every caller (also sent to peers).
    #[arg(long, env = "AEGIS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM certificate to serve TLS with (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// PEM CA that signed the peers' certificates (TLS to peers).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Prometheus endpoint (GET /metrics).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

fn config(args: Args) -> Result<NodeConfig, String> {
    if args.id == 0 {
        return Err("--id must be at least 1".into());
    }
    if args.election_min_ms <= args.heartbeat_ms * 2 || args.election_max_ms <= args.election_min_ms
    {
        return Err("need --heartbeat-ms * 2 < --election-min-ms < --election-max-ms".into());
    }
    let cluster_ip = match (&args.cluster_ip, &args.cluster_ip_interface) {
        (Some(cidr), Some(interface)) => {
            let (addr, len) = cidr.split_once('/').ok_or_else(|| {
                format!("--cluster-ip {cidr:?}: give the prefix length (a.b.c.d/n)")
            })?;
            let address: Ipv4Addr = addr
                .parse()
                .map_err(|_| format!("--cluster-ip {cidr:?}: bad address"))?;
            let prefix_len: u8 = len
                .parse()
                .ok()
                .filter(|l| (1..=32).contains(l))
                .ok_or_else(|| format!("--cluster-ip {cidr:?}: the prefix length must be 1..32"))?;
            Some(ClusterIpConfig {
                interface: interface.clone(),
                address,
                prefix_len,
            })
        }
        (None, None) => None,
        _ => return Err("--cluster-ip and --cluster-ip-interface go together".into()),
    };
    if let Some(c) = &cluster_ip {
        let ip = args.listen.ip();
        if !ip.is_unspecified() && ip != std::net::IpAddr::V4(c.address) {
            return Err(format!(
                "--listen {} accepts connections only on {ip}, so clients could not reach this node through the cluster IP {}: listen on 0.0.0.0:{} and give the node's own address with --advertise",
                args.listen,
                c.address,
                args.listen.port()
            ));
        }
    }
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
        _ => None,
    };
    let peer_client = ClientConfig {
        token: args.token.clone(),
        ..ClientConfig::default()
    }
    .with_ca_file(args.tls_ca.as_ref())
    .map_err(|e| e.to_string())?;
    Ok(NodeConfig {
        id: args.id,
        listen: args.listen,
        advertise: args.advertise.unwrap_or_else(|| args.listen.to_string()),
        data_dir: args.data_dir,
        join: args.join,
        cluster_ip,
        heartbeat: Duration::from_millis(args.heartbeat_ms),
        election_min: Duration::from_millis(args.election_min_ms),
        election_max: Duration::from_millis(args.election_max_ms),
        host_down_after: Duration::from_millis(args.host_down_after_ms),
        history: args.history,
        snapshot_every: args.snapshot_every.max(10),
        token: args.token,
        tls,
        peer_client,
        metrics_listen: args.metrics,
        write_timeout: Duration::from_millis(args.write_timeout_ms),
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    let config = match config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aegis-controlplane: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aegis-controlplane: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot handle SIGTERM");
                        return;
                    }
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            let _ = stop_tx.send(true);
        });
        match run(config, stop_rx).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("aegis-controlplane: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
