//! Prometheus endpoint of a control-plane node: `GET /metrics` in the text exposition format.
//!
//! Families: `aegis_cp_up`, `aegis_cp_is_leader`, `aegis_cp_term`, `aegis_cp_revision`,
//! `aegis_cp_last_log_index`, `aegis_cp_last_applied_index`, `aegis_cp_members`,
//! `aegis_cp_cluster_ip_held`, `aegis_cp_cluster_ip_{acquired,released}_total`,
//! `aegis_cp_writes_total{result=ok|rejected|unavailable}`, `aegis_cp_writes_forwarded_total`,
//! `aegis_cp_heartbeats_total`, `aegis_cp_watchers`,
//! `aegis_cp_diag_calls_total{rpc=drops|capture|gateway_status}`, `aegis_cp_diag_forwarded_total`,
//! `aegis_cp_diag_unreachable_total`,
//! `aegis_cp_standby_reselections_total{result=ok|failed}`, and on the leader
//! `aegis_cp_host_alive{host}` and `aegis_cp_host_applied_revision{host}`.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use aegis_api::controlplane::v1::Kind;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use openraft::ServerState;
use tokio::sync::watch;

use super::node::{lock, Node};

/// Renders the metrics of `node`.
pub fn render(node: &Node) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let one = |v: f64| vec![(String::new(), v)];
    let (leader, term, last_log, applied, members) = {
        let m = node.raft.metrics();
        let m = m.borrow();
        (
            m.state == ServerState::Leader,
            m.current_term,
            m.last_log_index.unwrap_or(0),
            m.last_applied.map_or(0, |l| l.index),
            m.membership_config.membership().voter_ids().count(),
        )
    };
    let c = &node.counters;
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    gauge(
        "aegis_cp_up",
        "Seconds since the node started.",
        "gauge",
        &one(node.started.elapsed().as_secs_f64()),
    );
    gauge(
        "aegis_cp_is_leader",
        "1 if this node is the Raft leader.",
        "gauge",
        &one(f64::from(u8::from(leader))),
    );
    gauge(
        "aegis_cp_term",
        "Current Raft term.",
        "gauge",
        &one(term as f64),
    );
    gauge(
        "aegis_cp_revision",
        "Desired-state revision applied on this node.",
        "gauge",
        &one(node.machine.revision() as f64),
    );
    gauge(
        "aegis_cp_last_log_index",
        "Last Raft log index.",
        "gauge",
        &one(last_log as f64),
    );
    gauge(
        "aegis_cp_last_applied_index",
        "Last applied Raft log index.",
        "gauge",
        &one(applied as f64),
    );
    gauge(
        "aegis_cp_members",
        "Voting members.",
        "gauge",
        &one(members as f64),
    );
    gauge(
        "aegis_cp_cluster_ip_held",
        "1 if this node holds the cluster IP.",
        "gauge",
        &one(f64::from(u8::from(node.vip_held.load(Ordering::Relaxed)))),
    );
    gauge(
        "aegis_cp_cluster_ip_acquired_total",
        "Cluster IP acquisitions.",
        "counter",
        &one(n(&c.vip_acquired)),
    );
    gauge(
        "aegis_cp_cluster_ip_released_total",
        "Cluster IP releases.",
        "counter",
        &one(n(&c.vip_released)),
    );
    gauge(
        "aegis_cp_writes_total",
        "Writes received, by result.",
        "counter",
        &[
            ("{result=\"ok\"}".into(), n(&c.writes_ok)),
            ("{result=\"rejected\"}".into(), n(&c.writes_rejected)),
            ("{result=\"unavailable\"}".into(), n(&c.writes_unavailable)),
        ],
    );
    gauge(
        "aegis_cp_writes_forwarded_total",
        "Writes forwarded to the leader.",
        "counter",
        &one(n(&c.writes_forwarded)),
    );
    gauge(
        "aegis_cp_standby_reselections_total",
        "Gateway-group sync assignments written by the leader (first choices and re-selections after a member's host stopped heartbeating).",
        "counter",
        &[
            ("{result=\"ok\"}".into(), n(&c.standby_reselections)),
            ("{result=\"failed\"}".into(), n(&c.standby_reselect_failures)),
        ],
    );
    gauge(
        "aegis_cp_heartbeats_total",
        "Agent heartbeats received.",
        "counter",
        &one(n(&c.heartbeats)),
    );
    gauge(
        "aegis_cp_diag_calls_total",
        "Diagnostics calls (Drops and GatewayStatus received; captures proxied to a dataplane).",
        "counter",
        &[
            ("{rpc=\"drops\"}".into(), n(&c.diag_drops)),
            ("{rpc=\"capture\"}".into(), n(&c.diag_captures)),
            ("{rpc=\"trace_watch\"}".into(), n(&c.diag_watches)),
            ("{rpc=\"gateway_status\"}".into(), n(&c.diag_gateway_status)),
        ],
    );
    gauge(
        "aegis_cp_diag_forwarded_total",
        "Diagnostics calls forwarded to the leader.",
        "counter",
        &one(n(&c.diag_forwarded)),
    );
    gauge(
        "aegis_cp_diag_unreachable_total",
        "Hosts a diagnostics call could not reach (down, no diag address, dataplane error).",
        "counter",
        &one(n(&c.diag_unreachable)),
    );
    gauge(
        "aegis_cp_watchers",
        "Open watch streams.",
        "gauge",
        &one(n(&c.watchers)),
    );
    if leader {
        let hosts: Vec<String> = node
            .machine
            .read()
            .state
            .list(Kind::Host)
            .into_iter()
            .map(|o| o.name.clone())
            .collect();
        let live = lock(&node.liveness);
        let now = Instant::now();
        let statuses: Vec<_> = hosts.iter().map(|h| live.status(now, h, 0)).collect();
        let label = |h: &str| {
            format!(
                "{{host=\"{}\"}}",
                h.replace('\\', "\\\\").replace('"', "\\\"")
            )
        };
        gauge(
            "aegis_cp_host_alive",
            "1 if the host's agent heartbeats arrive.",
            "gauge",
            &statuses
                .iter()
                .map(|s| (label(&s.name), f64::from(u8::from(s.alive))))
                .collect::<Vec<_>>(),
        );
        gauge(
            "aegis_cp_host_applied_revision",
            "Revision the host's agent last reported applied.",
            "gauge",
            &statuses
                .iter()
                .map(|s| (label(&s.name), s.applied_revision as f64))
                .collect::<Vec<_>>(),
        );
    }
    out
}

/// Serves `/metrics` on `addr` until `stop`.
pub async fn serve(
    node: Arc<Node>,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(s) => s,
                Err(_) => continue,
            },
            _ = stop.changed() => return Ok(()),
        };
        let node = node.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let node = node.clone();
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        let mut r = Response::new(Full::new(Bytes::from(render(&node))));
                        r.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static(
                                "text/plain; version=0.0.4; charset=utf-8",
                            ),
                        );
                        r
                    } else {
                        let mut r = Response::new(Full::new(Bytes::from_static(
                            b"not found; try /metrics\n",
                        )));
                        *r.status_mut() = StatusCode::NOT_FOUND;
                        r
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
