//! The admin gRPC server on a unix socket: socket preparation (parent directory, stale
//! socket, 0660 permissions), the tonic server with reflection, graceful shutdown, and
//! removal of the socket afterwards.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener as StdUnixListener, UnixStream as StdUnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_stream::wrappers::UnixListenerStream;

use super::backend::AdminBackend;
use super::service::AdminService;

/// Permissions of the admin socket: owner and group may connect.
const SOCKET_MODE: u32 = 0o660;

/// Why the admin server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// A filesystem or socket operation failed.
    #[error("admin socket {path}: cannot {action}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What was being done ("bind", "create the parent directory", ...).
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Something is listening on the socket already.
    #[error("admin socket {0} is in use (is another aegis-dataplane running?)")]
    InUse(PathBuf),
    /// The path exists and is not a socket; it is left alone.
    #[error("admin socket {0} exists and is not a socket; not removing it")]
    NotASocket(PathBuf),
    /// Building the reflection service failed.
    #[error("admin server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("admin server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A bound admin socket, not yet serving. Binding needs no async runtime, so a daemon can
/// fail early (socket in use, bad path) before it starts anything else.
pub struct AdminServer {
    listener: StdUnixListener,
    path: PathBuf,
    /// (device, inode) of the socket we created, so we only ever remove our own.
    ident: (u64, u64),
    backend: Arc<dyn AdminBackend>,
}

impl AdminServer {
    /// Creates the parent directory, removes a stale socket, binds `path` and sets its
    /// permissions to 0660. Fails with [`CtlError::InUse`] if a server answers there.
    pub fn bind(
        path: impl AsRef<Path>,
        backend: Arc<dyn AdminBackend>,
    ) -> Result<AdminServer, CtlError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |action| {
            let path = path.clone();
            move |source| CtlError::Io {
                path,
                action,
                source,
            }
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err("create the parent directory"))?;
        }
        remove_stale(&path)?;
        let listener = StdUnixListener::bind(&path).map_err(io_err("bind"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(SOCKET_MODE))
            .map_err(io_err("set permissions"))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("set non-blocking"))?;
        let meta = std::fs::symlink_metadata(&path).map_err(io_err("stat"))?;
        Ok(AdminServer {
            listener,
            ident: (meta.dev(), meta.ino()),
            path,
            backend,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests, removes the
    /// socket and returns. Must run inside a tokio runtime.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), CtlError> {
        let AdminServer {
            listener,
            path,
            ident,
            backend,
        } = self;
        let result = serve_listener(listener, &path, backend, shutdown).await;
        // Remove the socket only if it is still the one we bound.
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if (meta.dev(), meta.ino()) == ident {
                let _ = std::fs::remove_file(&path);
            }
        }
        result
    }
}

async fn serve_listener(
    listener: StdUnixListener,
    path: &Path,
    backend: Arc<dyn AdminBackend>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), CtlError> {
    let listener = tokio::net::UnixListener::from_std(listener).map_err(|source| CtlError::Io {
        path: path.to_path_buf(),
        action: "register with the runtime",
        source,
    })?;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(aegis_api::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    tonic::transport::Server::builder()
        .add_service(AdminService::new(backend).into_server())
        .add_service(reflection)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

/// Binds `path` and serves the admin API from `backend` until `shutdown` completes.
pub async fn serve_unix(
    path: impl AsRef<Path>,
    backend: Arc<dyn AdminBackend>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), CtlError> {
    AdminServer::bind(path, backend)?.serve(shutdown).await
}

/// Removes a socket left behind by a process that died; refuses to touch a live socket or
/// anything that is not a socket.
fn remove_stale(path: &Path) -> Result<(), CtlError> {
    let io_err = |action| {
        move |source| CtlError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("stat")(e)),
        Ok(meta) if !meta.file_type().is_socket() => Err(CtlError::NotASocket(path.into())),
        Ok(_) => match StdUnixStream::connect(path) {
            Ok(_) => Err(CtlError::InUse(path.into())),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(io_err("remove the stale socket"))
            }
            Err(e) => Err(io_err("probe the existing socket")(e)),
        },
    }
}
