//! The `Diagnostics` service: the hosts' dataplanes reached through the control plane. The
//! leader (which holds the heartbeats, and so each host's liveness and `diag_address`) dials
//! the dataplanes' `DataplaneDiagnostics` service; a follower passes calls to the leader.
//!
//! - `Drops`: `ShowErrors` and `ShowSecurityDenials` of every alive host with a diagnostics
//!   address (or of one host), concurrently, each host within [`HOST_TIMEOUT`]; the answers
//!   are merged and ranked by [`drops`]; a host that cannot be asked is listed, not fatal.
//! - `GatewayStatus`: `GatewayStatus` of every member host of every GatewayGroup (or of
//!   one), asked the same way ([`DiagnosticsService::ask_hosts`]); each group judged by
//!   [`gateway`] (members in priority order, master, redundant, problems).
//! - `Capture`: one host's `Capture` stream, passed through as it comes; when the caller
//!   goes, the stream to the dataplane is dropped and the capture ends there.
//! - `TraceWatch`: one host's `TraceWatch` stream, passed through the same way.
//! - `Trace`: a probe injected by the source port's host; hop records gathered from every
//!   host with a diagnostics address (down ones too: a host cut off from the control plane
//!   may still forward, and its stale state is what the trace must show) until the trace
//!   ends or the wait runs out; judged and compared with the desired state by [`trace`].
//! - [`dial`]: the cache of dataplane clients, shared by the RPCs.

pub mod dial;
pub mod drops;
pub mod gateway;
pub mod trace;

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::{BTreeSet, HashMap};
use std::future::Future;

use aegis_api::controlplane::v1::{
    diagnostics_server::Diagnostics, object::Spec, DropsRequest, DropsResponse, GatewayGroup,
    GatewayStatusRequest, GatewayStatusResponse, HostCaptureRequest, HostHops, HostStatus,
    HostTraceWatchRequest, Kind, TraceRequest, TraceResponse, UnreachableHost,
};
use aegis_api::dataplane::v1 as pb;
use futures::Stream;
use tonic::{Request, Response, Status};

use super::node::{lock, Node};
use dial::{DataplaneClient, Dataplanes};

/// Longest a host's dataplane may take to answer one diagnostics call.
pub const HOST_TIMEOUT: Duration = Duration::from_secs(3);

/// The events of a proxied capture.
pub type CaptureEvents = Pin<Box<dyn Stream<Item = Result<pb::CaptureEvent, Status>> + Send>>;
/// The events of a proxied trace watch.
pub type WatchEvents = Pin<Box<dyn Stream<Item = Result<pb::TraceWatchEvent, Status>> + Send>>;

/// The service, on one node.
pub struct DiagnosticsService {
    node: Arc<Node>,
    dataplanes: Dataplanes,
}

impl DiagnosticsService {
    /// Serves `node`'s hosts; dataplanes are dialled with the node's token.
    pub fn new(node: Arc<Node>) -> Self {
        let dataplanes = Dataplanes::new(node.config.token.clone());
        Self { node, dataplanes }
    }

    /// The status of every host (`host` empty) or of `host`, as the leader sees it now.
    /// NOT_FOUND for a host that does not exist.
    fn statuses(&self, host: &str) -> Result<Vec<HostStatus>, Status> {
        let names: Vec<(String, i32)> = {
            let m = self.node.machine.read();
            m.state
                .list(Kind::Host)
                .into_iter()
                .filter(|o| host.is_empty() || o.name == host)
                .map(|o| (o.name.clone(), 0))
                .collect()
        };
        if !host.is_empty() && names.is_empty() {
            return Err(Status::not_found(format!("host {host} does not exist")));
        }
        let now = Instant::now();
        let live = lock(&self.node.liveness);
        let statuses: Vec<HostStatus> = names
            .iter()
            .map(|(n, role)| live.status(now, n, *role))
            .collect();
        if host.is_empty() {
            // Every host was asked for: clients of addresses nobody reports are stale.
            self.dataplanes
                .retain(&|a| statuses.iter().any(|s| s.diag_address == a));
        }
        Ok(statuses)
    }

