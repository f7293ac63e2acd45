//! `aegisctl dp ...`: commands against one dataplane's admin socket
//! (`aegis.dataplane.v1.DataplaneAdmin`), printed as aligned tables or JSON.
//!
//! `view.rs` holds the JSON schema, `render.rs` the tables; `capture/` is `dp capture`.

pub mod capture;
pub mod render;
pub mod view;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aegis_api::dataplane::v1 as pb;
use clap::{Args, Subcommand, ValueEnum};
use pb::add_route_request::Target;
use pb::dataplane_admin_client::DataplaneAdminClient;
use serde::Serialize;
use tonic::transport::Channel;

use crate::error::{root_cause, CliError};

/// Default admin socket of aegis-dataplane.
pub const DEFAULT_SOCKET: &str = "/run/aegis/dataplane.sock";

/// Options and command of `aegisctl dp`.
#[derive(Debug, Clone, Args)]
pub struct DpArgs {
    /// Admin socket of aegis-dataplane.
    #[arg(long, env = "AEGIS_DP_SOCKET", default_value = DEFAULT_SOCKET, global = true)]
    pub socket: PathBuf,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
    /// Seconds to wait for the dataplane to answer.
    #[arg(long, default_value_t = 30, global = true)]
    pub timeout: u64,
    #[command(subcommand)]
    pub command: DpCommand,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned tables for people.
    Table,
    /// One JSON document (schema: docs/cli.md).
    Json,
}

/// `aegisctl dp` commands.
#[derive(Debug, Clone, Subcommand)]
pub enum DpCommand {
    /// Show dataplane state.
    #[command(subcommand)]
    Show(Show),
    /// Add or delete static routes.
    #[command(subcommand)]
    Route(RouteCommand),
    /// Add or delete interface addresses.
    #[command(subcommand)]
    Address(AddressCommand),
    /// Set ports administratively up or down.
    #[command(subcommand)]
    Port(PortCommand),
    /// Reset counters.
    #[command(subcommand)]
    Clear(ClearCommand),
    /// Capture packets on ports, the drop path or graph nodes (tcpdump filters, pcapng
    /// output).
    Capture(capture::CaptureArgs),
}

/// `aegisctl dp show ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum Show {
    /// Ports: state, addresses and counters.
    #[command(visible_alias = "interface")]
    Interfaces,
    /// Per-worker, per-node calls, vectors and clocks.
    Runtime,
    /// Drop counters by reason.
    Errors {
        /// Also list reasons that counted nothing.
        #[arg(long)]
        all: bool,
        /// One table per worker instead of totals.
        #[arg(long)]
        per_worker: bool,
    },
    /// The routing table.
    Routes,
    /// The neighbour (ARP) table.
    #[command(visible_alias = "neighbors")]
    Neighbours,
    /// Revision, uptime, version, poll mode and workers.
    Status,
    /// Connections the workers track for stateful security groups.
    #[command(visible_alias = "conntrack")]
    Connections {
        /// Only this VM port: a dataplane port name or the control-plane port bound to it.
        #[arg(long)]
        port: Option<String>,
        /// Only connections with this address as source or destination.
        #[arg(long)]
        ip: Option<String>,
        /// Only this protocol: tcp, udp, icmp or a number.
        #[arg(long)]
        proto: Option<String>,
        /// Only this state (tcp_established, tcp_syn_sent, udp_replied, icmp, ...).
        #[arg(long)]
        state: Option<String>,
        /// Show at most this many connections (counts still cover all).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// NAT sessions of a gateway's workers: inside, outside and remote endpoints, kind,
    /// TCP state, time left.
    #[command(visible_alias = "nat")]
    NatSessions {
        /// Only this VPC: its name or VNI (0: the routed gateway's inside).
        #[arg(long)]
        vpc: Option<String>,
        /// Only sessions with this address as inside, outside or remote address.
        #[arg(long)]
        ip: Option<String>,
        /// Only this protocol: tcp, udp, icmp or a number.
        #[arg(long)]
        proto: Option<String>,
        /// Show at most this many sessions (counts still cover all).
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// VPCs as this host sees them: subnets, routes and where each port lives.
    #[command(visible_alias = "vpcs")]
    Vpc {
        /// Only this VPC.
        #[arg(long)]
        vpc: Option<String>,
    },
    /// Packets denied by security groups, per rule.
    #[command(visible_alias = "sg-counters")]
    SecurityDenials {
        /// Also list rules that denied nothing.
        #[arg(long)]
        all: bool,
    },
    /// VRRP instances (gateways): state, priorities, master, transitions, adverts.
    Vrrp,
    /// Session sync between gateways: role, sessions, per-peer lag and resends, the
    /// backup's replica, the last takeover's commit.
    Sync,
}

/// `aegisctl dp route ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum RouteCommand {
    /// Add a static route: PREFIX via GW | dev PORT | blackhole | unreachable.
    #[command(disable_help_subcommand = true)]
    Add {
        /// Destination, e.g. 10.9.0.0/16.
        prefix: String,
        #[command(subcommand)]
        target: RouteTargetArg,
    },
    /// Delete a static route.
    #[command(visible_alias = "delete")]
    Del {
        /// Destination of the route.
        prefix: String,
    },
}

