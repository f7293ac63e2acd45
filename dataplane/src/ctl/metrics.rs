//! Prometheus endpoint: renders the [`AdminBackend`]'s counters in the text exposition
//! format and serves them as `GET /metrics` over HTTP/1.1 on a TCP address.
//!
//! Families: `aegis_revision`, `aegis_uptime_seconds`; with a control-plane feed
//! `aegis_controlplane_applied_revision`, `aegis_controlplane_connected`,
//! `aegis_controlplane_apply_error`, `aegis_controlplane_nat_conflicts`; per port (`port` label)
//! `aegis_port_admin_up`, `aegis_port_link_up`, `aegis_port_{rx,tx}_{packets,bytes}_total`,
//! `aegis_port_rx_missed_total`, `aegis_port_{rx,tx}_errors_total`,
//! `aegis_port_rx_nombuf_total`; per worker (`worker` label) `aegis_worker_polls_total`,
//! `aegis_worker_idle_polls_total`, `aegis_worker_sleeps_total`,
//! `aegis_worker_consumed_total`, `aegis_icmp_errors_sent_total`,
//! `aegis_icmp_errors_rate_limited_total`, `aegis_nat_sessions_revoked_total`, and the
//! gauges `aegis_conntrack_entries`, `aegis_conntrack_capacity`, `aegis_nat_sessions`; per worker and node
//! (`worker`, `node`) `aegis_node_calls_total`, `aegis_node_packets_total`,
//! `aegis_node_clocks_total`; per drop reason summed over workers (`reason`)
//! `aegis_drops_total`; per security-group rule summed over workers (`rule`, `GROUP/RULE_ID`)
//! `aegis_security_group_denied_total`; on gateways, per VRRP instance (`instance`)
//! `aegis_vrrp_state` (`state` label, 1 for the current one), `aegis_vrrp_state_seconds`,
//! `aegis_vrrp_priority`, `aegis_vrrp_configured_priority`,
//! `aegis_vrrp_master_priority`, `aegis_vrrp_transitions_total`,
//! `aegis_vrrp_became_master_total`, `aegis_vrrp_adverts_{received,sent}_total`,
//! `aegis_vrrp_priority_zero_{received,sent}_total`, `aegis_vrrp_discarded_total`
//! (`reason`), and `aegis_vrrp_refused_total` (`reason`); with session sync
//! `aegis_sync_master` (1 while streaming), `aegis_sync_synced`, `aegis_sync_sessions`,
//! `aegis_sync_spare`, `aegis_sync_role_changes_total`, `aegis_sync_peer_changes_total`,
//! `aegis_sync_{tx,rx}_datagrams_total`, on a backup
//! `aegis_sync_applied_total`, `aegis_sync_events_applied_total`,
//! `aegis_sync_duplicates_total`, `aegis_sync_out_of_order_total`,
//! `aegis_sync_bulk_completed_total`, `aegis_sync_resync_requests_total`,
//! `aegis_sync_installs_total`, `aegis_sync_installs_pushed_total`,
//! `aegis_sync_install_failures_total`,
//! `aegis_sync_events_lost_total`, `aegis_sync_tx_unresolved_total`,
//! `aegis_sync_tx_queue_full_total`, `aegis_sync_rx_unknown_peer_total`,
//! `aegis_sync_rejected_total` (`reason`), and per peer (`peer`) `aegis_sync_lag_events`,
//! `aegis_sync_oldest_unacked_seconds`, `aegis_sync_resends_total`,
//! `aegis_sync_bulk_resyncs_total`; packet capture:
//! `aegis_captures_running` and `aegis_capture_overflow_total` (packets a capture lost to a
//! full worker ring, every capture since start); trace watches:
//! `aegis_trace_watches_running` and `aegis_trace_watch_traced_total`.

use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;

use super::backend::{AdminBackend, AdminError};
use super::types::{InterfaceInfo, NodeRuntime, WorkerRuntime};

