//! The `aegis.dataplane.v1.DataplaneDiagnostics` gRPC service on TCP (host.toml
//! `diag_listen`): what the control plane asks of this host's dataplane (`aegisctl drops`,
//! `aegisctl capture --host`, `aegisctl gateway status`). Read-only: every RPC delegates to
//! its namesake in [`AdminService`] (`GatewayStatus` to `ShowVrrp` and `ShowSync`), so both
//! sockets answer from the same code; the mutations of the admin API are not reachable here.
//! Calls need the bearer token the dataplane presents to the control plane, when it has one
//! ([`TokenCheck`]).
//!
//! Adding a diagnostic: declare the RPC in `DataplaneDiagnostics` (admin.proto) and add its
//! delegation to the `impl` below — the one place that lists the RPCs served here.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use aegis_api::auth::TokenCheck;
use aegis_api::dataplane::v1 as pb;
use pb::dataplane_admin_server::DataplaneAdmin;
use pb::dataplane_diagnostics_server::{DataplaneDiagnostics, DataplaneDiagnosticsServer};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use super::backend::AdminBackend;
use super::service::AdminService;

/// Why the diagnostics listener could not start or failed.
#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    /// Binding or registering the listen address failed.
    #[error("diagnostics listener {addr}: cannot {action}: {source}")]
    Io {
        /// The listen address.
        addr: SocketAddr,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The gRPC server failed.
    #[error("diagnostics server {addr}: {source}")]
    Transport {
        /// The listen address.
        addr: SocketAddr,
        /// What tonic said.
        source: tonic::transport::Error,
    },
}

/// The diagnostics service: the read-only part of the admin service; cheap to clone.
#[derive(Clone)]
pub struct DiagnosticsService {
    admin: AdminService,
}

impl DiagnosticsService {
    /// A service answering from `backend`.
    pub fn new(backend: Arc<dyn AdminBackend>) -> Self {
        DiagnosticsService {
            admin: AdminService::new(backend),
        }
    }

    /// The tonic server, behind the token check.
    pub fn into_server(
        self,
        check: TokenCheck,
    ) -> InterceptedService<DataplaneDiagnosticsServer<Self>, TokenCheck> {
        InterceptedService::new(DataplaneDiagnosticsServer::new(self), check)
    }
}

#[tonic::async_trait]
impl DataplaneDiagnostics for DiagnosticsService {
    async fn show_errors(
        &self,
        req: Request<pb::ShowErrorsRequest>,
    ) -> Result<Response<pb::ShowErrorsReply>, Status> {
        self.admin.show_errors(req).await
    }

    async fn show_security_denials(
        &self,
        req: Request<pb::ShowSecurityDenialsRequest>,
    ) -> Result<Response<pb::ShowSecurityDenialsReply>, Status> {
        self.admin.show_security_denials(req).await
    }

    type CaptureStream = <AdminService as DataplaneAdmin>::CaptureStream;

    async fn capture(
        &self,
        req: Request<pb::CaptureRequest>,
    ) -> Result<Response<Self::CaptureStream>, Status> {
        self.admin.capture(req).await
    }

    async fn inject_probe(
        &self,
        req: Request<pb::InjectProbeRequest>,
    ) -> Result<Response<pb::InjectProbeReply>, Status> {
        self.admin.inject_probe(req).await
    }

    type TraceWatchStream = <AdminService as DataplaneAdmin>::TraceWatchStream;

    async fn trace_watch(
        &self,
        req: Request<pb::TraceWatchRequest>,
    ) -> Result<Response<Self::TraceWatchStream>, Status> {
        self.admin.trace_watch(req).await
    }

    async fn trace_records(
        &self,
        req: Request<pb::TraceRecordsRequest>,
    ) -> Result<Response<pb::TraceRecordsReply>, Status> {
        self.admin.trace_records(req).await
    }