    /// The client of `status`'s dataplane, or why there is none.
    fn client(&self, status: &HostStatus) -> Result<DataplaneClient, String> {
        if status.never_seen {
            return Err("down: no heartbeat received from it yet".into());
        }
        if !status.alive {
            return Err(format!(
                "down: last heartbeat {:.1}s ago",
                status.last_seen_ms_ago as f64 / 1000.0
            ));
        }
        if status.diag_address.is_empty() {
            return Err(
                "no diagnostics address: its dataplane has no diag_listen in host.toml".into(),
            );
        }
        self.dataplanes
            .client(&status.diag_address)
            .map_err(|s| s.message().to_owned())
    }

    /// The leader's clients, for a follower passing a call on (counted).
    fn leader(&self) -> Result<crate::client::Clients, Status> {
        let clients = self.node.leader_clients()?;
        self.node
            .counters
            .diag_forwarded
            .fetch_add(1, Ordering::Relaxed);
        Ok(clients)
    }

    fn unreachable(&self) {
        self.node
            .counters
            .diag_unreachable
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The client of `host`'s dataplane for a stream passed through (`Capture`,
    /// `TraceWatch`) and its address: INVALID_ARGUMENT without a host, NOT_FOUND for an
    /// unknown one, FAILED_PRECONDITION when it is down or has no diagnostics address.
    fn host_client(&self, host: &str) -> Result<(DataplaneClient, String), Status> {
        if host.is_empty() {
            return Err(Status::invalid_argument("host is required"));
        }
        let status = self
            .statuses(host)?
            .into_iter()
            .next()
            .ok_or_else(|| Status::not_found(format!("host {host} does not exist")))?;
        // Down or without an address: not worth retrying like an unreachable leader.
        let client = self.client(&status).map_err(|e| {
            self.unreachable();
            Status::failed_precondition(format!("host {host}: {e}"))
        })?;
        Ok((client, status.diag_address))
    }

    /// A dataplane's refusal of a passed-through stream, naming the host: UNAVAILABLE when
    /// it cannot be reached, its own code otherwise (a bad port or filter).
    fn host_error(&self, host: &str, address: &str, s: Status) -> Status {
        if s.code() == tonic::Code::Unavailable {
            self.unreachable();
            Status::unavailable(format!(
                "host {host}: dataplane at {address}: {}",
                s.message()
            ))
        } else {
            Status::new(s.code(), format!("host {host}: {}", s.message()))
        }
    }
}

/// `call` to the dataplane at `addr` within [`HOST_TIMEOUT`]; `Err` says what went wrong,
/// naming the dataplane.
async fn within<T>(addr: &str, call: impl Future<Output = Result<T, Status>>) -> Result<T, String> {
    match tokio::time::timeout(HOST_TIMEOUT, call).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(s)) => Err(format!(
            "dataplane at {addr}: {:?}: {}",
            s.code(),
            s.message()
        )),
        Err(_) => Err(format!(
            "dataplane at {addr}: no answer within {HOST_TIMEOUT:?}"
        )),
    }
}

/// One host's drop counters and denials.
async fn ask_drops(
    mut c: DataplaneClient,
) -> Result<(pb::ShowErrorsReply, pb::ShowSecurityDenialsReply), Status> {
    let errors = c.show_errors(pb::ShowErrorsRequest {}).await?.into_inner();
    let denials = c
        .show_security_denials(pb::ShowSecurityDenialsRequest {})
        .await?
        .into_inner();
    Ok((errors, denials))
}

