//! gRPC client channels over unix sockets (the dataplane's admin socket).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

/// Connects to the gRPC server listening on the unix socket `path`. Every call on the
/// channel fails with `DEADLINE_EXCEEDED` after `timeout`. The connection is made before
/// this returns, so an absent or dead server is reported here.
pub async fn connect(
    path: impl Into<PathBuf>,
    timeout: Duration,
) -> Result<Channel, tonic::transport::Error> {
    let path = Arc::new(path.into());
    // The URI is required by the HTTP/2 layer but never resolved: the connector below
    // ignores it and dials the socket.
    Endpoint::from_static("http://localhost")
        .timeout(timeout)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = Arc::clone(&path);
            async move {
                let stream = tokio::net::UnixStream::connect(path.as_path()).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
}