/// Where `route add` sends packets.
#[derive(Debug, Clone, Subcommand)]
pub enum RouteTargetArg {
    /// Via a gateway on a connected subnet.
    Via {
        /// Gateway address.
        gateway: String,
    },
    /// Directly attached on a port.
    Dev {
        /// Port name.
        port: String,
    },
    /// Drop silently.
    Blackhole,
    /// Drop and answer ICMP destination-unreachable.
    Unreachable,
}

/// `aegisctl dp address ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum AddressCommand {
    /// Add an address to a port.
    Add {
        /// Port name.
        port: String,
        /// Address with prefix length, e.g. 10.0.1.1/24.
        cidr: String,
    },
    /// Remove an address from a port.
    #[command(visible_alias = "delete")]
    Del {
        /// Port name.
        port: String,
        /// Address with prefix length.
        cidr: String,
    },
}

/// `aegisctl dp port ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum PortCommand {
    /// Set a port administratively up.
    Up {
        /// Port name.
        port: String,
    },
    /// Set a port administratively down.
    Down {
        /// Port name.
        port: String,
    },
}

/// `aegisctl dp clear ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ClearCommand {
    /// Zero port, node, worker, drop and security-group denial counters.
    Counters,
}

/// Runs one `aegisctl dp` command, writing its output to `out`.
pub async fn run(args: &DpArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let socket = args.socket.as_path();
    let mut client = connect(socket, Duration::from_secs(args.timeout.max(1))).await?;
    let call_err = |s: tonic::Status| CliError::from_status(s, socket);
    let json = args.output == Output::Json;
    match &args.command {
        DpCommand::Show(show) => match show {
            Show::Status => {
                let v = view::StatusView::from(
                    client
                        .get_status(pb::GetStatusRequest {})
                        .await
                        .map_err(call_err)?
                        .into_inner(),
                );
                emit(out, json, &v, |o| render::status(&v, o))
            }
            Show::Interfaces => {
                let v = view::InterfacesView::from(
                    client
                        .show_interfaces(pb::ShowInterfacesRequest {})
                        .await
                        .map_err(call_err)?
                        .into_inner(),
                );
                emit(out, json, &v, |o| render::interfaces(&v, o))
            }
            Show::Runtime => {
                let v = view::RuntimeView::from(
                    client
                        .show_runtime(pb::ShowRuntimeRequest {})
                        .await
                        .map_err(call_err)?
                        .into_inner(),
                );
                emit(out, json, &v, |o| render::runtime(&v, o))
            }
            Show::Errors { all, per_worker } => {
                let v = view::ErrorsView::from(
                    client
                        .show_errors(pb::ShowErrorsRequest {})
                        .await
                        .map_err(call_err)?
                        .into_inner(),
                );
                emit(out, json, &v, |o| render::errors(&v, *all, *per_worker, o))
            }
            Show::Routes => {
                let v = view::RoutesView::from(
                    client
                        .show_routes(pb::ShowRoutesRequest {})
                        .await
                        .map_err(call_err)?
                        .into_inner(),
                );
                emit(out, json, &v, |o| render::routes(&v, o))
            }
            Show::Neighbours => {
                let v = view::NeighboursView::from(
                    client
                        .show_neighbours(pb::ShowNeighboursRequest {})
                        .await
                        .map_err(call_err)?
                        .into_inner(),
                );
                emit(out, json, &v, |o| render::neighbours(&v, o))
            }
            Show::Connections {
                port,
                ip,
                proto,
                state,
                limit,
            } => {
                let req = pb::ShowConnectionsRequest {
                    port: port.clone().unwrap_or_default(),
                    ip: ip.clone().unwrap_or_default(),
                    protocol: proto.clone().unwrap_or_default(),
                    state: state.clone().unwrap_or_default(),
                    limit: *limit,
                };
                let v = view::ConnectionsView::from(
                    client
                        .show_connections(req)
                        .await
                        .map_err(call_err)?
                        .into_inner(),
                );
                emit(out, json, &v, |o| render::connections(&v, o))
            }
            Show::NatSessions {
                vpc,
                ip,
                proto,
                limit,
            } => {
                let req = pb::ShowNatSessionsRequest {
                    vpc: vpc.clone().unwrap_or_default(),
                    ip: ip.clone().unwrap_or_default(),
                    protocol: proto.clone().unwrap_or_default(),
                    limit: *limit,
                };
                let v = view::NatSessionsView::from(
                    client
                        .show_nat_sessions(req)
                        .await
                        .map_err(call_err)?
                        .into_inner(),
                );
                emit(out, json, &v, |o| render::nat_sessions(&v, o))
            }
            Show::Vpc { vpc } => {
                let req = pb::ShowVpcsRequest {
                    vpc: vpc.clone().unwrap_or_default(),
                };
                let v = view::VpcsView::from(
                    client.show_vpcs(req).await.map_err(call_err)?.into_inner(),
                );
                emit(out, json, &v, |o| render::vpcs(&v, o))
            }
            Show::SecurityDenials { all } => {
                let v = view::DenialsView::from(
                    client
                        .show_security_denials(pb::ShowSecurityDenialsRequest {})
                        .await
                        .map_err(call_err)?
                        .into_inner(),
                );
                emit(out, json, &v, |o| render::denials(&v, *all, o))
            }
            Show::Vrrp => {
                let v = view::VrrpView::from(
                    client
                        .show_vrrp(pb::ShowVrrpRequest {})
                        .await
                        .map_err(call_err)?
                        .into_inner(),
                );
                emit(out, json, &v, |o| render::vrrp(&v, o))
            }
            Show::Sync => {
                let v = view::SyncView::from(
                    client
                        .show_sync(pb::ShowSyncRequest {})
                        .await
                        .map_err(call_err)?
                        .into_inner(),
                );
                emit(out, json, &v, |o| render::sync(&v, o))
            }
        },
        DpCommand::Route(RouteCommand::Add { prefix, target }) => {
            let (target, what) = match target {
                RouteTargetArg::Via { gateway } => {
                    (Target::Via(gateway.clone()), format!("via {gateway}"))
                }
                RouteTargetArg::Dev { port } => (Target::Port(port.clone()), format!("dev {port}")),
                RouteTargetArg::Blackhole => (
                    Target::Discard(pb::RouteKind::Blackhole as i32),
                    "blackhole".into(),
                ),
                RouteTargetArg::Unreachable => (
                    Target::Discard(pb::RouteKind::Unreachable as i32),
                    "unreachable".into(),
                ),
            };
            let req = pb::AddRouteRequest {
                prefix: prefix.clone(),
                target: Some(target),
            };
            let r = client.add_route(req).await.map_err(call_err)?.into_inner();
            mutation(out, json, r, &format!("Added route {prefix} {what}"))
        }
        DpCommand::Route(RouteCommand::Del { prefix }) => {
            let req = pb::DeleteRouteRequest {
                prefix: prefix.clone(),
            };
            let r = client
                .delete_route(req)
                .await
                .map_err(call_err)?
                .into_inner();
            mutation(out, json, r, &format!("Deleted route {prefix}"))
        }
        DpCommand::Address(AddressCommand::Add { port, cidr }) => {
            let req = pb::AddressRequest {
                port: port.clone(),
                address: cidr.clone(),
            };
            let r = client
                .add_address(req)
                .await
                .map_err(call_err)?
                .into_inner();
            mutation(out, json, r, &format!("Added {cidr} to {port}"))
        }
        DpCommand::Address(AddressCommand::Del { port, cidr }) => {
            let req = pb::AddressRequest {
                port: port.clone(),
                address: cidr.clone(),
            };
            let r = client
                .delete_address(req)
                .await
                .map_err(call_err)?
                .into_inner();
            mutation(out, json, r, &format!("Removed {cidr} from {port}"))
        }
        DpCommand::Port(cmd) => {
            let (port, up) = match cmd {
                PortCommand::Up { port } => (port, true),
                PortCommand::Down { port } => (port, false),
            };
            let req = pb::SetPortStateRequest {
                port: port.clone(),
                up,
            };
            let r = client
                .set_port_state(req)
                .await
                .map_err(call_err)?
                .into_inner();
            let state = if up { "up" } else { "down" };
            mutation(
                out,
                json,
                r,
                &format!("Port {port} is administratively {state}"),
            )
        }
        DpCommand::Capture(c) => capture::run(&mut client, socket, c, json, out).await,
        DpCommand::Clear(ClearCommand::Counters) => {
            let r = client
                .clear_counters(pb::ClearCountersRequest {})
                .await
                .map_err(call_err)?
                .into_inner();
            mutation(out, json, r, "Counters cleared")
        }
    }
}

/// Opens the admin socket; failures become [`CliError::Unreachable`].
async fn connect(
    socket: &Path,
    timeout: Duration,
) -> Result<DataplaneAdminClient<Channel>, CliError> {
    let channel = aegis_api::unix::connect(socket, timeout)
        .await
        .map_err(|e| CliError::Unreachable {
            socket: socket.to_path_buf(),
            detail: root_cause(&e),
        })?;
    Ok(DataplaneAdminClient::new(channel))
}

/// Writes `value` as JSON, or its table.
fn emit<T: Serialize>(
    out: &mut dyn Write,
    json: bool,
    value: &T,
    table: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CliError> {
    if json {
        serde_json::to_writer_pretty(&mut *out, value)?;
        writeln!(out)?;
    } else {
        table(out)?;
    }
    Ok(())
}

/// Reports a mutation: `{"revision": N}` or "<done> (revision N)".
fn mutation(
    out: &mut dyn Write,
    json: bool,
    reply: pb::MutationReply,
    done: &str,
) -> Result<(), CliError> {
    let v = view::MutationView::from(reply);
    emit(out, json, &v, |o| {
        writeln!(o, "{done} (revision {})", v.revision)
    })
}