    async fn gateway_status(
        &self,
        _: Request<pb::GatewayStatusRequest>,
    ) -> Result<Response<pb::GatewayStatusReply>, Status> {
        let vrrp = self
            .admin
            .show_vrrp(Request::new(pb::ShowVrrpRequest {}))
            .await?
            .into_inner();
        let sync = self
            .admin
            .show_sync(Request::new(pb::ShowSyncRequest {}))
            .await?
            .into_inner();
        let nat_conflicts = self
            .admin
            .get_status(Request::new(pb::GetStatusRequest {}))
            .await?
            .into_inner()
            .controlplane
            .map(|c| c.nat_conflicts)
            .unwrap_or_default();
        Ok(Response::new(pb::GatewayStatusReply {
            gateway: !vrrp.instances.is_empty() || sync.configured,
            vrrp: Some(vrrp),
            sync: Some(sync),
            nat_conflicts,
        }))
    }
}

/// A bound diagnostics listener, not yet serving. Binding needs no async runtime, so a bad
/// or busy address fails the daemon's start-up.
pub struct DiagServer {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    backend: Arc<dyn AdminBackend>,
    token: Option<String>,
}

impl DiagServer {
    /// Binds `addr` (port 0 picks a free port; see [`DiagServer::local_addr`]); calls must
    /// carry `token` when it is given.
    pub fn bind(
        addr: SocketAddr,
        backend: Arc<dyn AdminBackend>,
        token: Option<String>,
    ) -> Result<Self, DiagError> {
        let (listener, addr) =
            super::bind_listener(addr).map_err(|(action, source)| DiagError::Io {
                addr,
                action,
                source,
            })?;
        Ok(DiagServer {
            listener,
            addr,
            backend,
            token,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then finishes the calls in flight (captures end
    /// when the backend's capture hub closes).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), DiagError> {
        let DiagServer {
            listener,
            addr,
            backend,
            token,
        } = self;
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|source| DiagError::Io {
                addr,
                action: "register with the runtime",
                source,
            })?;
        let check = TokenCheck::new(token.as_deref());
        tonic::transport::Server::builder()
            .add_service(DiagnosticsService::new(backend).into_server(check))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown,
            )
            .await
            .map_err(|source| DiagError::Transport { addr, source })
    }
}

#[cfg(test)]
mod tests {
    use pb::dataplane_admin_client::DataplaneAdminClient;
    use pb::dataplane_diagnostics_client::DataplaneDiagnosticsClient;
    use tonic::transport::Channel;
    use tonic::Code;

    use super::*;
    use crate::ctl::{
        ControlPlaneStatus, MemoryBackend, PollMode, SyncInfo, VrrpInfo, VrrpInstanceInfo,
        WorkerInfo,
    };

    struct Running {
        channel: Channel,
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<Result<(), DiagError>>,
    }

    async fn start(token: Option<&str>) -> (Arc<MemoryBackend>, Running) {
        let b = Arc::new(MemoryBackend::new(
            PollMode::Adaptive,
            &[WorkerInfo { id: 0, lcore: 1 }],
        ));
        b.count_drop(0, "port_spoofed_ip", "source IP not the port's", 3)
            .unwrap();
        b.count_denial("sg-web/no-http", 2).unwrap();
        let server = DiagServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            b.clone(),
            token.map(str::to_owned),
        )
        .unwrap();
        let url = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
        (
            b,
            Running {
                channel,
                stop,
                task,
            },
        )
    }

    fn authorized<T>(msg: T, token: &str) -> Request<T> {
        let mut r = Request::new(msg);
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    }

