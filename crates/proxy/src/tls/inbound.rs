//! The inbound side of mesh mTLS: Envoy's TLS inspector (is the first byte a TLS handshake
//! record? the ClientHello's SNI and ALPN) and termination with a required client
//! certificate, whose SPIFFE identity becomes the connection's peer identity.

use std::sync::Arc;
use std::time::Duration;

use lateen_identity::Identity;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::{MeshTls, TlsError};
use crate::config::model::MtlsMode;
use crate::config::snapshot::ListenerRt;
use crate::metrics::ProxyStats;
use crate::net::detect::Detected;

/// A TLS handshake that does not finish in this time is dropped (a client that opens and
/// stalls must not hold the connection forever).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The TLS record type of a handshake: every ClientHello starts with it, no HTTP method does.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What the first bytes of a connection are, read without consuming them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstBytes {
    Tls,
    Plaintext,
    /// Closed, or nothing within the listener's detection budget.
    Nothing,
}

/// Peeks at the first byte; `timeout` zero waits as long as the client stays connected.
pub async fn sniff(stream: &TcpStream, timeout: Duration) -> FirstBytes {
    let mut first = [0u8; 1];
    let peeked = if timeout.is_zero() {
        Ok(stream.peek(&mut first).await)
    } else {
        tokio::time::timeout(timeout, stream.peek(&mut first)).await
    };
    match peeked {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => FirstBytes::Tls,
        Ok(Ok(1)) => FirstBytes::Plaintext,
        Ok(_) => FirstBytes::Nothing,
        Err(_elapsed) => FirstBytes::Plaintext,
    }
}

/// A terminated mesh mTLS connection.
pub struct Terminated {
    pub stream: TlsStream<TcpStream>,
    /// The client's SPIFFE identity, from its verified certificate.
    pub peer: Arc<Identity>,
    pub sni: Option<String>,
    /// The protocol inside, when ALPN says it (`istio-h2`, `istio-http/1.1`, or a negotiated
    /// `h2`/`http/1.1`); otherwise the inner bytes are sniffed.
    pub protocol_hint: Option<Detected>,
    /// The key exchange group negotiated (`X25519MLKEM768` when both ends offer it).
    pub key_exchange_group: Option<String>,
    /// `TLSv1_3` or `TLSv1_2`.
    pub protocol_version: Option<String>,
}

/// Completes the server handshake; fails for a client without a certificate the mesh roots
/// signed, an expired one, or one without a SPIFFE identity.
pub async fn terminate(mesh: &MeshTls, stream: TcpStream) -> Result<Terminated, TlsError> {
    let handshake = async {
        let acceptor =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
        let start = acceptor.await.map_err(TlsError::Handshake)?;
        let hello = start.client_hello();
        let sni = hello.server_name().map(str::to_string);
        let offered: Vec<Vec<u8>> = hello
            .alpn()
            .map(|protocols| protocols.map(<[u8]>::to_vec).collect())
            .unwrap_or_default();
        let offers = |alpn: &[u8]| offered.iter().any(|p| p == alpn);
        let config = mesh.server_config(offers(super::ALPN_H2) || offers(super::ALPN_HTTP11))?;
        let stream = start
            .into_stream(config)
            .await
            .map_err(TlsError::Handshake)?;
        let connection = stream.get_ref().1;
        let leaf = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .ok_or_else(|| TlsError::Certificate("the client sent no certificate".into()))?;
        let peer = lateen_identity::identity_of(leaf)
            .map_err(|err| TlsError::Certificate(format!("client certificate: {err}")))?;
        let protocol_hint = match connection.alpn_protocol() {
            Some(super::ALPN_H2) => Some(Detected::Http2),
            Some(super::ALPN_HTTP11) => Some(Detected::Http1),
            _ if offers(super::ALPN_ISTIO_H2) => Some(Detected::Http2),
            _ if offers(super::ALPN_ISTIO_HTTP11) || offers(super::ALPN_ISTIO_HTTP10) => {
                Some(Detected::Http1)
            }
            _ => None,
        };
        let protocol_version = connection
            .protocol_version()
            .map(|version| format!("{version:?}"));
        let key_exchange_group = connection
            .negotiated_key_exchange_group()
            .map(|group| format!("{:?}", group.name()));
        Ok(Terminated {
            stream,
            peer: Arc::new(peer),
            sni,
            protocol_hint,
            key_exchange_group,
            protocol_version,
        })
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .unwrap_or_else(|_| {
            Err(TlsError::Handshake(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("not finished in {HANDSHAKE_TIMEOUT:?}"),
            )))
        })
}

/// A connection an inbound listener takes, by its mTLS mode.
pub enum Accepted {
    Plain(TcpStream),
    Mtls(Box<Terminated>),
}

/// Applies the listener's mode: DISABLE takes every connection as it is; PERMISSIVE
/// terminates TLS and takes plaintext too; STRICT closes plaintext. `None`: closed.
pub async fn accept(
    stream: TcpStream,
    listener: &ListenerRt,
    shared: &crate::worker::Shared,
) -> Option<Accepted> {
    if listener.mtls == MtlsMode::Disable {
        return Some(Accepted::Plain(stream));
    }
    let stats = &shared.metrics.stats;
    let peer = stream.peer_addr().ok();
    match sniff(&stream, listener.detect_timeout).await {
        FirstBytes::Nothing => None,
        FirstBytes::Plaintext if listener.mtls == MtlsMode::Strict => {
            ProxyStats::incr(&stats.no_filter_chain_match);
            tracing::debug!(listener = %listener.name, ?peer, "STRICT mTLS: plaintext connection refused");
            None
        }
        FirstBytes::Plaintext => Some(Accepted::Plain(stream)),
        FirstBytes::Tls => {
            let Some(mesh) = &shared.mesh_tls else {
                ProxyStats::incr(&stats.ssl_connection_error);
                tracing::warn!(listener = %listener.name, ?peer, "mTLS connection refused: the proxy has no workload certificate source");
                return None;
            };
            match terminate(mesh, stream).await {
                Ok(terminated) => {
                    ProxyStats::incr(&stats.ssl_handshake);
                    tracing::debug!(listener = %listener.name, ?peer, identity = %terminated.peer, sni = ?terminated.sni, group = ?terminated.key_exchange_group, version = ?terminated.protocol_version, "mTLS connection");
                    Some(Accepted::Mtls(Box::new(terminated)))
                }
                Err(err) => {
                    ProxyStats::incr(&stats.ssl_connection_error);
                    tracing::debug!(listener = %listener.name, ?peer, "mTLS handshake refused: {err}");
                    None
                }
            }
        }
    }
}
