//! ADS over TLS (`--xds-tls-address`, 15012 like istiod): the same xDS service as the
//! plaintext port, behind server-authenticated TLS with lateend's serving certificate (see
//! [`crate::webhook::load_cert`]), and Istio's certificate API (`CreateCertificate`,
//! [`crate::mesh_ca`]) on the same port. Proxies verify lateend against the mesh CA's root;
//! a client is known by the mesh certificate it presents ([`crate::xds_peer`]) or, for ADS,
//! by its bearer token, checked as the certificate API checks it ([`crate::xds_auth`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lateen_xds::tonic::transport::server::Connected;
use lateen_xds::{AuthenticatedPeer, ConnectionOptions, XdsServer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::mesh_ca::auth::Authenticator;
use crate::xds_auth::AuthenticatedAds;

/// A peer that never finishes its handshake must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS connection handed to tonic, with what its handshake proved about the client.
pub struct TlsConnection(TlsStream<TcpStream>, AuthenticatedPeer);

impl Connected for TlsConnection {
    type ConnectInfo = AuthenticatedPeer;
    fn connect_info(&self) -> Self::ConnectInfo {
        self.1.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Serves ADS over TLS on `listener` until the task is dropped; `tls` should come from
/// [`crate::xds_peer::server_config`] for clients' certificates to be known, and ADS
/// streams' tokens are checked with `auth` when given.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    xds: XdsServer,
    certificates: Option<lateen_xds::ca_service::CertificateService>,
    auth: Option<Arc<Authenticator>>,
    options: ConnectionOptions,
) {
    let mut config = (*tls).clone();
    // gRPC needs HTTP/2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let (tx, rx) = mpsc::channel::<std::io::Result<TlsConnection>>(16);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "xDS TLS accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let peer = crate::xds_peer::peer_of(stream.get_ref().1);
                        let _ = tx.send(Ok(TlsConnection(stream, peer))).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "xDS TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "xDS TLS handshake timed out"),
                }
            });
        }
    });
    let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
    let (plain, authenticated) = match auth {
        Some(auth) => (None, Some(AuthenticatedAds::new(xds.service(), auth))),
        None => (Some(xds.service()), None),
    };
    if let Err(e) = options
        .server_builder()
        .add_optional_service(plain)
        .add_optional_service(authenticated)
        .add_optional_service(certificates)
        .serve_with_incoming(incoming)
        .await
    {
        tracing::error!(error = %e, "xDS TLS server stopped");
    }
}