    #[tokio::test]
    async fn answers_like_the_admin_service_with_the_token_only() {
        let (_b, run) = start(Some("tok")).await;
        let mut c = DataplaneDiagnosticsClient::new(run.channel.clone());
        let e = c
            .show_errors(pb::ShowErrorsRequest {})
            .await
            .expect_err("no token");
        assert_eq!(e.code(), Code::Unauthenticated);
        let errors = c
            .show_errors(authorized(pb::ShowErrorsRequest {}, "tok"))
            .await
            .unwrap()
            .into_inner();
        let spoofed = errors
            .total
            .iter()
            .find(|e| e.reason == "port_spoofed_ip")
            .expect("counted reason");
        assert_eq!(spoofed.count, 3);
        let denials = c
            .show_security_denials(authorized(pb::ShowSecurityDenialsRequest {}, "tok"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            denials
                .denials
                .iter()
                .map(|d| (d.rule.as_str(), d.count))
                .collect::<Vec<_>>(),
            [("sg-web/no-http", 2)]
        );
        run.stop.send(()).unwrap();
        run.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn mutations_are_not_served() {
        let (_b, run) = start(None).await;
        let mut admin = DataplaneAdminClient::new(run.channel.clone());
        let e = admin
            .clear_counters(pb::ClearCountersRequest {})
            .await
            .expect_err("not a diagnostics RPC");
        assert_eq!(e.code(), Code::Unimplemented);
        let e = admin
            .set_port_state(pb::SetPortStateRequest {
                port: "eth0".into(),
                up: false,
            })
            .await
            .expect_err("not a diagnostics RPC");
        assert_eq!(e.code(), Code::Unimplemented);
        run.stop.send(()).unwrap();
        run.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn gateway_status_is_show_vrrp_and_show_sync_or_says_not_a_gateway() {
        let (b, run) = start(None).await;
        let mut c = DataplaneDiagnosticsClient::new(run.channel.clone());
        let none = c
            .gateway_status(pb::GatewayStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(!none.gateway);
        assert!(none.vrrp.unwrap_or_default().instances.is_empty());
        assert!(!none.sync.unwrap_or_default().configured);

        b.set_vrrp(VrrpInfo {
            instances: vec![VrrpInstanceInfo {
                transitions: 3,
                ..VrrpInstanceInfo::new("VI_EXT", "eth0", 51, "MASTER", 200)
            }],
            ..VrrpInfo::default()
        });
        b.set_sync(Some(SyncInfo {
            role: "master".into(),
            vrrp_instance: "VI_EXT".into(),
            sessions: 7,
            synced: true,
            ..SyncInfo::default()
        }));
        let r = c
            .gateway_status(pb::GatewayStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(r.gateway);
        let vrrp = r.vrrp.unwrap_or_default();
        assert_eq!(vrrp.instances.len(), 1);
        assert_eq!(
            (
                vrrp.instances[0].name.as_str(),
                vrrp.instances[0].state.as_str(),
                vrrp.instances[0].vrid,
                vrrp.instances[0].transitions
            ),
            ("VI_EXT", "MASTER", 51, 3)
        );
        let sync = r.sync.unwrap_or_default();
        assert!(sync.configured && sync.synced);
        assert_eq!((sync.role.as_str(), sync.sessions), ("master", 7));
        assert!(r.nat_conflicts.is_empty());

        // The feed's NAT conflicts come along, for the group's problems.
        b.set_controlplane(Some(ControlPlaneStatus {
            host: "gw1".into(),
            nat_conflicts: vec!["the control plane's floating IP 203.0.113.20 clashes".into()],
            ..ControlPlaneStatus::default()
        }))
        .unwrap();
        let r = c
            .gateway_status(pb::GatewayStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            r.nat_conflicts,
            ["the control plane's floating IP 203.0.113.20 clashes"]
        );
        run.stop.send(()).unwrap();
        run.task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_capture_streams_through_it() {
        let (b, run) = start(None).await;
        let mut c = DataplaneDiagnosticsClient::new(run.channel.clone());
        let mut stream = c
            .capture(pb::CaptureRequest {
                count: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let first = stream.message().await.unwrap().expect("started");
        assert!(matches!(
            first.event,
            Some(pb::capture_event::Event::Started(_))
        ));
        drop(b);
        drop(stream);
        run.stop.send(()).unwrap();
        run.task.await.unwrap().unwrap();
    }
}