impl DiagnosticsService {
    /// Asks the dataplane of every host in `statuses` at once (`rpc` names the call in the
    /// log), each within [`HOST_TIMEOUT`]: each host's answer, or why it could not be asked
    /// (down, no diagnostics address, the dataplane's error or silence; counted).
    async fn ask_hosts<T, F, Fut>(
        &self,
        rpc: &'static str,
        statuses: Vec<HostStatus>,
        ask: F,
    ) -> Vec<(String, Result<T, String>)>
    where
        F: Fn(DataplaneClient) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let ask = &ask;
        let asks = statuses.into_iter().map(|s| {
            let client = self.client(&s);
            async move {
                let result = match client {
                    Ok(c) => within(&s.diag_address, ask(c)).await,
                    Err(e) => Err(e),
                };
                (s.name, result)
            }
        });
        let results = futures::future::join_all(asks).await;
        for (host, r) in &results {
            if let Err(e) = r {
                self.unreachable();
                tracing::debug!(%host, error = %e, rpc, "diagnostics: host not asked");
            }
        }
        results
    }
}

/// Default time to gather a trace's hop records.
pub const TRACE_WAIT: Duration = Duration::from_millis(2000);
/// Pause between two rounds of asking the hosts for a trace's records.
const TRACE_POLL: Duration = Duration::from_millis(150);

impl DiagnosticsService {
    /// The records of trace `id` on every host in `statuses` that has a diagnostics address.
    async fn gather(
        &self,
        statuses: &[HostStatus],
        id: u64,
    ) -> (Vec<HostHops>, Vec<UnreachableHost>) {
        let asks = statuses
            .iter()
            .filter(|s| !s.diag_address.is_empty())
            .map(|s| {
                let client = self.dataplanes.client(&s.diag_address);
                let (host, addr) = (s.name.clone(), s.diag_address.clone());
                async move {
                    let r = match client {
                        Ok(mut c) => {
                            let call = c.trace_records(pb::TraceRecordsRequest { trace_id: id });
                            within(&addr, call).await.map(tonic::Response::into_inner)
                        }
                        Err(s) => Err(s.message().to_owned()),
                    };
                    (host, r)
                }
            });
        let mut hosts = Vec::new();
        let mut unreachable = Vec::new();
        for (host, r) in futures::future::join_all(asks).await {
            match r {
                Ok(rep) => hosts.push(HostHops {
                    host,
                    applied_revision: rep.applied_revision,
                    hops: rep.hops,
                }),
                Err(error) => unreachable.push(UnreachableHost { host, error }),
            }
        }
        (hosts, unreachable)
    }

    /// Asks `host`'s dataplane to inject `probe`.
    async fn inject_at(
        &self,
        host: &str,
        probe: pb::InjectProbeRequest,
    ) -> Result<pb::InjectProbeReply, Status> {
        let source = self
            .statuses(host)?
            .into_iter()
            .next()
            .ok_or_else(|| Status::not_found(format!("host {host} does not exist")))?;
        let mut client = self.client(&source).map_err(|e| {
            self.unreachable();
            Status::failed_precondition(format!("host {host}: {e}"))
        })?;
        let reply = client
            .inject_probe(probe)
            .await
            .map_err(|s| Status::new(s.code(), format!("host {host}: {}", s.message())))?;
        Ok(reply.into_inner())
    }
}

