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
    fn diagnostics_commands_parse() {
        let parse = |args: &[&str]| Cli::try_parse_from(["aegisctl"].iter().chain(args));
        let cli = parse(&[
            "capture", "--host", "c2", "--port", "vm-b2", "--filter", "icmp", "-c", "6", "-w",
            "f.pcapng",
        ])
        .unwrap();
        let Command::Cp(cp::CpCommand::Capture(a)) = cli.command else {
            panic!("not a capture command")
        };
        assert_eq!(a.host, "c2");
        assert_eq!(a.capture.ports, ["vm-b2"]);
        assert_eq!(
            (a.capture.count, a.capture.filter.as_str()),
            (Some(6), "icmp")
        );
        assert!(a.capture.nodes.is_empty());
        let cli = parse(&[
            "capture",
            "--host",
            "c1",
            "--node",
            "security-group",
            "--node",
            "geneve-input",
            "--port",
            "ul0",
            "--drops",
        ])
        .unwrap();
        let Command::Cp(cp::CpCommand::Capture(a)) = cli.command else {
            panic!("not a capture command")
        };
        assert_eq!(a.capture.nodes, ["security-group", "geneve-input"]);
        assert_eq!(a.capture.ports, ["ul0"]);
        assert!(a.capture.drops);
        let cli = Cli::try_parse_from(["aegisctl", "dp", "capture", "--node", "ip4-forward"]);
        let Command::Dp(dp) = cli.unwrap().command else {
            panic!("not a dp command")
        };
        let dp::DpCommand::Capture(c) = dp.command else {
            panic!("not dp capture")
        };
        assert_eq!(c.nodes, ["ip4-forward"]);
        for ok in [
            &["drops"][..],
            &["drops", "--host", "c1", "-o", "json"],
            &["gateway", "status"],
            &["gateway", "status", "gw-a", "-o", "json"],
            &[
                "--server",
                "10.99.0.1:7400",
                "capture",
                "--host",
                "c1",
                "--drops",
            ],
        ] {
            assert!(parse(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            &["capture", "--port", "vm-b2"][..],
            &["capture", "--host", "c1", "--node"],
            &["drops", "c1"],
            &["drops", "-o", "yaml"],
            &["gateway"],
            &["gateway", "status", "gw-a", "gw-b"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
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
