//! Connection pools to upstream endpoints, one pool per worker thread (as Envoy does) so the
//! data path takes no cross-thread locks. HTTP/1.1 keeps a stack of idle connections per
//! endpoint, most recently used first; HTTP/2 keeps one multiplexed connection per endpoint.

use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;

use crate::http::body::ProxyBody;
use crate::metrics::{Metrics, ProxyStats};
use crate::tls::upstream::UpstreamStream;
use crate::tls::{MeshTls, UpstreamAlpn, UpstreamTlsRt};

/// Idle HTTP/1.1 connections kept per endpoint; more are closed when returned.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;
const UPSTREAM_READ_BUFFER: usize = 4096;

/// The request body type of upstream HTTP/1.1 connections. Boxed because hyper queues
/// requests to a connection in a channel whose blocks hold 32 requests inline, and a
/// connection keeps up to two blocks: the body's ~60 bytes inline cost ~3.5 KB per pooled
/// connection, the box one small allocation per request (bench/run.sh's h2c run holds 320
/// connections).
type H1Body = Box<ProxyBody>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamVersion {
    Http1,
    Http2,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The TCP connection could not be made (Envoy: `UF`, retry condition `connect-failure`).
    #[error("upstream connect error to {address}: {reason}")]
    Connect { address: SocketAddr, reason: String },
    /// The request was sent but the exchange failed (Envoy: `UC`, retry condition `reset`).
    #[error("upstream reset before response: {0}")]
    Reset(#[source] hyper::Error),
    /// The HTTP/2 peer refused the stream before processing it (`refused-stream`).
    #[error("upstream refused the stream: {0}")]
    RefusedStream(#[source] hyper::Error),
}

/// Where a pooled connection goes, the local address it comes from and its mesh mTLS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub address: SocketAddr,
    pub source: Option<IpAddr>,
    pub tls: Option<Arc<UpstreamTlsRt>>,
}

impl Target {
    /// `endpoint` of `cluster`, with the cluster's source address and mTLS (none to an
    /// auto-mTLS endpoint without a sidecar).
    pub fn of(cluster: &crate::config::snapshot::ClusterRt, endpoint: SocketAddr) -> Target {
        Target {
            address: endpoint,
            source: cluster.source_address,
            tls: cluster
                .tls
                .clone()
                .filter(|_| !cluster.plaintext_endpoints.contains(&endpoint)),
        }
    }
}

/// Connects to `address`, from `source` when given.
pub async fn connect(address: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(address).await;
    };
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(address).await
}

pub struct Pool {
    idle_h1: Mutex<HashMap<Target, Vec<http1::SendRequest<H1Body>>>>,
    h2: Mutex<HashMap<Target, http2::SendRequest<ProxyBody>>>,
    metrics: Arc<Metrics>,
    /// The proxy's certificate for mTLS targets; without it they cannot be reached.
    mesh_tls: Option<Arc<MeshTls>>,
}

impl Pool {
    pub fn new(metrics: Arc<Metrics>, mesh_tls: Option<Arc<MeshTls>>) -> Pool {
        Pool {
            idle_h1: Mutex::default(),
            h2: Mutex::default(),
            metrics,
            mesh_tls,
        }
    }

    /// Sends `request` to `address`, reusing a pooled connection when one is ready. A
    /// request that a stale pooled connection could not take is resent on a new connection.
    pub async fn send(
        &self,
        target: Target,
        version: UpstreamVersion,
        connect_timeout: Duration,
        request: http::Request<ProxyBody>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        match version {
            UpstreamVersion::Http1 => self.send_h1(target, connect_timeout, request).await,
            UpstreamVersion::Http2 => self.send_h2(target, connect_timeout, request).await,
        }
    }

    async fn send_h1(
        &self,
        target: Target,
        connect_timeout: Duration,
        request: http::Request<ProxyBody>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let mut request = request.map(Box::new);
        if let Some(mut sender) = self.checkout_h1(&target) {
            match sender.try_send_request(request).await {
                Ok(response) => {
                    self.checkin_h1(target, sender);
                    return Ok(response);
                }
                Err(mut err) => match err.take_message() {
                    // Never written: the connection was closed under us; use a new one.
                    Some(unsent) => request = unsent,
                    None => return Err(UpstreamError::Reset(err.into_error())),
                },
            }
        }
        // Boxed: connecting is rare under load (pooled connections are reused) and its state
        // would otherwise enlarge every request's future, in-flight requests being the bulk
        // of the proxy's memory.
        let mut sender = Box::pin(self.connect_h1(&target, connect_timeout, false)).await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(UpstreamError::Reset)?;
        self.checkin_h1(target, sender);
        Ok(response)
    }

    /// Sends a request that asks for a protocol upgrade on a connection of its own, which
    /// then belongs to the upgraded stream and never returns to the pool.
    pub async fn send_upgrade(
        &self,
        target: Target,
        connect_timeout: Duration,
        request: http::Request<ProxyBody>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let mut sender = Box::pin(self.connect_h1(&target, connect_timeout, true)).await?;
        sender
            .send_request(request.map(Box::new))
            .await
            .map_err(UpstreamError::Reset)
    }