#[tonic::async_trait]
impl Diagnostics for DiagnosticsService {
    async fn trace(&self, req: Request<TraceRequest>) -> Result<Response<TraceResponse>, Status> {
        if !self.node.is_leader() {
            let mut leader = self.leader()?;
            return leader.diagnostics.trace(req.into_inner()).await;
        }
        let req = req.into_inner();
        let mut probe = req
            .probe
            .ok_or_else(|| Status::invalid_argument("probe is required"))?;
        let dst: std::net::Ipv4Addr = probe.dst.parse().map_err(|_| {
            Status::invalid_argument(format!("dst {:?} is not an IPv4 address", probe.dst))
        })?;
        let (from_host, started, expected, desired) = if req.from_external.is_empty() {
            let (from_host, expected, desired) = {
                let m = self.node.machine.read();
                let port = m.state.get(Kind::Port, &probe.port).ok_or_else(|| {
                    Status::not_found(format!("port {} does not exist", probe.port))
                })?;
                let host = match &port.spec {
                    Some(aegis_api::controlplane::v1::object::Spec::Port(p)) => p.host.clone(),
                    _ => String::new(),
                };
                if host.is_empty() {
                    return Err(Status::failed_precondition(format!(
                        "port {} is on no host: nothing can send from it",
                        probe.port
                    )));
                }
                (
                    host,
                    trace::expected(&m.state, &probe.port, dst),
                    m.state.revision(),
                )
            };
            let started = self.inject_at(&from_host, probe).await?;
            (from_host, started, expected, desired)
        } else {
            let (members, src, expected, desired) = {
                let m = self.node.machine.read();
                let (members, gateway_ip) = trace::group_entry(&m.state, &req.from_external)
                    .ok_or_else(|| {
                        Status::not_found(format!(
                            "gateway group {} does not exist",
                            req.from_external
                        ))
                    })?;
                (
                    members,
                    gateway_ip,
                    trace::expected_from_external(&m.state, dst),
                    m.state.revision(),
                )
            };
            probe.from_external = true;
            if probe.src.is_empty() {
                probe.src = src;
            }
            // The probe enters at the group's MASTER: the member holding the destination.
            let mut refused = Vec::new();
            let mut entered = None;
            for host in members {
                match self.inject_at(&host, probe.clone()).await {
                    Ok(started) => {
                        entered = Some((host, started));
                        break;
                    }
                    Err(e) => refused.push(e.message().to_string()),
                }
            }
            let (from_host, started) = entered.ok_or_else(|| {
                Status::failed_precondition(format!(
                    "no member of gateway group {} took the probe for {dst}: {}",
                    req.from_external,
                    refused.join("; ")
                ))
            })?;
            (from_host, started, expected, desired)
        };
        let id = started.trace_id;
        tracing::info!(trace = format!("{id:016x}"), host = %from_host, port = %started.endpoint, "trace probe injected");
        let statuses = self.statuses("")?;
        let wait = match req.wait_ms {
            0 => TRACE_WAIT,
            ms => Duration::from_millis(u64::from(ms).min(30_000)),
        };
        let deadline = Instant::now() + wait;
        let (mut hosts, mut unreachable);
        loop {
            tokio::time::sleep(TRACE_POLL).await;
            (hosts, unreachable) = self.gather(&statuses, id).await;
            if trace::complete(&hosts) || Instant::now() >= deadline {
                break;
            }
        }
        // Records of the last hops may still be on their way: one more round when complete.
        tokio::time::sleep(TRACE_POLL).await;
        let (last, last_unreachable) = self.gather(&statuses, id).await;
        if last.iter().map(|h| h.hops.len()).sum::<usize>()
            >= hosts.iter().map(|h| h.hops.len()).sum::<usize>()
        {
            (hosts, unreachable) = (last, last_unreachable);
        }
        let applied: Vec<(String, u64)> = hosts
            .iter()
            .map(|h| (h.host.clone(), h.applied_revision))
            .chain(
                statuses
                    .iter()
                    .filter(|s| !hosts.iter().any(|h| h.host == s.name))
                    .map(|s| (s.name.clone(), s.applied_revision)),
            )
            .collect();
        let hosts = trace::path_order(hosts);
        let verdict = trace::verdict(&hosts);
        let findings = trace::findings(&expected, &verdict, &hosts, desired, &applied, &from_host);
        Ok(Response::new(TraceResponse {
            trace_id: id,
            from_host,
            hosts,
            verdict: Some(verdict),
            expected: Some(expected),
            findings,
            desired_revision: desired,
            unreachable,
        }))
    }

    async fn drops(&self, req: Request<DropsRequest>) -> Result<Response<DropsResponse>, Status> {
        self.node
            .counters
            .diag_drops
            .fetch_add(1, Ordering::Relaxed);
        if !self.node.is_leader() {
            let mut leader = self.leader()?;
            return leader.diagnostics.drops(req.into_inner()).await;
        }
        let statuses = self.statuses(&req.into_inner().host)?;
        let results = self.ask_hosts("drops", statuses, ask_drops).await;
        Ok(Response::new(drops::response(results)))
    }

