//! Serving SDS on a Unix socket (Istio's `./var/run/secrets/workload-spiffe-uds/socket`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use super::{SdsService, SecretsWatch};

/// How long a stop waits for open streams before leaving them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum SdsError {
    #[error("SDS socket {path}: {reason}")]
    Socket { path: PathBuf, reason: String },
    #[error("SDS server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Binds `path` (its folder made, a stale socket from an earlier run removed) and serves SDS
/// from `secrets` until `shutdown` completes (then streams still open get a second to end
/// and the socket file is removed).
pub async fn serve_unix(
    path: &Path,
    secrets: SecretsWatch,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), SdsError> {
    let error = |reason: String| SdsError::Socket {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| error(format!("making its folder: {e}")))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            std::fs::remove_file(path)
                .map_err(|e| error(format!("removing the old socket: {e}")))?;
        }
        Ok(_) => return Err(error("exists and is not a socket".into())),
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).map_err(|e| error(format!("binding: {e}")))?;
    tracing::info!(path = %path.display(), "serving SDS (workload certificates for Envoy)");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(SdsService::new(secrets).into_server())
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            let _ = stop_rx.await;
        });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return Ok(result?),
        () = shutdown => {}
    }
    let _ = stop_tx.send(());
    // Envoy keeps its SDS stream open for good; a graceful stop would wait for it forever.
    if let Ok(result) = tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        result?;
    } else {
        tracing::debug!("SDS streams still open at shutdown; leaving them");
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}
