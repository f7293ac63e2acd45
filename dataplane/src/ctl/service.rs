//! The `aegis.dataplane.v1.DataplaneAdmin` gRPC service over an [`AdminBackend`]: parse the
//! request, call the backend on tokio's blocking pool, convert the reply.

use std::sync::Arc;

use aegis_api::dataplane::v1 as pb;
use pb::dataplane_admin_server::DataplaneAdmin;
use tonic::{Request, Response, Status};

use super::backend::{AdminBackend, AdminError};
use super::{capture, convert, request};

/// The stream of a `Capture` call.
type CaptureEvents = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::CaptureEvent, Status>> + Send + 'static>,
>;

/// The stream of a `TraceWatch` call.
type WatchEvents = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::TraceWatchEvent, Status>> + Send + 'static>,
>;

/// Events buffered between the capture task and the client.
const CAPTURE_CHANNEL: usize = 1024;

/// The admin service; cheap to clone.
#[derive(Clone)]
pub struct AdminService {
    backend: Arc<dyn AdminBackend>,
}

impl AdminService {
    /// A service answering from `backend`.
    pub fn new(backend: Arc<dyn AdminBackend>) -> Self {
        AdminService { backend }
    }

    /// The tonic server wrapper, ready for `Server::add_service`.
    pub fn into_server(self) -> pb::dataplane_admin_server::DataplaneAdminServer<Self> {
        pb::dataplane_admin_server::DataplaneAdminServer::new(self)
    }