/// Content type of the text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How long shutdown waits for scrapes in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the metrics endpoint could not start or failed.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Binding or accepting on the listen address failed.
    #[error("metrics endpoint {addr}: cannot {action}: {source}")]
    Io {
        /// The listen address.
        addr: SocketAddr,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// A bound metrics listener, not yet serving.
pub struct MetricsServer {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    backend: Arc<dyn AdminBackend>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port; see [`MetricsServer::local_addr`]).
    pub fn bind(addr: SocketAddr, backend: Arc<dyn AdminBackend>) -> Result<Self, MetricsError> {
        let (listener, addr) =
            super::bind_listener(addr).map_err(|(action, source)| MetricsError::Io {
                addr,
                action,
                source,
            })?;
        Ok(MetricsServer {
            listener,
            addr,
            backend,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then waits (briefly) for scrapes in flight.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), MetricsError> {
        let addr = self.addr;
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(|source| {
            MetricsError::Io {
                addr,
                action: "register with the runtime",
                source,
            }
        })?;
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    // Per-connection failures (e.g. the peer reset before accept) are not
                    // fatal for the endpoint; back off briefly on resource exhaustion.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let backend = Arc::clone(&self.backend);
            let service = hyper::service::service_fn(move |req| {
                let backend = Arc::clone(&backend);
                async move { Ok::<_, std::convert::Infallible>(handle(req, backend).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                // A client that goes away mid-response is its own problem.
                let _ = conn.await;
            });
        }
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
        Ok(())
    }
}

/// Binds `addr` and serves `/metrics` from `backend` until `shutdown` completes.
pub async fn serve_metrics(
    addr: SocketAddr,
    backend: Arc<dyn AdminBackend>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), MetricsError> {
    MetricsServer::bind(addr, backend)?.serve(shutdown).await
}

async fn handle(req: Request<Incoming>, backend: Arc<dyn AdminBackend>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "not found; try /metrics\n".into());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
    }
    match tokio::task::spawn_blocking(move || render(backend.as_ref())).await {
        Ok(Ok(text)) => {
            let mut resp = reply(StatusCode::OK, text);
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(CONTENT_TYPE),
            );
            resp
        }
        Ok(Err(e)) => reply(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics task failed: {e}\n"),
        ),
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp
}

/// One metric family read from values of type `T`: name, help text, value.
type Family<T> = (&'static str, &'static str, fn(&T) -> u64);

/// Renders every metric family from `backend` in the Prometheus text format.
pub fn render(backend: &dyn AdminBackend) -> Result<String, AdminError> {
    let status = backend.status()?;
    let ports = backend.interfaces()?;
    let workers = backend.runtime()?;
    let errors = backend.errors()?;
    let denials = backend.security_denials()?;
    let vrrp = backend.vrrp()?;
    let sync = backend.sync()?;

    let mut out = Text::default();
    out.family("aegis_revision", "gauge", "Configuration revision.");
    out.sample("aegis_revision", &[], status.revision);
    out.family(
        "aegis_uptime_seconds",
        "gauge",
        "Seconds since the dataplane started.",
    );
    out.sample_f64("aegis_uptime_seconds", &[], status.uptime.as_secs_f64());
    if let Some(cp) = &status.controlplane {
        out.family(
            "aegis_controlplane_applied_revision",
            "gauge",
            "Control-plane revision the tables implement (0: none yet).",
        );
        out.sample(
            "aegis_controlplane_applied_revision",
            &[],
            cp.applied_revision,
        );
        out.family(
            "aegis_controlplane_connected",
            "gauge",
            "Watch stream to the control plane open (1) or not (0).",
        );
        out.sample("aegis_controlplane_connected", &[], u64::from(cp.connected));
        out.family(
            "aegis_controlplane_apply_error",
            "gauge",
            "The latest control-plane revision could not be applied (1) or was (0).",
        );
        out.sample(
            "aegis_controlplane_apply_error",
            &[],
            u64::from(!cp.apply_error.is_empty()),
        );
        out.family(
            "aegis_controlplane_nat_conflicts",
            "gauge",
            "Control-plane NAT objects left out for clashing with host.toml's [nat].",
        );
        out.sample(
            "aegis_controlplane_nat_conflicts",
            &[],
            cp.nat_conflicts.len() as u64,
        );
    }

    let port_gauges: [Family<InterfaceInfo>; 2] = [
        (
            "aegis_port_admin_up",
            "Port administratively up (1) or down (0).",
            |p| u64::from(p.admin_up),
        ),
        ("aegis_port_link_up", "Port link up (1) or down (0).", |p| {
            u64::from(p.link_up)
        }),
    ];
    let ports: Vec<_> = ports
        .iter()
        .map(|p| (vec![("port", p.name.clone())], p))
        .collect();
    out.families("gauge", &port_gauges, &ports);
    let port_counters: [Family<InterfaceInfo>; 8] = [
        ("aegis_port_rx_packets_total", "Packets received.", |p| {
            p.counters.rx_packets
        }),
        ("aegis_port_rx_bytes_total", "Bytes received.", |p| {
            p.counters.rx_bytes
        }),
        ("aegis_port_tx_packets_total", "Packets sent.", |p| {
            p.counters.tx_packets
        }),
        ("aegis_port_tx_bytes_total", "Bytes sent.", |p| {
            p.counters.tx_bytes
        }),
        (
            "aegis_port_rx_missed_total",
            "Packets dropped by the NIC (rx queue full).",
            |p| p.counters.rx_missed,
        ),
        (
            "aegis_port_rx_errors_total",
            "Erroneous received packets.",
            |p| p.counters.rx_errors,
        ),
        ("aegis_port_tx_errors_total", "Failed transmissions.", |p| {
            p.counters.tx_errors
        }),
        (
            "aegis_port_rx_nombuf_total",
            "Receive failures for lack of mbufs.",
            |p| p.counters.rx_nombuf,
        ),
    ];
    out.families("counter", &port_counters, &ports);

    let worker_counters: [Family<WorkerRuntime>; 7] = [
        ("aegis_worker_polls_total", "Worker poll rounds.", |w| {
            w.polls
        }),
        (
            "aegis_worker_idle_polls_total",
            "Poll rounds that received nothing.",
            |w| w.idle_polls,
        ),
        (
            "aegis_worker_sleeps_total",
            "Sleeps taken by adaptive polling.",
            |w| w.sleeps,
        ),
        (
            "aegis_worker_consumed_total",
            "Packets the dataplane consumed itself (ARP replies addressed to it).",
            |w| w.consumed,
        ),
        ("aegis_icmp_errors_sent_total", "ICMP errors sent.", |w| {
            w.icmp_sent
        }),
        (
            "aegis_icmp_errors_rate_limited_total",
            "ICMP errors not sent because of the rate limit.",
            |w| w.icmp_rate_limited,
        ),
        (
            "aegis_nat_sessions_revoked_total",
            "NAT sessions removed because a configuration change took away their floating IP or source NAT rule.",
            |w| w.nat_sessions_revoked,
        ),
    ];
    let by_worker: Vec<_> = workers
        .iter()
        .map(|w| (vec![("worker", w.id.to_string())], w))
        .collect();
    out.families("counter", &worker_counters, &by_worker);
    let worker_gauges: [Family<WorkerRuntime>; 3] = [
        (
            "aegis_conntrack_entries",
            "Entries in the worker's connection table (expired ones not yet swept included).",
            |w| w.connections,
        ),
        (
            "aegis_conntrack_capacity",
            "Entries the worker's connection table holds at most.",
            |w| w.connection_capacity,
        ),
        (
            "aegis_nat_sessions",
            "NAT sessions in the worker's table (expired ones not yet swept included).",
            |w| w.nat_sessions,
        ),
    ];
    out.families("gauge", &worker_gauges, &by_worker);
    let node_counters: [Family<NodeRuntime>; 3] = [
        (
            "aegis_node_calls_total",
            "Times a graph node was dispatched.",
            |n| n.calls,
        ),
        (
            "aegis_node_packets_total",
            "Packets processed by a graph node.",
            |n| n.vectors,
        ),
        (
            "aegis_node_clocks_total",
            "TSC cycles spent in a graph node (measured on one poll in 16, counted 16 times over).",
            |n| n.clocks,
        ),
    ];
    let nodes: Vec<_> = workers
        .iter()
        .flat_map(|w| {
            w.nodes.iter().map(move |n| {
                (
                    vec![("worker", w.id.to_string()), ("node", n.name.clone())],
                    n,
                )
            })
        })
        .collect();
    out.families("counter", &node_counters, &nodes);

    let capture = backend.capture_counters();
    out.family(
        "aegis_captures_running",
        "gauge",
        "Packet captures running (aegisctl dp capture).",
    );
    out.sample("aegis_captures_running", &[], capture.running);
    out.family(
        "aegis_capture_overflow_total",
        "counter",
        "Packets a capture matched but did not capture: the worker's capture ring was full.",
    );
    out.sample("aegis_capture_overflow_total", &[], capture.overflow);
    let (watches, watch_traced) = backend.watch_counters();
    out.family(
        "aegis_trace_watches_running",
        "gauge",
        "Trace watches running (aegisctl trace watch).",
    );
    out.sample("aegis_trace_watches_running", &[], watches);
    out.family(
        "aegis_trace_watch_traced_total",
        "counter",
        "Packets trace watches traced, every watch since start.",
    );
    out.sample("aegis_trace_watch_traced_total", &[], watch_traced);

    out.family(
        "aegis_drops_total",
        "counter",
        "Packets dropped, by reason (all workers).",
    );
    let mut drops: Vec<(&str, u64)> = Vec::new();
    for c in errors.iter().flat_map(|w| &w.counts) {
        match drops.iter_mut().find(|(r, _)| *r == c.reason) {
            Some((_, n)) => *n = n.saturating_add(c.count),
            None => drops.push((&c.reason, c.count)),
        }
    }
    for (reason, count) in drops {
        out.sample("aegis_drops_total", &[("reason", reason)], count);
    }

    out.family(
        "aegis_security_group_denied_total",
        "counter",
        "Packets denied by security groups, by rule (GROUP/RULE_ID; all workers).",
    );
    for d in &denials {
        out.sample(
            "aegis_security_group_denied_total",
            &[("rule", &d.rule)],
            d.count,
        );
    }
    vrrp_metrics(&mut out, &vrrp);
    if let Some(s) = &sync {
        sync_metrics(&mut out, s);
    }
    Ok(out.0)
}

/// Session sync's families.
fn sync_metrics(out: &mut Text, s: &super::types::SyncInfo) {
    let gauges: [(&str, &str, u64); 4] = [
        (
            "aegis_sync_spare",
            "1 while this gateway is a spare: not among the control plane's assigned sync members.",
            u64::from(s.spare),
        ),
        (
            "aegis_sync_master",
            "1 while this gateway streams its sessions (VRRP master), 0 while it receives.",
            u64::from(s.role == "master"),
        ),
        (
            "aegis_sync_synced",
            "1 when the replica is complete (a backup's bulk resync done; always on a master).",
            u64::from(s.synced),
        ),
        (
            "aegis_sync_sessions",
            "Sessions this gateway knows (its own as master, the replica as backup).",
            s.sessions,
        ),
    ];
    for (name, help, v) in gauges {
        out.family(name, "gauge", help);
        out.sample(name, &[], v);
    }
    let counters: [(&str, &str, u64); 17] = [
        (
            "aegis_sync_role_changes_total",
            "Role changes.",
            s.role_changes,
        ),
        (
            "aegis_sync_peer_changes_total",
            "Sync peer-set changes applied (control-plane re-selections).",
            s.peer_changes,
        ),
        (
            "aegis_sync_applied_total",
            "Backup: sync datagrams applied in order.",
            s.applied,
        ),
        (
            "aegis_sync_events_applied_total",
            "Backup: session events applied to the replica.",
            s.events_applied,
        ),
        (
            "aegis_sync_duplicates_total",
            "Backup: duplicate sync datagrams (acknowledged again, not applied).",
            s.duplicates,
        ),
        (
            "aegis_sync_out_of_order_total",
            "Backup: sync datagrams that arrived early and were buffered.",
            s.out_of_order,
        ),
        (
            "aegis_sync_bulk_completed_total",
            "Backup: bulk resyncs received to the end.",
            s.bulk_completed,
        ),
        (
            "aegis_sync_resync_requests_total",
            "Backup: bulk resync requests sent.",
            s.resync_requests,
        ),
        (
            "aegis_sync_tx_datagrams_total",
            "Sync datagrams sent.",
            s.tx_datagrams,
        ),
        (
            "aegis_sync_rx_datagrams_total",
            "Sync datagrams received.",
            s.rx_datagrams,
        ),
        (
            "aegis_sync_installs_total",
            "Session installs and removals the NAT worker applied.",
            s.installs_done,
        ),
        (
            "aegis_sync_installs_pushed_total",
            "Session installs and removals handed to the NAT worker (minus installs: pending).",
            s.installs_pushed,
        ),
        (
            "aegis_sync_install_failures_total",
            "Session installs the NAT worker refused (table full, no port).",
            s.installs_failed,
        ),
        (
            "aegis_sync_events_lost_total",
            "NAT session events the worker could not queue.",
            s.events_lost,
        ),
        (
            "aegis_sync_tx_unresolved_total",
            "Datagrams not sent: the peer's MAC was not resolved yet.",
            s.tx_unresolved,
        ),
        (
            "aegis_sync_tx_queue_full_total",
            "Datagrams not sent: the injection queue was full.",
            s.tx_queue_full,
        ),
        (
            "aegis_sync_rx_unknown_peer_total",
            "Datagrams from an address that is no peer.",
            s.rx_unknown_peer,
        ),
    ];
    for (name, help, v) in counters {
        out.family(name, "counter", help);
        out.sample(name, &[], v);
    }
    out.family(
        "aegis_sync_rejected_total",
        "counter",
        "Sync datagrams refused (authentication or parsing), by reason.",
    );
    for (reason, n) in &s.rejected {
        out.sample("aegis_sync_rejected_total", &[("reason", reason)], *n);
    }
    out.family(
        "aegis_sync_lag_events",
        "gauge",
        "Events queued or in flight to the peer, not yet acknowledged.",
    );
    for p in &s.peers {
        out.sample(
            "aegis_sync_lag_events",
            &[("peer", &p.address.to_string())],
            p.lag,
        );
    }
    out.family(
        "aegis_sync_oldest_unacked_seconds",
        "gauge",
        "Age of the oldest unacknowledged datagram to the peer (0 when none).",
    );
    for p in &s.peers {
        out.sample_f64(
            "aegis_sync_oldest_unacked_seconds",
            &[("peer", &p.address.to_string())],
            p.oldest_unacked.map_or(0.0, |d| d.as_secs_f64()),
        );
    }
    let peer: [Family<super::types::SyncPeerInfo>; 2] = [
        ("aegis_sync_resends_total", "Datagrams sent again.", |p| {
            p.resends
        }),
        (
            "aegis_sync_bulk_resyncs_total",
            "Bulk resyncs sent to the peer.",
            |p| p.bulk_resyncs,
        ),
    ];
    for (name, help, f) in peer {
        out.family(name, "counter", help);
        for p in &s.peers {
            out.sample(name, &[("peer", &p.address.to_string())], f(p));
        }
    }
}

/// The VRRP speaker's families (none when the host runs no VRRP).
fn vrrp_metrics(out: &mut Text, v: &super::types::VrrpInfo) {
    if v.instances.is_empty() {
        return;
    }
    out.family(
        "aegis_vrrp_state",
        "gauge",
        "1 for the state each VRRP instance is in (INIT, BACKUP, MASTER, FAULT), else 0.",
    );
    for i in &v.instances {
        for s in ["INIT", "BACKUP", "MASTER", "FAULT"] {
            out.sample(
                "aegis_vrrp_state",
                &[("instance", &i.name), ("state", s)],
                u64::from(i.state == s),
            );
        }
    }
    out.family(
        "aegis_vrrp_state_seconds",
        "gauge",
        "Time the VRRP instance has been in its current state (master since, backup since).",
    );
    for i in &v.instances {
        out.sample_f64(
            "aegis_vrrp_state_seconds",
            &[("instance", &i.name)],
            i.in_state.as_secs_f64(),
        );
    }
    let gauges: [Family<super::types::VrrpInstanceInfo>; 3] = [
        (
            "aegis_vrrp_priority",
            "Priority in force (tracking applied).",
            |i| u64::from(i.effective_priority),
        ),
        (
            "aegis_vrrp_configured_priority",
            "Configured priority (keepalived.conf), before tracking.",
            |i| u64::from(i.priority),
        ),
        (
            "aegis_vrrp_master_priority",
            "Priority of the master last heard (ours when master).",
            |i| u64::from(i.master_priority),
        ),
    ];
    for (name, help, f) in gauges {
        out.family(name, "gauge", help);
        for i in &v.instances {
            out.sample(name, &[("instance", &i.name)], f(i));
        }
    }
    let counters: [Family<super::types::VrrpInstanceInfo>; 6] = [
        ("aegis_vrrp_transitions_total", "VRRP state changes.", |i| {
            i.transitions
        }),
        (
            "aegis_vrrp_became_master_total",
            "Times the instance became master.",
            |i| i.became_master,
        ),
        (
            "aegis_vrrp_adverts_received_total",
            "Advertisements acted on.",
            |i| i.adverts_rx,
        ),
        (
            "aegis_vrrp_adverts_sent_total",
            "Advertisements sent.",
            |i| i.adverts_tx,
        ),
        (
            "aegis_vrrp_priority_zero_received_total",
            "Priority-0 (master stopping) advertisements received.",
            |i| i.priority_zero_rx,
        ),
        (
            "aegis_vrrp_priority_zero_sent_total",
            "Priority-0 advertisements sent.",
            |i| i.priority_zero_tx,
        ),
    ];
    for (name, help, f) in counters {
        out.family(name, "counter", help);
        for i in &v.instances {
            out.sample(name, &[("instance", &i.name)], f(i));
        }
    }
    out.family(
        "aegis_vrrp_discarded_total",
        "counter",
        "Advertisements an instance did not act on, by reason.",
    );
    for i in &v.instances {
        for (reason, n) in &i.discards {
            out.sample(
                "aegis_vrrp_discarded_total",
                &[("instance", &i.name), ("reason", reason)],
                *n,
            );
        }
    }
    out.family(
        "aegis_vrrp_refused_total",
        "counter",
        "VRRP frames refused before any instance saw them, and speaker failures, by reason.",
    );
    for (reason, n) in &v.rx_errors {
        out.sample("aegis_vrrp_refused_total", &[("reason", reason)], *n);
    }
}

/// Accumulates exposition-format text.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// Writes each family with one sample per item (labels, value source).
    fn families<T>(
        &mut self,
        kind: &str,
        families: &[Family<T>],
        items: &[(Vec<(&str, String)>, &T)],
    ) {
        for (name, help, get) in families {
            self.family(name, kind, help);
            for (labels, item) in items {
                let labels: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                self.sample(name, &labels, get(item));
            }
        }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.labels(name, labels);
        let _ = writeln!(self.0, " {value}");
    }

    fn sample_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.labels(name, labels);
        let _ = writeln!(self.0, " {value}");
    }

    fn labels(&mut self, name: &str, labels: &[(&str, &str)]) {
        self.0.push_str(name);
        if labels.is_empty() {
            return;
        }
        self.0.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            self.0.push_str(key);
            self.0.push_str("=\"");
            for ch in value.chars() {
                match ch {
                    '\\' => self.0.push_str("\\\\"),
                    '"' => self.0.push_str("\\\""),
                    '\n' => self.0.push_str("\\n"),
                    c => self.0.push(c),
                }
            }
            self.0.push('"');
        }
        self.0.push('}');
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::ctl::{ControlPlaneStatus, MemoryBackend, PollMode, PortCounters, WorkerInfo};

    fn backend() -> Arc<MemoryBackend> {
        let workers = [
            WorkerInfo { id: 0, lcore: 1 },
            WorkerInfo { id: 1, lcore: 2 },
        ];
        let b = MemoryBackend::new(PollMode::Busy, &workers);
        b.add_port("eth0", "net_null0", [2, 0, 0, 0, 0, 1], 1500, 10_000)
            .unwrap();
        b.add_port("we\"ird", "net_null1", [2, 0, 0, 0, 0, 2], 1500, 0)
            .unwrap();
        let c = PortCounters {
            rx_packets: 7,
            rx_bytes: 448,
            rx_missed: 2,
            ..PortCounters::default()
        };
        b.count_port("eth0", c).unwrap();
        b.set_port_state("we\"ird".into(), false).unwrap();
        b.count_node(0, "ip4-forward", 3, 90, 9000).unwrap();
        b.count_node(1, "ip4-forward", 1, 10, 800).unwrap();
        b.count_polls(1, 100, 60, 5).unwrap();
        b.count_drop(0, "no_route", "No route.", 4).unwrap();
        b.count_drop(1, "no_route", "No route.", 6).unwrap();
        b.declare_reason("port_down", "Port down.").unwrap();
        b.count_denial("default/ingress-deny", 3).unwrap();
        b.count_denial("web/no-telnet", 0).unwrap();
        b.set_controlplane(Some(ControlPlaneStatus {
            servers: "10.0.0.1:7000".into(),
            host: "g1".into(),
            connected: true,
            applied_revision: 41,
            received_revision: 42,
            apply_error: "revision 42: port b1 on a missing device".into(),
            from_cache: false,
            nat_conflicts: vec!["a".into(), "b".into()],
        }))
        .unwrap();
        b.set_connections(1, 4096, Vec::new()).unwrap();
        b.set_vrrp(super::super::types::VrrpInfo {
            instances: vec![super::super::types::VrrpInstanceInfo {
                interval: std::time::Duration::from_millis(100),
                in_state: std::time::Duration::from_secs(3),
                last_cause: "master down".into(),
                transitions: 2,
                became_master: 1,
                adverts_rx: 5,
                adverts_tx: 30,
                discards: vec![("lower_priority".into(), 4)],
                ..super::super::types::VrrpInstanceInfo::new("VI_1", "eth0", 77, "MASTER", 150)
            }],
            rx_errors: vec![("vrrp_checksum".into(), 1)],
            problems: Vec::new(),
        });
        b.set_sync(Some(super::super::types::SyncInfo {
            role: "master".into(),
            vrrp_instance: "VI_1".into(),
            sessions: 7,
            synced: true,
            peers: vec![super::super::types::SyncPeerInfo {
                address: std::net::Ipv4Addr::new(10, 0, 0, 2),
                lag: 5,
                oldest_unacked: Some(std::time::Duration::from_millis(250)),
                events: 40,
                datagrams: 4,
                resends: 3,
                acks: 2,
                bulk_resyncs: 1,
                bulk_sessions: 2,
            }],
            rejected: vec![("auth".into(), 2)],
            ..super::super::types::SyncInfo::default()
        }));
        Arc::new(b)
    }

    #[test]
    fn capture_overflow_is_counted_past_the_capture() {
        use crate::capture::{hub::RING_RECORDS, Point, Program};
        use crate::ctl::capture::{CaptureQuery, Direction};
        let b = backend();
        let session = b
            .capture(CaptureQuery {
                ports: Vec::new(),
                direction: Direction::Rx,
                drops: false,
                nodes: Vec::new(),
                filter: Program::accept_all(),
                snaplen: 64,
                count: 0,
                duration: None,
            })
            .unwrap();
        // Nobody drains the ring: the packets past its size are not captured, counted.
        for _ in 0..RING_RECORDS + 5 {
            b.capture_packet(0, Point::Rx, 0, &[0; 60]).unwrap();
        }
        let text = render(b.as_ref()).unwrap();
        assert!(
            text.contains("\naegis_capture_overflow_total 5\n"),
            "{text}"
        );
        assert!(text.contains("\naegis_captures_running 1\n"), "{text}");
        drop(session);
        let text = render(b.as_ref()).unwrap();
        assert!(
            text.contains("\naegis_capture_overflow_total 5\n"),
            "{text}"
        );
        assert!(text.contains("\naegis_captures_running 0\n"), "{text}");
    }

    #[test]
    fn renders_families_and_samples() {
        let text = render(backend().as_ref()).unwrap();
        for line in [
            "# TYPE aegis_drops_total counter",
            "aegis_drops_total{reason=\"no_route\"} 10",
            "aegis_controlplane_applied_revision 41",
            "aegis_controlplane_connected 1",
            "aegis_controlplane_apply_error 1",
            "# TYPE aegis_controlplane_nat_conflicts gauge",
            "aegis_controlplane_nat_conflicts 2",
            "# TYPE aegis_capture_overflow_total counter",
            "aegis_capture_overflow_total 0",
            "aegis_captures_running 0",
            "aegis_drops_total{reason=\"port_down\"} 0",
            "aegis_port_rx_packets_total{port=\"eth0\"} 7",
            "aegis_port_rx_bytes_total{port=\"eth0\"} 448",
            "aegis_port_rx_missed_total{port=\"eth0\"} 2",
            "aegis_port_admin_up{port=\"we\\\"ird\"} 0",
            "aegis_port_admin_up{port=\"eth0\"} 1",
            "aegis_node_packets_total{worker=\"0\",node=\"ip4-forward\"} 90",
            "aegis_node_clocks_total{worker=\"1\",node=\"ip4-forward\"} 800",
            "aegis_node_calls_total{worker=\"0\",node=\"ip4-forward\"} 3",
            "aegis_worker_idle_polls_total{worker=\"1\"} 60",
            "aegis_revision 2",
            "# TYPE aegis_security_group_denied_total counter",
            "aegis_security_group_denied_total{rule=\"default/ingress-deny\"} 3",
            "aegis_security_group_denied_total{rule=\"web/no-telnet\"} 0",
            "# TYPE aegis_conntrack_entries gauge",
            "aegis_conntrack_entries{worker=\"0\"} 0",
            "aegis_conntrack_capacity{worker=\"1\"} 4096",
            "aegis_vrrp_state{instance=\"VI_1\",state=\"MASTER\"} 1",
            "aegis_vrrp_state{instance=\"VI_1\",state=\"BACKUP\"} 0",
            "aegis_vrrp_priority{instance=\"VI_1\"} 150",
            "aegis_vrrp_transitions_total{instance=\"VI_1\"} 2",
            "aegis_vrrp_adverts_sent_total{instance=\"VI_1\"} 30",
            "aegis_vrrp_discarded_total{instance=\"VI_1\",reason=\"lower_priority\"} 4",
            "aegis_vrrp_refused_total{reason=\"vrrp_checksum\"} 1",
            "aegis_vrrp_state_seconds{instance=\"VI_1\"} 3",
            "aegis_vrrp_configured_priority{instance=\"VI_1\"} 150",
            "aegis_sync_master 1",
            "aegis_sync_sessions 7",
            "aegis_sync_bulk_completed_total 0",
            "aegis_sync_rejected_total{reason=\"auth\"} 2",
            "aegis_sync_lag_events{peer=\"10.0.0.2\"} 5",
            "aegis_sync_oldest_unacked_seconds{peer=\"10.0.0.2\"} 0.25",
            "aegis_sync_resends_total{peer=\"10.0.0.2\"} 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample belongs to a declared family.
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(declared.contains(&name), "undeclared {name}");
        }
    }

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_over_http() {
        let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap(), backend()).unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        let ok = get(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("text/plain; version=0.0.4"), "{ok}");
        assert!(
            ok.contains("aegis_drops_total{reason=\"no_route\"} 10"),
            "{ok}"
        );
        let missing = get(
            addr,
            "GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let post = get(
            addr,
            "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
