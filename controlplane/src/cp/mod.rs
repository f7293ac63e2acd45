//! `aegisctl` commands for the control plane: one subcommand per object kind (create, list,
//! get, delete), `apply -f` for files of objects, `watch`, `host list` (the monitoring table)
//! and `cluster status|leave`, and the diagnostics of the hosts' dataplanes (`drops`,
//! `capture --host`, in `diag.rs`; `trace`; `trace watch`, in `watch.rs`; `gateway status`,
//! in `gateway.rs`). They talk
//! gRPC to any control-plane node (`--server`, the cluster IP in production); writes and
//! reads that find no leader are retried for `--retry-for`.

mod args;
mod diag;
mod gateway;
mod render;
mod trace;
mod watch;

use std::io::Write;
use std::time::{Duration, Instant};

use aegis_api::controlplane::v1::{
    DeleteRequest, GetRequest, Kind, LeaveRequest, ListHostsRequest, ListRequest, Object,
    StatusRequest, WatchRequest, WriteRequest,
};
use clap::{Args, Subcommand, ValueEnum};

pub use args::{CreateArgs, ObjectCommand};
pub use diag::{DropsArgs, HostCaptureArgs};
pub use gateway::{GatewayCommand, GatewayStatusArgs};
pub use trace::{TraceArgs, TraceOutput, TraceSub};
pub use watch::TraceWatchArgs;

use crate::client::{clients, ClientConfig, Clients};
use crate::error::CliError;
use crate::model::kind::kind_name;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    /// Aligned text tables.
    #[default]
    Table,
    /// JSON (one document; `watch`: one per line).
    Json,
}

/// How to reach the control plane.
#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// Control-plane node or cluster IP, host:port (https://host:port for TLS).
    #[arg(
        long,
        global = true,
        env = "AEGIS_SERVER",
        default_value = "127.0.0.1:7400"
    )]
    pub server: String,
    /// Bearer token.
    #[arg(long, global = true, env = "AEGIS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to verify the server's TLS certificate with.
    #[arg(long, global = true, env = "AEGIS_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// Keep retrying for this many seconds while there is no leader or no quorum.
    #[arg(long, global = true, default_value_t = 10.0)]
    pub retry_for: f64,
}

/// Control-plane commands.
#[derive(Debug, Clone, Subcommand)]
pub enum CpCommand {
    /// Hosts: create, list (the monitoring table), get, delete.
    #[command(subcommand)]
    Host(ObjectCommand),
    /// VPCs.
    #[command(subcommand)]
    Vpc(ObjectCommand),
    /// Subnets of VPCs.
    #[command(subcommand)]
    Subnet(ObjectCommand),
    /// VM ports.
    #[command(subcommand)]
    Port(ObjectCommand),
    /// Static routes (per VPC, or a host's underlay routes).
    #[command(subcommand)]
    Route(ObjectCommand),
    /// Security groups.
    #[command(subcommand)]
    SecurityGroup(ObjectCommand),
    /// External networks of the gateways.
    #[command(subcommand)]
    ExternalNetwork(ObjectCommand),
    /// Gateway groups (VRRP).
    #[command(subcommand)]
    GatewayGroup(ObjectCommand),
    /// Floating IPs.
    #[command(subcommand)]
    FloatingIp(ObjectCommand),
    /// SNAT rules.
    #[command(subcommand)]
    SnatRule(ObjectCommand),
    /// Create or update every object in a JSON file (the format `get -o json` prints).
    Apply(ApplyArgs),
    /// Stream changes as they are committed.
    Watch(WatchArgs),
    /// The control cluster.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Drop-reason counters of every host (or one), ranked, with the security-group rules
    /// behind the denials.
    Drops(DropsArgs),
    /// Capture packets on a host's dataplane through the control plane (as `dp capture`).
    Capture(HostCaptureArgs),
    /// Send a probe as a VM would and show every hop it takes on every host, where it was
    /// delivered or dropped and why, and the path the desired state expects; or `trace
    /// watch` real traffic on one host.
    Trace(TraceArgs),
    /// The gateway groups as their members' dataplanes see them (`gateway status`).
    #[command(subcommand)]
    Gateway(GatewayCommand),
}

/// `apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// JSON file: an object or a list of objects ("-" = stdin).
    #[arg(short = 'f', long)]
    pub file: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// `watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Start after this revision (0: the full state first).
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Only what this host needs.
    #[arg(long)]
    pub host: Option<String>,
    /// Only these kinds (host, vpc, subnet, ...).
    #[arg(long, value_parser = args::parse_kind)]
    pub kind: Vec<Kind>,
    /// Stop after this many messages.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    pub output: Output,
}

