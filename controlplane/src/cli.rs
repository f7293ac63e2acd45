//! The `aegisctl` command line: one subcommand per thing it talks to. `dp` talks to a
//! dataplane's admin socket; control-plane commands join as siblings.

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::cp;
use crate::dp;
use crate::error::CliError;

/// Administer Aegis.
#[derive(Debug, Clone, Parser)]
#[command(name = "aegisctl", version, about, propagate_version = true)]
pub struct Cli {
    /// How to reach the control plane (control-plane commands only).
    #[command(flatten)]
    pub conn: cp::Conn,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Inspect and change the local dataplane (aegis-dataplane) over its admin socket.
    Dp(dp::DpArgs),
    /// Everything else: the control plane's desired state, hosts and cluster.
    #[command(flatten)]
    Cp(cp::CpCommand),
}

/// Runs a parsed command line, writing its output to `out`.
pub async fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), CliError> {
    match &cli.command {
        Command::Dp(args) => dp::run(args, out).await,
        Command::Cp(command) => cp::run(&cli.conn, command, out).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn route_add_forms() {
        let parse = |args: &[&str]| Cli::try_parse_from(["aegisctl", "dp"].iter().chain(args));
        let cli = parse(&["route", "add", "10.9.0.0/16", "via", "10.0.1.2"]).unwrap();
        let Command::Dp(dp) = cli.command else {
            panic!("not a dp command")
        };
        assert!(matches!(
            dp.command,
            dp::DpCommand::Route(dp::RouteCommand::Add {
                target: dp::RouteTargetArg::Via { .. },
                ..
            })
        ));
        for ok in [
            &["route", "add", "0.0.0.0/0", "dev", "eth0"][..],
            &["route", "add", "192.0.2.0/24", "blackhole"],
            &["route", "add", "192.0.2.0/24", "unreachable"],
            &["route", "del", "192.0.2.0/24"],
            &["--output", "json", "show", "errors", "--all"],
            &["show", "runtime", "-o", "json", "--socket", "/tmp/x.sock"],
        ] {
            assert!(parse(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            &["route", "add", "10.9.0.0/16"][..],
            &["route", "add", "10.9.0.0/16", "via"],
            &["route", "add", "10.9.0.0/16", "sideways", "x"],
            &["show", "everything"],
            &["port", "sideways", "eth0"],
            &["show", "status", "--output", "yaml"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