    fn checkout_h1(&self, target: &Target) -> Option<http1::SendRequest<H1Body>> {
        let mut idle = self
            .idle_h1
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let stack = idle.get_mut(target)?;
        // Most recently used first; drop closed ones; skip ones still busy with a body.
        let mut index = stack.len();
        while index > 0 {
            index -= 1;
            if stack[index].is_closed() {
                stack.swap_remove(index);
            } else if stack[index].is_ready() {
                return Some(stack.swap_remove(index));
            }
        }
        None
    }

    /// Returns a connection right after its response head arrived; it becomes ready again
    /// when the response body has been read, and checkout skips it until then.
    fn checkin_h1(&self, target: Target, sender: http1::SendRequest<H1Body>) {
        let mut idle = self
            .idle_h1
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let stack = idle.entry(target).or_default();
        if stack.len() < MAX_IDLE_PER_ENDPOINT {
            stack.push(sender);
        }
    }

    async fn connect_h1(
        &self,
        target: &Target,
        connect_timeout: Duration,
        upgrades: bool,
    ) -> Result<http1::SendRequest<H1Body>, UpstreamError> {
        let stream = self
            .connect_stream(target, connect_timeout, UpstreamAlpn::Http1)
            .await?;
        // A fixed 4 KiB read buffer instead of hyper's adaptive one from 8 KiB: with one
        // upstream connection per concurrent request this halves the pool's memory, and
        // larger bodies are still read, in more calls.
        let (sender, connection) = http1::Builder::new()
            .read_buf_exact_size(Some(UPSTREAM_READ_BUFFER))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|err| UpstreamError::Connect {
                address: target.address,
                reason: err.to_string(),
            })?;
        if upgrades {
            tokio::spawn(async move {
                let _ = connection.with_upgrades().await;
            });
        } else {
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
        Ok(sender)
    }

    async fn send_h2(
        &self,
        target: Target,
        connect_timeout: Duration,
        request: http::Request<ProxyBody>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let existing = {
            let connections = self
                .h2
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            connections
                .get(&target)
                .filter(|sender| !sender.is_closed())
                .cloned()
        };
        let mut sender = match existing {
            Some(sender) => sender,
            None => {
                // Boxed, as in send_h1: one connection serves many requests.
                let sender = Box::pin(self.connect_h2(&target, connect_timeout)).await?;
                let mut connections = self
                    .h2
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                connections.insert(target, sender.clone());
                sender
            }
        };
        let sent = async {
            sender.ready().await?;
            sender.send_request(request).await
        };
        sent.await.map_err(|err| {
            if is_refused_stream(&err) {
                UpstreamError::RefusedStream(err)
            } else {
                UpstreamError::Reset(err)
            }
        })
    }

    async fn connect_h2(
        &self,
        target: &Target,
        connect_timeout: Duration,
    ) -> Result<http2::SendRequest<ProxyBody>, UpstreamError> {
        let stream = self
            .connect_stream(target, connect_timeout, UpstreamAlpn::Http2)
            .await?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            .keep_alive_interval(Duration::from_secs(30))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|err| UpstreamError::Connect {
                address: target.address,
                reason: err.to_string(),
            })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// A new connection to `target`: TCP, then mesh mTLS when the target has it. A failed
    /// handshake is a connect failure (Envoy's `UF`), as is a missing certificate.
    pub async fn connect_stream(
        &self,
        target: &Target,
        connect_timeout: Duration,
        alpn: UpstreamAlpn,
    ) -> Result<UpstreamStream, UpstreamError> {
        let stream = self.connect_tcp(target, connect_timeout).await?;
        let Some(tls) = &target.tls else {
            return Ok(UpstreamStream::Plain(stream));
        };
        let failure = |reason: String| {
            ProxyStats::incr(&self.metrics.stats.upstream_cx_connect_fail);
            UpstreamError::Connect {
                address: target.address,
                reason,
            }
        };
        match tokio::time::timeout(
            connect_timeout,
            crate::tls::upstream::connect_to(self.mesh_tls.as_deref(), tls, alpn, stream),
        )
        .await
        {
            Ok(Ok(stream)) => Ok(UpstreamStream::Tls(Box::new(stream))),
            Ok(Err(err)) => Err(failure(err.to_string())),
            Err(_) => Err(failure(format!(
                "TLS handshake timed out after {connect_timeout:?}"
            ))),
        }
    }

    async fn connect_tcp(
        &self,
        target: &Target,
        connect_timeout: Duration,
    ) -> Result<TcpStream, UpstreamError> {
        ProxyStats::incr(&self.metrics.stats.upstream_cx_total);
        let connected =
            tokio::time::timeout(connect_timeout, connect(target.address, target.source)).await;
        let failure = |reason: String| {
            ProxyStats::incr(&self.metrics.stats.upstream_cx_connect_fail);
            UpstreamError::Connect {
                address: target.address,
                reason,
            }
        };
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(failure(err.to_string())),
            Err(_) => return Err(failure(format!("timed out after {connect_timeout:?}"))),
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

fn is_refused_stream(err: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(h2_error) = current.downcast_ref::<h2::Error>() {
            return h2_error.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = current.source();
    }
    false
}