/// `cluster ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ClusterCommand {
    /// This node's view: role, leader, term, log, members, cluster IP.
    Status {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Remove a node from the cluster.
    Leave {
        /// Its id.
        id: u64,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
}

/// Runs a control-plane command.
pub async fn run(conn: &Conn, command: &CpCommand, out: &mut dyn Write) -> Result<(), CliError> {
    let config = ClientConfig {
        token: conn.token.clone(),
        ..ClientConfig::default()
    }
    .with_ca_file(conn.ca.as_ref())
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let c = clients(&conn.server, &config).map_err(|e| CliError::Usage(e.to_string()))?;
    let ctx = Ctx {
        c,
        server: conn.server.clone(),
        retry_for: Duration::from_secs_f64(conn.retry_for.max(0.0)),
    };
    let kind_cmd = |k: Kind, cmd: &ObjectCommand| (k, cmd.clone());
    let (kind, cmd) = match command {
        CpCommand::Host(c) => kind_cmd(Kind::Host, c),
        CpCommand::Vpc(c) => kind_cmd(Kind::Vpc, c),
        CpCommand::Subnet(c) => kind_cmd(Kind::Subnet, c),
        CpCommand::Port(c) => kind_cmd(Kind::Port, c),
        CpCommand::Route(c) => kind_cmd(Kind::Route, c),
        CpCommand::SecurityGroup(c) => kind_cmd(Kind::SecurityGroup, c),
        CpCommand::ExternalNetwork(c) => kind_cmd(Kind::ExternalNetwork, c),
        CpCommand::GatewayGroup(c) => kind_cmd(Kind::GatewayGroup, c),
        CpCommand::FloatingIp(c) => kind_cmd(Kind::FloatingIp, c),
        CpCommand::SnatRule(c) => kind_cmd(Kind::SnatRule, c),
        CpCommand::Apply(a) => return apply(&ctx, a, out).await,
        CpCommand::Watch(w) => return watch(&ctx, w, out).await,
        CpCommand::Cluster(c) => return cluster(&ctx, c, out).await,
        CpCommand::Drops(a) => return diag::drops(&ctx, a, out).await,
        CpCommand::Capture(a) => return diag::capture(&ctx, a, out).await,
        CpCommand::Trace(a) => return trace::trace(&ctx, a, out).await,
        CpCommand::Gateway(g) => return gateway::run(&ctx, g, out).await,
    };
    object_command(&ctx, kind, &cmd, out).await
}

/// How long one call may take (a channel reconnecting after a partition can otherwise hang).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// A connection and its retry policy.
struct Ctx {
    c: Clients,
    server: String,
    retry_for: Duration,
}

impl Ctx {
    /// Calls `f` until it succeeds, fails for another reason than unavailability, or the
    /// retry time is over. A write that timed out uncommitted is not retried (it may apply).
    async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, CliError>
    where
        F: FnMut(Clients) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let start = Instant::now();
        let mut delay = Duration::from_millis(50);
        loop {
            let attempt = tokio::time::timeout(CALL_TIMEOUT, f(self.c.clone()))
                .await
                .unwrap_or_else(|_| {
                    Err(tonic::Status::deadline_exceeded(format!(
                        "no answer within {CALL_TIMEOUT:?} (the request may or may not have been applied)"
                    )))
                });
            match attempt {
                Ok(r) => return Ok(r.into_inner()),
                Err(s)
                    if s.code() == tonic::Code::Unavailable
                        && !s.message().contains("may still be applied")
                        && start.elapsed() + delay < self.retry_for =>
                {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                Err(s) if s.code() == tonic::Code::Unavailable => {
                    return Err(CliError::ControlPlane {
                        server: self.server.clone(),
                        detail: s.message().to_owned(),
                    })
                }
                Err(s) => return Err(CliError::Rejected(s)),
            }
        }
    }
}

async fn object_command(
    ctx: &Ctx,
    kind: Kind,
    cmd: &ObjectCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        ObjectCommand::Create(a) => {
            let object = args::object_from(kind, a)?;
            let r = ctx
                .call(|mut c| {
                    let object = object.clone();
                    async move {
                        c.state
                            .create(WriteRequest {
                                object: Some(object),
                                expected_revision: 0,
                            })
                            .await
                    }
                })
                .await?;
            render::written(out, a.output, "created", &r)
        }
        ObjectCommand::Update(a) => {
            let current = ctx
                .call(|mut c| {
                    let name = a.name.clone();
                    async move {
                        c.state
                            .get(GetRequest {
                                kind: kind as i32,
                                name,
                            })
                            .await
                    }
                })
                .await?
                .object
                .ok_or_else(|| {
                    CliError::Usage(format!("{} {}: no object", kind_name(kind), a.name))
                })?;
            // Written only if nobody changed it since it was read.
            let revision = current.modified_revision;
            let object = args::merge_update(kind, current, a)?;
            let r = ctx
                .call(|mut c| {
                    let object = object.clone();
                    async move {
                        c.state
                            .update(WriteRequest {
                                object: Some(object),
                                expected_revision: revision,
                            })
                            .await
                    }
                })
                .await?;
            render::written(out, a.output, "updated", &r)
        }
        ObjectCommand::List { output } => {
            if kind == Kind::Host && *output == Output::Table {
                let hosts = ctx
                    .call(|mut c| async move { c.agents.list_hosts(ListHostsRequest {}).await })
                    .await;
                let list = ctx
                    .call(|mut c| async move {
                        c.state
                            .list(ListRequest {
                                kind: Kind::Host as i32,
                                host: String::new(),
                            })
                            .await
                    })
                    .await?;
                return render::host_table(out, &list.objects, hosts.ok().as_ref());
            }
            if kind == Kind::Host {
                let hosts = ctx
                    .call(|mut c| async move { c.agents.list_hosts(ListHostsRequest {}).await })
                    .await?;
                return render::json(out, &hosts);
            }
            let list = ctx
                .call(|mut c| async move {
                    c.state
                        .list(ListRequest {
                            kind: kind as i32,
                            host: String::new(),
                        })
                        .await
                })
                .await?;
            render::list(out, *output, kind, &list)
        }
        ObjectCommand::Get { name, output } => {
            let r = ctx
                .call(|mut c| {
                    let name = name.clone();
                    async move {
                        c.state
                            .get(GetRequest {
                                kind: kind as i32,
                                name,
                            })
                            .await
                    }
                })
                .await?;
            match output {
                Output::Json => render::json(out, &r.object),
                Output::Table => render::object_detail(out, r.object.as_ref()),
            }
        }
        ObjectCommand::Delete {
            name,
            expected_revision,
            output,
        } => {
            let r = ctx
                .call(|mut c| {
                    let name = name.clone();
                    async move {
                        c.state
                            .delete(DeleteRequest {
                                kind: kind as i32,
                                name,
                                expected_revision: *expected_revision,
                            })
                            .await
                    }
                })
                .await?;
            render::written(out, *output, "deleted", &r)
        }
    }
}

