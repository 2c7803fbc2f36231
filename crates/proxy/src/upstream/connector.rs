//! Opening upstream connections for the worker's pool: TCP from the cluster's source
//! address, mesh mTLS when the target has it, then the HTTP/1.1 or HTTP/2 handshake; each
//! holds a slot of the worker's [`ConnBudget`], and when none is free the longest-idle
//! HTTP/1.1 connection is closed to make room. What is pooled, and for how long, is the
//! pool's (`pool.rs`).

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

use super::budget::{ConnBudget, ConnSlot, Slotted};
use super::limits::Usage;
use super::pool::{PooledStream, Target, UpstreamError};
use super::read_ahead::ReadAhead;
use super::read_buffer::{self, LargeBuffers};
use crate::http::body::ProxyBody;
use crate::metrics::{Metrics, ProxyStats};
use crate::tls::upstream::UpstreamStream;
use crate::tls::{MeshTls, UpstreamAlpn};

/// The request body type of upstream HTTP/1.1 connections. Boxed because hyper queues
/// requests to a connection in a channel whose blocks hold 32 requests inline, and a
/// connection keeps up to two blocks: the body's ~60 bytes inline cost ~3.5 KB per pooled
/// connection, the box one small allocation per request (bench/run.sh's h2c run holds 320
/// connections).
pub(super) type H1Body = Box<ProxyBody>;

/// An HTTP/1.1 connection, whether it reads with the large buffer (`read_buffer`), and how
/// long and for how many requests it has been used (its cluster's limits).
pub(super) struct H1Conn {
    pub(super) sender: http1::SendRequest<H1Body>,
    pub(super) large: bool,
    pub(super) usage: Usage,
}

/// A pooled HTTP/1.1 connection and when it was last handed out or returned. A stack keeps
/// its large-buffer connections on top, so they are the first handed out: a light load, or
/// a bulk transfer beside it, finds them idle.
pub(super) struct IdleH1 {
    pub(super) conn: H1Conn,
    pub(super) since: Instant,
}

pub(super) type IdleMap = Arc<Mutex<HashMap<Target, Vec<IdleH1>>>>;

/// Connects to `address`, from `source` when given.
async fn connect(address: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
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

/// What opening a connection needs, cloneable into a shared HTTP/2 connect.
#[derive(Clone)]
pub(super) struct Connector {
    pub(super) metrics: Arc<Metrics>,
    /// The proxy's certificate for mTLS targets; without it they cannot be reached.
    pub(super) mesh_tls: Option<Arc<MeshTls>>,
    pub(super) budget: Arc<ConnBudget>,
    /// Idle HTTP/1.1 connections, the first to close when the budget is spent.
    pub(super) idle_h1: IdleMap,
    /// Which new HTTP/1.1 connections read with a large buffer.
    pub(super) large_buffers: LargeBuffers,
}

impl Connector {
    /// A slot for a new connection, waiting up to `patience` for one to free.
    pub(super) async fn slot(&self, patience: Duration) -> Result<ConnSlot, UpstreamError> {
        let budget = &self.budget;
        if let Some(slot) = budget.try_take() {
            return Ok(slot);
        }
        self.close_idle(None);
        budget
            .wait_for(patience, || budget.try_take())
            .await
            .ok_or(UpstreamError::Overflow {
                limit: budget.limit(),
            })
    }

    /// Closes the longest-idle HTTP/1.1 connection (not one to `keep`, which the caller
    /// would rather reuse), so its slot frees once the connection has ended.
    pub(super) fn close_idle(&self, keep: Option<&Target>) {
        let closed = {
            let mut idle = self
                .idle_h1
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let oldest = idle
                .iter()
                .filter(|(target, _)| Some(*target) != keep)
                .flat_map(|(target, stack)| {
                    stack
                        .iter()
                        .enumerate()
                        .filter(|(_, pooled)| pooled.conn.sender.is_ready())
                        .map(move |(index, pooled)| (pooled.since, target.clone(), index))
                })
                .min_by_key(|(since, _, _)| *since);
            oldest.and_then(|(_, target, index)| {
                let stack = idle.get_mut(&target)?;
                let pooled = stack.remove(index);
                if stack.is_empty() {
                    idle.remove(&target);
                }
                Some(pooled)
            })
        };
        // Dropped outside the lock: the connection's task ends and frees the slot.
        drop(closed);
    }

    pub(super) async fn connect_h2(
        &self,
        target: &Target,
        connect_timeout: Duration,
        slot: ConnSlot,
    ) -> Result<http2::SendRequest<ProxyBody>, UpstreamError> {
        let stream = self
            .stream(target, connect_timeout, UpstreamAlpn::Http2, slot)
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

    /// A new connection to `target` holding `slot`: TCP, then mesh mTLS when the target has
    /// it. A failed handshake is a connect failure (Envoy's `UF`), as is a missing
    /// certificate.
    pub(super) async fn stream(
        &self,
        target: &Target,
        connect_timeout: Duration,
        alpn: UpstreamAlpn,
        slot: ConnSlot,
    ) -> Result<PooledStream, UpstreamError> {
        let stream = self.connect_tcp(target, connect_timeout).await?;
        let Some(tls) = &target.tls else {
            return Ok(Slotted::new(UpstreamStream::Plain(stream), slot));
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
            Ok(Ok(stream)) => Ok(Slotted::new(UpstreamStream::Tls(Box::new(stream)), slot)),
            Ok(Err(err)) => Err(failure(err.to_string())),
            Err(_) => Err(failure(format!(
                "TLS handshake timed out after {connect_timeout:?}"
            ))),
        }
    }

    pub(super) async fn connect_tcp(
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

    pub(super) async fn connect_h1(
        &self,
        target: &Target,
        connect_timeout: Duration,
        upgrades: bool,
        slot: ConnSlot,
    ) -> Result<H1Conn, UpstreamError> {
        let stream = self
            .stream(target, connect_timeout, UpstreamAlpn::Http1, slot)
            .await?;
        // A fixed read buffer instead of hyper's adaptive one from 8 KiB: 4 KiB for most
        // connections, which keeps a pool of hundreds small, and 64 KiB for a few per worker,
        // which carry bulk bodies in large chunks (`read_buffer`). Bulk bodies on the small
        // ones are still read from the socket in large gulps, by `ReadAhead` beneath hyper,
        // which holds memory only while bytes flow (issue #16 item 10).
        // An upgraded connection becomes a long-lived tunnel: never one of the large ones.
        let (read_buffer, large_buffer) = if upgrades {
            (read_buffer::SMALL, None)
        } else {
            self.large_buffers.for_new_connection()
        };
        let (sender, connection) = http1::Builder::new()
            .read_buf_exact_size(Some(read_buffer))
            .handshake(TokioIo::new(ReadAhead::new(stream)))
            .await
            .map_err(|err| UpstreamError::Connect {
                address: target.address,
                reason: err.to_string(),
            })?;
        let large = large_buffer.is_some();
        // The large buffer's claim lives as long as the connection's task (an upgraded
        // connection has none).
        if upgrades {
            tokio::spawn(async move {
                let _ = connection.with_upgrades().await;
            });
        } else {
            tokio::spawn(async move {
                let _ = connection.await;
                drop(large_buffer);
            });
        }
        Ok(H1Conn {
            sender,
            large,
            usage: Usage::new(),
        })
    }
}
