//! `aegis-dataplane`: the forwarding daemon. `--config host.toml` runs it; `--check`
//! validates the configuration and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use aegis_dataplane::config::HostConfig;
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
    match aegis_dataplane::daemon::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("aegis-dataplane: {e}");
            ExitCode::FAILURE
        }
    }
}
