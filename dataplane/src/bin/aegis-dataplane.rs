//! `aegis-dataplane`: the forwarding daemon. `--config host.toml` runs it; `--check`
//! validates the configuration and exits; `--controlplane ADDR --host NAME` feeds it from the
//! control plane (docs/controlplane-agents.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use aegis_agent::ConnectConfig;
use aegis_dataplane::config::HostConfig;
use aegis_dataplane::daemon::feed::FeedOptions;
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Aegis poll-mode DPDK dataplane.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Host configuration file (TOML).
    #[arg(
        short,
        long,
        env = "AEGIS_DP_CONFIG",
        default_value = "/etc/aegis/host.toml"
    )]
    config: PathBuf,
    /// Validate the configuration, print a summary and exit.
    #[arg(long)]
    check: bool,
    /// Log format on stderr (level from RUST_LOG, default info).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Follow this host's slice of the control plane: node addresses, comma-separated
    /// (host:port, https://host:port). Needs --host.
    #[arg(long, value_name = "ADDR[,ADDR...]", requires = "host")]
    controlplane: Option<String>,
    /// The name of this host in the control plane (its Host object).
    #[arg(long, value_name = "NAME", requires = "controlplane")]
    host: Option<String>,
    /// Bearer token for the control plane.
    #[arg(long, env = "AEGIS_TOKEN", hide_env_values = true)]
    controlplane_token: Option<String>,
    /// PEM CA certificate to verify the control plane's TLS certificate with (implies TLS).
    #[arg(long, value_name = "FILE")]
    controlplane_ca: Option<PathBuf>,
    /// Where the last applied control-plane slice is cached (default: controlplane-slice.json
    /// next to dataplane.runtime_log; without either, it is not cached).
    #[arg(long, value_name = "FILE")]
    controlplane_cache: Option<PathBuf>,
    /// Seconds between heartbeats to the control plane.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    heartbeat_interval: f64,
}

/// The feed options from the command line, or `None` without `--controlplane`.
fn feed_options(args: &Args, cfg: &HostConfig) -> Result<Option<FeedOptions>, String> {
    let (Some(servers), Some(host)) = (&args.controlplane, &args.host) else {
        return Ok(None);
    };
    if host.is_empty() {
        return Err("--host must not be empty".into());
    }
    if !(args.heartbeat_interval.is_finite() && (0.05..=3600.0).contains(&args.heartbeat_interval))
    {
        return Err("--heartbeat-interval must be between 0.05 and 3600 seconds".into());
    }
    let connect = ConnectConfig::new(
        servers,
        args.controlplane_token.clone(),
        args.controlplane_ca.as_deref(),
    )
    .map_err(|e| e.to_string())?;
    let cache = args.controlplane_cache.clone().or_else(|| {
        cfg.dataplane
            .runtime_log
            .as_ref()
            .map(|log| log.with_file_name("controlplane-slice.json"))
    });
    Ok(Some(FeedOptions {
        connect,
        host: host.clone(),
        cache,
        heartbeat: Duration::from_secs_f64(args.heartbeat_interval),
        diag_address: cfg.dataplane.diag_listen,
    }))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }

    let cfg = match HostConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("aegis-dataplane: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!(
            "{}: {} ports, {} static routes, {} static neighbours; OK",
            args.config.display(),
            cfg.ports.len(),
            cfg.forwarding.routes.len(),
            cfg.forwarding.neighbours.len()
        );
        return ExitCode::SUCCESS;
    }
    let feed = match feed_options(&args, &cfg) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("aegis-dataplane: {e}");
            return ExitCode::from(2);
        }
    };
    match &feed {
        Some(f) if f.cache.is_none() => tracing::warn!(
            "no control-plane cache (no --controlplane-cache or dataplane.runtime_log): \
             a restart while the control plane is away starts without its tables"
        ),
        _ => {}
    }
    match aegis_dataplane::daemon::run_with(cfg, feed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("aegis-dataplane: {e}");
            ExitCode::FAILURE
        }
    }
}