    async fn gateway_status(
        &self,
        req: Request<GatewayStatusRequest>,
    ) -> Result<Response<GatewayStatusResponse>, Status> {
        self.node
            .counters
            .diag_gateway_status
            .fetch_add(1, Ordering::Relaxed);
        if !self.node.is_leader() {
            let mut leader = self.leader()?;
            return leader.diagnostics.gateway_status(req.into_inner()).await;
        }
        let wanted = req.into_inner().group;
        let groups: Vec<(String, GatewayGroup)> = {
            let m = self.node.machine.read();
            m.state
                .list(Kind::GatewayGroup)
                .into_iter()
                .filter(|o| wanted.is_empty() || o.name == wanted)
                .filter_map(|o| match &o.spec {
                    Some(Spec::GatewayGroup(g)) => Some((o.name.clone(), g.clone())),
                    _ => None,
                })
                .collect()
        };
        if !wanted.is_empty() && groups.is_empty() {
            return Err(Status::not_found(format!(
                "gateway group {wanted} does not exist"
            )));
        }
        let members: BTreeSet<&str> = groups
            .iter()
            .flat_map(|(_, g)| g.members.iter().map(|m| m.host.as_str()))
            .collect();
        let statuses: Vec<HostStatus> = self
            .statuses("")?
            .into_iter()
            .filter(|s| members.contains(s.name.as_str()))
            .collect();
        let results: HashMap<String, gateway::MemberResult> = self
            .ask_hosts("gateway_status", statuses, |mut c| async move {
                Ok(c.gateway_status(pb::GatewayStatusRequest {})
                    .await?
                    .into_inner())
            })
            .await
            .into_iter()
            .collect();
        Ok(Response::new(GatewayStatusResponse {
            groups: groups
                .iter()
                .map(|(name, g)| gateway::group_status(name, g, &results))
                .collect(),
        }))
    }

    type CaptureStream = CaptureEvents;

    async fn capture(
        &self,
        req: Request<HostCaptureRequest>,
    ) -> Result<Response<CaptureEvents>, Status> {
        if !self.node.is_leader() {
            let mut leader = self.leader()?;
            let stream = leader.diagnostics.capture(req.into_inner()).await?;
            return Ok(Response::new(Box::pin(stream.into_inner())));
        }
        let req = req.into_inner();
        let capture = req
            .capture
            .ok_or_else(|| Status::invalid_argument("capture is required"))?;
        let (mut client, address) = self.host_client(&req.host)?;
        let stream = client
            .capture(capture)
            .await
            .map_err(|s| self.host_error(&req.host, &address, s))?;
        self.node
            .counters
            .diag_captures
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(host = %req.host, dataplane = %address, "capture proxied");
        Ok(Response::new(Box::pin(stream.into_inner())))
    }

    type TraceWatchStream = WatchEvents;

    async fn trace_watch(
        &self,
        req: Request<HostTraceWatchRequest>,
    ) -> Result<Response<WatchEvents>, Status> {
        if !self.node.is_leader() {
            let mut leader = self.leader()?;
            let stream = leader.diagnostics.trace_watch(req.into_inner()).await?;
            return Ok(Response::new(Box::pin(stream.into_inner())));
        }
        let req = req.into_inner();
        let watch = req
            .watch
            .ok_or_else(|| Status::invalid_argument("watch is required"))?;
        let (mut client, address) = self.host_client(&req.host)?;
        let stream = client
            .trace_watch(watch)
            .await
            .map_err(|s| self.host_error(&req.host, &address, s))?;
        self.node
            .counters
            .diag_watches
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(host = %req.host, dataplane = %address, "trace watch proxied");
        Ok(Response::new(Box::pin(stream.into_inner())))
    }
}
