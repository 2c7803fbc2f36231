//! The outbound side of mesh mTLS: a TCP connection to an endpoint becomes a TLS client
//! connection with the cluster's SNI, Istio's ALPN and the proxy's certificate.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{MeshTls, TlsError, UpstreamAlpn, UpstreamTlsRt};

/// Wraps `tcp` in TLS as `upstream` says.
pub async fn connect(
    mesh: &MeshTls,
    upstream: &UpstreamTlsRt,
    alpn: UpstreamAlpn,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, TlsError> {
    connect_to(Some(mesh), upstream, alpn, tcp).await
}

/// [`connect`] where the proxy may hold no mesh certificate: DestinationRule origination
/// (`upstream.origination`) needs none; mesh mTLS without one fails.
pub async fn connect_to(
    mesh: Option<&MeshTls>,
    upstream: &UpstreamTlsRt,
    alpn: UpstreamAlpn,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, TlsError> {
    let config = match (&upstream.origination, mesh) {
        (Some(origination), _) => origination.config(alpn),
        (None, Some(mesh)) => mesh.client_config(upstream, alpn)?,
        (None, None) => return Err(TlsError::NoCertificate),
    };
    tokio_rustls::TlsConnector::from(config)
        .connect(upstream.server_name.clone(), tcp)
        .await
        .map_err(TlsError::Handshake)
}

/// A connection to an upstream endpoint, plaintext or mesh mTLS.
pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(stream) => stream.is_write_vectored(),
            UpstreamStream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            UpstreamStream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