    /// Runs `f` against the backend off the async threads (backends may block briefly).
    async fn call<T, F>(&self, f: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(&dyn AdminBackend) -> Result<T, AdminError> + Send + 'static,
    {
        let backend = Arc::clone(&self.backend);
        tokio::task::spawn_blocking(move || f(backend.as_ref()))
            .await
            .map_err(|e| Status::internal(format!("admin backend task failed: {e}")))?
            .map_err(Status::from)
    }

    /// Runs a mutation and wraps the new revision.
    async fn mutate<F>(&self, f: F) -> Result<Response<pb::MutationReply>, Status>
    where
        F: FnOnce(&dyn AdminBackend) -> Result<u64, AdminError> + Send + 'static,
    {
        let revision = self.call(f).await?;
        Ok(Response::new(pb::MutationReply { revision }))
    }
}

#[tonic::async_trait]
impl DataplaneAdmin for AdminService {
    async fn get_status(
        &self,
        _: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusReply>, Status> {
        let status = self.call(|b| b.status()).await?;
        Ok(Response::new(convert::status_reply(
            status,
            env!("CARGO_PKG_VERSION"),
        )))
    }

    async fn show_interfaces(
        &self,
        _: Request<pb::ShowInterfacesRequest>,
    ) -> Result<Response<pb::ShowInterfacesReply>, Status> {
        let ports = self.call(|b| b.interfaces()).await?;
        Ok(Response::new(convert::interfaces_reply(ports)))
    }

    async fn show_runtime(
        &self,
        _: Request<pb::ShowRuntimeRequest>,
    ) -> Result<Response<pb::ShowRuntimeReply>, Status> {
        let workers = self.call(|b| b.runtime()).await?;
        Ok(Response::new(convert::runtime_reply(workers)))
    }

    async fn show_errors(
        &self,
        _: Request<pb::ShowErrorsRequest>,
    ) -> Result<Response<pb::ShowErrorsReply>, Status> {
        let workers = self.call(|b| b.errors()).await?;
        Ok(Response::new(convert::errors_reply(workers)))
    }

    async fn show_routes(
        &self,
        _: Request<pb::ShowRoutesRequest>,
    ) -> Result<Response<pb::ShowRoutesReply>, Status> {
        let routes = self.call(|b| b.routes()).await?;
        Ok(Response::new(convert::routes_reply(routes)))
    }

    async fn show_neighbours(
        &self,
        _: Request<pb::ShowNeighboursRequest>,
    ) -> Result<Response<pb::ShowNeighboursReply>, Status> {
        let neighbours = self.call(|b| b.neighbours()).await?;
        Ok(Response::new(convert::neighbours_reply(neighbours)))
    }

    async fn show_connections(
        &self,
        req: Request<pb::ShowConnectionsRequest>,
    ) -> Result<Response<pb::ShowConnectionsReply>, Status> {
        let query = request::connection_query(req.into_inner())?;
        let workers = self.call(move |b| b.connections(&query)).await?;
        Ok(Response::new(convert::connections_reply(workers)))
    }

    async fn show_nat_sessions(
        &self,
        req: Request<pb::ShowNatSessionsRequest>,
    ) -> Result<Response<pb::ShowNatSessionsReply>, Status> {
        let query = request::nat_query(req.into_inner())?;
        let workers = self.call(move |b| b.nat_sessions(&query)).await?;
        Ok(Response::new(convert::nat_sessions_reply(workers)))
    }

    async fn show_vpcs(
        &self,
        req: Request<pb::ShowVpcsRequest>,
    ) -> Result<Response<pb::ShowVpcsReply>, Status> {
        let vpc = req.into_inner().vpc;
        let overlay = self.call(|b| b.overlay()).await?;
        Ok(Response::new(convert::vpcs_reply(overlay, &vpc)?))
    }

    async fn show_security_denials(
        &self,
        _: Request<pb::ShowSecurityDenialsRequest>,
    ) -> Result<Response<pb::ShowSecurityDenialsReply>, Status> {
        let denials = self.call(|b| b.security_denials()).await?;
        Ok(Response::new(convert::denials_reply(denials)))
    }

    async fn show_vrrp(
        &self,
        _: Request<pb::ShowVrrpRequest>,
    ) -> Result<Response<pb::ShowVrrpReply>, Status> {
        let info = self.call(|b| b.vrrp()).await?;
        Ok(Response::new(convert::vrrp_reply(info)))
    }

    type CaptureStream = CaptureEvents;

    async fn capture(
        &self,
        req: Request<pb::CaptureRequest>,
    ) -> Result<Response<Self::CaptureStream>, Status> {
        let query = capture::query(req.into_inner())?;
        let start = self.call(move |b| b.capture(query)).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(CAPTURE_CHANNEL);
        tokio::spawn(capture::stream(start, tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn show_sync(
        &self,
        _: Request<pb::ShowSyncRequest>,
    ) -> Result<Response<pb::ShowSyncReply>, Status> {
        let info = self.call(|b| b.sync()).await?;
        Ok(Response::new(convert::sync_reply(info)))
    }

    async fn inject_probe(
        &self,
        req: Request<pb::InjectProbeRequest>,
    ) -> Result<Response<pb::InjectProbeReply>, Status> {
        let q = super::trace::probe_query(req.into_inner()).map_err(Status::from)?;
        Ok(Response::new(self.call(move |b| b.inject_probe(q)).await?))
    }

    async fn trace_records(
        &self,
        req: Request<pb::TraceRecordsRequest>,
    ) -> Result<Response<pb::TraceRecordsReply>, Status> {
        let id = req.into_inner().trace_id;
        Ok(Response::new(
            self.call(move |b| b.trace_records(id)).await?,
        ))
    }

    type TraceWatchStream = WatchEvents;

    async fn trace_watch(
        &self,
        req: Request<pb::TraceWatchRequest>,
    ) -> Result<Response<Self::TraceWatchStream>, Status> {
        let query = super::watch::query(req.into_inner())?;
        let start = self.call(move |b| b.trace_watch(query)).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(CAPTURE_CHANNEL);
        tokio::spawn(super::watch::stream(start, self.backend.clone(), tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn add_route(
        &self,
        req: Request<pb::AddRouteRequest>,
    ) -> Result<Response<pb::MutationReply>, Status> {
        let spec = request::route_spec(req.into_inner())?;
        self.mutate(move |b| b.add_route(spec)).await
    }

    async fn delete_route(
        &self,
        req: Request<pb::DeleteRouteRequest>,
    ) -> Result<Response<pb::MutationReply>, Status> {
        let prefix = request::route_prefix(&req.into_inner().prefix)?;
        self.mutate(move |b| b.delete_route(prefix)).await
    }

    async fn add_address(
        &self,
        req: Request<pb::AddressRequest>,
    ) -> Result<Response<pb::MutationReply>, Status> {
        let req = req.into_inner();
        let address = request::interface_address(&req.address)?;
        let port = request::port_name(req.port)?;
        self.mutate(move |b| b.add_address(port, address)).await
    }

    async fn delete_address(
        &self,
        req: Request<pb::AddressRequest>,
    ) -> Result<Response<pb::MutationReply>, Status> {
        let req = req.into_inner();
        let address = request::interface_address(&req.address)?;
        let port = request::port_name(req.port)?;
        self.mutate(move |b| b.delete_address(port, address)).await
    }

    async fn set_port_state(
        &self,
        req: Request<pb::SetPortStateRequest>,
    ) -> Result<Response<pb::MutationReply>, Status> {
        let req = req.into_inner();
        let port = request::port_name(req.port)?;
        self.mutate(move |b| b.set_port_state(port, req.up)).await
    }

    async fn clear_counters(
        &self,
        _: Request<pb::ClearCountersRequest>,
    ) -> Result<Response<pb::MutationReply>, Status> {
        self.mutate(|b| b.clear_counters()).await
    }
}