async fn apply(ctx: &Ctx, a: &ApplyArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let text = if a.file == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(CliError::Output)?
    } else {
        std::fs::read_to_string(&a.file).map_err(|e| CliError::Usage(format!("{}: {e}", a.file)))?
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{}: not JSON: {e}", a.file)))?;
    let items = match value {
        serde_json::Value::Array(v) => v,
        v => vec![v],
    };
    let mut objects = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let o: Object = serde_json::from_value(item)
            .map_err(|e| CliError::Usage(format!("{}: object {i}: {e}", a.file)))?;
        objects.push(o);
    }
    let mut results = Vec::new();
    for object in objects {
        let kind = crate::model::kind_of(&object);
        let exists = ctx
            .call(|mut c| {
                let name = object.name.clone();
                async move {
                    c.state
                        .get(GetRequest {
                            kind: kind as i32,
                            name,
                        })
                        .await
                }
            })
            .await;
        let update = match exists {
            Ok(_) => true,
            Err(CliError::Rejected(s)) if s.code() == tonic::Code::NotFound => false,
            Err(e) => return Err(e),
        };
        let r = ctx
            .call(|mut c| {
                let object = object.clone();
                async move {
                    let req = WriteRequest {
                        object: Some(object),
                        expected_revision: 0,
                    };
                    if update {
                        c.state.update(req).await
                    } else {
                        c.state.create(req).await
                    }
                }
            })
            .await
            .map_err(|e| match e {
                CliError::Rejected(s) => CliError::Rejected(tonic::Status::new(
                    s.code(),
                    format!("{} {}: {}", kind_name(kind), object.name, s.message()),
                )),
                e => e,
            })?;
        if a.output == Output::Table {
            writeln!(
                out,
                "{} {} {} (revision {})",
                kind_name(kind),
                object.name,
                if update { "updated" } else { "created" },
                r.revision
            )?;
        }
        results.push(r);
    }
    if a.output == Output::Json {
        render::json(out, &results)?;
    }
    Ok(())
}

async fn watch(ctx: &Ctx, w: &WatchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let req = WatchRequest {
        from_revision: w.from,
        kinds: w.kind.iter().map(|k| *k as i32).collect(),
        host: w.host.clone().unwrap_or_default(),
    };
    let mut stream = ctx
        .call(|mut c| {
            let req = req.clone();
            async move { c.state.watch(req).await }
        })
        .await?;
    let mut n = 0;
    while let Some(msg) = stream.message().await.map_err(CliError::Rejected)? {
        render::watch_message(out, w.output, &msg)?;
        out.flush()?;
        n += 1;
        if w.count.is_some_and(|c| n >= c) {
            break;
        }
    }
    Ok(())
}

async fn cluster(ctx: &Ctx, c: &ClusterCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match c {
        ClusterCommand::Status { output } => {
            let s = ctx
                .call(|mut c| async move { c.cluster.status(StatusRequest {}).await })
                .await?;
            match output {
                Output::Json => render::json(out, &s),
                Output::Table => render::cluster_status(out, &s),
            }
        }
        ClusterCommand::Leave { id, output } => {
            let r = ctx
                .call(|mut c| async move { c.cluster.leave(LeaveRequest { node_id: *id }).await })
                .await?;
            match output {
                Output::Json => render::json(out, &r),
                Output::Table => {
                    writeln!(out, "node {id} removed; members now:")?;
                    render::members(out, &r.members)
                }
            }
        }
    }
}
