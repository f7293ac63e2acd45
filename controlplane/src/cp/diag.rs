//! `aegisctl drops` and `aegisctl capture --host`: the hosts' dataplanes through the control
//! plane's `Diagnostics` service, so the operator need not be on the host. `capture` is
//! `dp capture` (same options, filter compilation, pcapng writer, progress and summary) with
//! the stream coming from the control plane.

use std::io::Write;

use aegis_api::controlplane::v1::{DropsRequest, DropsResponse, HostCaptureRequest};
use clap::Args;

use super::{render, Ctx, Output};
use crate::dp::capture::{self, CaptureArgs};
use crate::error::CliError;
use crate::table::{Align, Table};

/// `drops`.
#[derive(Debug, Clone, Args)]
pub struct DropsArgs {
    /// Only this host (default: every host).
    #[arg(long)]
    pub host: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// `capture`.
#[derive(Debug, Clone, Args)]
pub struct HostCaptureArgs {
    /// The host whose dataplane captures.
    #[arg(long)]
    pub host: String,
    /// What to capture (as `aegisctl dp capture`).
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// Output of the one-line-per-packet mode (without -w).
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// Asks the control plane for the drops of every host (or one) and prints them ranked.
pub(super) async fn drops(ctx: &Ctx, a: &DropsArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let req = DropsRequest {
        host: a.host.clone().unwrap_or_default(),
    };
    let r = ctx
        .call(|mut c| {
            let req = req.clone();
            async move { c.diagnostics.drops(req).await }
        })
        .await?;
    match a.output {
        Output::Json => render::json(out, &r),
        Output::Table => drops_table(out, &r),
    }
}

/// The ranked table, then the hosts that could not be asked.
fn drops_table(out: &mut dyn Write, r: &DropsResponse) -> Result<(), CliError> {
    let mut t = Table::new(&[
        ("HOST", Align::Left),
        ("REASON", Align::Left),
        ("COUNT", Align::Right),
        ("RULES", Align::Left),
    ]);
    for d in &r.drops {
        let rules: Vec<String> = d
            .rules
            .iter()
            .map(|r| format!("{}={}", r.rule, r.count))
            .collect();
        t.row(vec![
            d.host.clone(),
            d.reason.clone(),
            d.count.to_string(),
            rules.join(" "),
        ]);
    }
    if t.is_empty() {
        if !r.hosts.is_empty() {
            writeln!(out, "no drops on {}", r.hosts.join(", "))?;
        }
    } else {
        t.write(out, 0)?;
    }
    for u in &r.unreachable {
        writeln!(out, "host {} UNREACHABLE: {}", u.host, u.error)?;
    }
    if r.hosts.is_empty() && r.unreachable.is_empty() {
        writeln!(out, "no hosts")?;
    }
    Ok(())
}

/// Captures on a host through the control plane.
pub(super) async fn capture(
    ctx: &Ctx,
    a: &HostCaptureArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let req = HostCaptureRequest {
        host: a.host.clone(),
        capture: Some(a.capture.request()?),
    };
    let stream = ctx
        .call(|mut c| {
            let req = req.clone();
            async move { c.diagnostics.capture(req).await }
        })
        .await?;
    let server = ctx.server.clone();
    let call_err = move |s: tonic::Status| {
        if s.code() == tonic::Code::Unavailable {
            CliError::ControlPlane {
                server: server.clone(),
                detail: s.message().to_owned(),
            }
        } else {
            CliError::Rejected(s)
        }
    };
    capture::record(stream, &a.capture, a.output == Output::Json, out, &call_err).await
}

#[cfg(test)]
mod tests {
    use aegis_api::controlplane::v1::{HostDrop, RuleCount, UnreachableHost};

    use super::*;

    #[test]
    fn the_table_ranks_names_rules_and_unreachable_hosts() {
        let r = DropsResponse {
            drops: vec![
                HostDrop {
                    host: "c2".into(),
                    reason: "security_group_deny".into(),
                    description: String::new(),
                    count: 12,
                    rules: vec![RuleCount {
                        rule: "sg-web/no-http".into(),
                        count: 12,
                    }],
                },
                HostDrop {
                    host: "c1".into(),
                    reason: "port_spoofed_ip".into(),
                    description: String::new(),
                    count: 3,
                    rules: Vec::new(),
                },
            ],
            unreachable: vec![UnreachableHost {
                host: "c3".into(),
                error: "down: last heartbeat 9.0s ago".into(),
            }],
            hosts: vec!["c1".into(), "c2".into()],
        };
        let mut out = Vec::new();
        drops_table(&mut out, &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "HOST  REASON               COUNT  RULES");
        assert_eq!(
            lines[1],
            "c2    security_group_deny     12  sg-web/no-http=12"
        );
        assert_eq!(lines[2], "c1    port_spoofed_ip          3");
        assert_eq!(
            lines[3],
            "host c3 UNREACHABLE: down: last heartbeat 9.0s ago"
        );

        let quiet = DropsResponse {
            hosts: vec!["c1".into()],
            ..DropsResponse::default()
        };
        let mut out = Vec::new();
        drops_table(&mut out, &quiet).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "no drops on c1\n");
    }
}
