//! Connection pools to upstream endpoints, one pool per worker thread (as Envoy does) so the
//! data path takes no cross-thread locks. HTTP/1.1 keeps a stack of idle connections per
//! endpoint, most recently used first; HTTP/2 keeps one multiplexed connection per endpoint,
//! which concurrent first requests wait for instead of each opening their own. Every
//! connection counts against the worker's [`ConnBudget`]; a request that finds neither an
//! idle connection nor a free slot waits (bounded in time and number) or gets 503 `UO`.
//! [`Pool::sweep`] closes connections idle too long and those to endpoints that left the
//! configuration, so endpoint churn does not grow the pool.

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::budget::{ConnBudget, ConnSlot, Slotted};
use super::connector::{Connector, H1Conn, IdleH1, IdleMap};
use super::limits::{IDLE_TIMEOUT, Usage, done_with};
use super::read_buffer::LargeBuffers;
use crate::config::model::ConnectionLimits;
use crate::http::body::ProxyBody;
use crate::metrics::Metrics;
use crate::tls::upstream::UpstreamStream;
use crate::tls::{MeshTls, UpstreamAlpn, UpstreamTlsRt};

/// Idle HTTP/1.1 connections kept per endpoint; more are closed when returned.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;

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
    /// The worker's upstream connections are all in use and none freed in time, or too
    /// many requests already wait for one (Envoy: 503 `UO`, never an outlier failure).
    #[error("upstream connection pool overflow ({limit} connections per worker)")]
    Overflow { limit: usize },
}

/// A connection stream that holds its slot in the worker's budget.
pub type PooledStream = Slotted<UpstreamStream>;

/// How a shared HTTP/2 connect ended for the requests that waited on it.
#[derive(Debug, Clone)]
enum ConnectFailure {
    Overflow { limit: usize },
    Failed { address: SocketAddr, reason: String },
}

impl From<ConnectFailure> for UpstreamError {
    fn from(failure: ConnectFailure) -> UpstreamError {
        match failure {
            ConnectFailure::Overflow { limit } => UpstreamError::Overflow { limit },
            ConnectFailure::Failed { address, reason } => {
                UpstreamError::Connect { address, reason }
            }
        }
    }
}

impl From<UpstreamError> for ConnectFailure {
    fn from(err: UpstreamError) -> ConnectFailure {
        match err {
            UpstreamError::Overflow { limit } => ConnectFailure::Overflow { limit },
            UpstreamError::Connect { address, reason } => {
                ConnectFailure::Failed { address, reason }
            }
            other => ConnectFailure::Failed {
                address: ([0, 0, 0, 0], 0).into(),
                reason: other.to_string(),
            },
        }
    }
}

type H2Connect = Shared<BoxFuture<'static, Result<http2::SendRequest<ProxyBody>, ConnectFailure>>>;

/// One endpoint's HTTP/2 connection, or the connect every request to it waits for.
enum H2Entry {
    Ready {
        sender: http2::SendRequest<ProxyBody>,
        last_used: Instant,
        usage: Usage,
    },
    Connecting(H2Connect),
}

/// How long an idle connection to an address no cluster names any more is kept: long
/// enough for a passthrough connection between a client's requests, short against churn.
pub const REMOVED_ENDPOINT_IDLE: Duration = Duration::from_secs(10);

/// Where a pooled connection goes, the local address it comes from, its mesh mTLS and the
/// limits its cluster puts on each connection (clusters with other limits pool apart).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub address: SocketAddr,
    pub source: Option<IpAddr>,
    pub tls: Option<Arc<UpstreamTlsRt>>,
    pub limits: ConnectionLimits,
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
            limits: cluster.limits,
        }
    }
}

pub struct Pool {
    h2: Mutex<HashMap<Target, H2Entry>>,
    connector: Connector,
}

impl Pool {
    /// A pool whose connections are bounded by Envoy's default of 1024 per worker.
    pub fn new(metrics: Arc<Metrics>, mesh_tls: Option<Arc<MeshTls>>) -> Pool {
        Pool::with_budget(metrics, mesh_tls, ConnBudget::new(1024))
    }

    pub fn with_budget(
        metrics: Arc<Metrics>,
        mesh_tls: Option<Arc<MeshTls>>,
        budget: Arc<ConnBudget>,
    ) -> Pool {
        Pool {
            h2: Mutex::default(),
            connector: Connector {
                metrics,
                mesh_tls,
                budget,
                idle_h1: IdleMap::default(),
                large_buffers: LargeBuffers::default(),
            },
        }
    }

    pub fn budget(&self) -> &Arc<ConnBudget> {
        &self.connector.budget
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
        // Boxed: waiting and connecting are rare under load (pooled connections are reused)
        // and their state would otherwise enlarge every request's future, in-flight requests
        // being the bulk of the proxy's memory.
        let checkout = match self.checkout_h1(&target) {
            Some(conn) => Checkout::Idle(conn),
            None => match self.connector.budget.try_take() {
                Some(slot) => Checkout::Slot(slot),
                None => Box::pin(self.idle_or_slot(&target, connect_timeout)).await?,
            },
        };
        let mut conn = match checkout {
            Checkout::Idle(mut conn) => match conn.sender.try_send_request(request).await {
                Ok(response) => {
                    self.checkin_h1(target, conn);
                    return Ok(response);
                }
                Err(mut err) => match err.take_message() {
                    // Never written: the connection was closed under us; use a new one.
                    Some(unsent) => {
                        request = unsent;
                        let slot = Box::pin(self.slot(connect_timeout)).await?;
                        Box::pin(
                            self.connector
                                .connect_h1(&target, connect_timeout, false, slot),
                        )
                        .await?
                    }
                    None => return Err(UpstreamError::Reset(err.into_error())),
                },
            },
            Checkout::Slot(slot) => {
                Box::pin(
                    self.connector
                        .connect_h1(&target, connect_timeout, false, slot),
                )
                .await?
            }
        };
        let response = conn
            .sender
            .send_request(request)
            .await
            .map_err(UpstreamError::Reset)?;
        self.checkin_h1(target, conn);
        Ok(response)
    }

    /// An idle connection to `target` or a slot for a new one, waiting up to `patience`
    /// for either once the worker's connections are all open.
    async fn idle_or_slot(
        &self,
        target: &Target,
        patience: Duration,
    ) -> Result<Checkout, UpstreamError> {
        let budget = &self.connector.budget;
        // Every slot is taken: an idle connection elsewhere gives its slot up.
        self.connector.close_idle(Some(target));
        budget
            .wait_for(patience, || {
                self.checkout_h1(target)
                    .map(Checkout::Idle)
                    .or_else(|| budget.try_take().map(Checkout::Slot))
            })
            .await
            .ok_or(UpstreamError::Overflow {
                limit: budget.limit(),
            })
    }

    /// A slot for a new connection, waiting up to `patience` for one to free.
    async fn slot(&self, patience: Duration) -> Result<ConnSlot, UpstreamError> {
        self.connector.slot(patience).await
    }

    /// Sends a request that asks for a protocol upgrade on a connection of its own, which
    /// then belongs to the upgraded stream and never returns to the pool.
    pub async fn send_upgrade(
        &self,
        target: Target,
        connect_timeout: Duration,
        request: http::Request<ProxyBody>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let slot = Box::pin(self.slot(connect_timeout)).await?;
        let mut conn = Box::pin(
            self.connector
                .connect_h1(&target, connect_timeout, true, slot),
        )
        .await?;
        conn.sender
            .send_request(request.map(Box::new))
            .await
            .map_err(UpstreamError::Reset)
    }

    fn checkout_h1(&self, target: &Target) -> Option<H1Conn> {
        let mut idle = self
            .connector
            .idle_h1
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let stack = idle.get_mut(target)?;
        // From the top (large buffers, then most recently used); drop closed ones and ones
        // done with by their cluster's limits; skip ones still busy with a body. `remove`,
        // not `swap_remove`, keeps the order.
        let now = Instant::now();
        let mut index = stack.len();
        while index > 0 {
            index -= 1;
            let IdleH1 { conn, since } = &stack[index];
            if conn.sender.is_closed()
                || (conn.sender.is_ready()
                    && done_with(&target.limits, IDLE_TIMEOUT, *since, &conn.usage, now))
            {
                stack.remove(index);
            } else if conn.sender.is_ready() {
                return Some(stack.remove(index).conn);
            }
        }
        None
    }

    /// Returns a connection right after its response head arrived; it becomes ready again
    /// when the response body has been read, and checkout skips it until then. While
    /// requests wait for a connection, it is watched instead and returned once ready, waking
    /// one of them.
    /// A connection that has carried its cluster's maximum of requests, or lived its
    /// maximum duration, is dropped instead: it closes once the response has been read.
    fn checkin_h1(&self, target: Target, mut conn: H1Conn) {
        if conn.usage.take_request(&target.limits) {
            return;
        }
        let budget = &self.connector.budget;
        if !budget.has_waiters() {
            push_idle(&self.connector.idle_h1, target, conn);
            return;
        }
        if conn.sender.is_ready() {
            push_idle(&self.connector.idle_h1, target, conn);
            budget.wake_one();
            return;
        }
        let idle = self.connector.idle_h1.clone();
        let budget = budget.clone();
        tokio::spawn(async move {
            if conn.sender.ready().await.is_ok() {
                push_idle(&idle, target, conn);
                budget.wake_one();
            }
        });
    }

    async fn send_h2(
        &self,
        target: Target,
        connect_timeout: Duration,
        request: http::Request<ProxyBody>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let mut sender = match self.h2_sender(&target, connect_timeout) {
            Ok(sender) => sender,
            // Boxed, as in send_h1: one connection serves many requests.
            Err(connecting) => {
                let connected = Box::pin(connecting).await;
                let mut connections = self
                    .h2
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                match connected {
                    Ok(sender) => {
                        // The first request to finish the connect publishes it, unless that
                        // one request is all its cluster lets it carry.
                        if matches!(connections.get(&target), Some(H2Entry::Connecting(_))) {
                            let mut usage = Usage::new();
                            if usage.take_request(&target.limits) {
                                connections.remove(&target);
                            } else {
                                connections.insert(
                                    target,
                                    H2Entry::Ready {
                                        sender: sender.clone(),
                                        last_used: Instant::now(),
                                        usage,
                                    },
                                );
                            }
                        }
                        sender
                    }
                    Err(failure) => {
                        if matches!(connections.get(&target), Some(H2Entry::Connecting(_))) {
                            connections.remove(&target);
                        }
                        return Err(failure.into());
                    }
                }
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

    /// The open HTTP/2 connection to `target`, or the connect to wait for (started here
    /// when no request has started one).
    fn h2_sender(
        &self,
        target: &Target,
        connect_timeout: Duration,
    ) -> Result<http2::SendRequest<ProxyBody>, H2Connect> {
        let mut connections = self
            .h2
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        // A connection done with by its cluster's limits leaves the pool, here or once the
        // request that spends it has its handle: the streams on it finish, and it closes
        // once they have and every handle to it is gone. A new one is connected meanwhile.
        let handed_out = match connections.get_mut(target) {
            Some(H2Entry::Ready {
                sender,
                last_used,
                usage,
            }) if !sender.is_closed()
                && !done_with(&target.limits, IDLE_TIMEOUT, *last_used, usage, now) =>
            {
                *last_used = now;
                Some((sender.clone(), usage.take_request(&target.limits)))
            }
            Some(H2Entry::Connecting(connecting)) => return Err(connecting.clone()),
            _ => None,
        };
        if let Some((sender, spent)) = handed_out {
            if spent {
                connections.remove(target);
            }
            return Ok(sender);
        }
        let connector = self.connector.clone();
        let owned = target.clone();
        let connecting = async move {
            let slot = connector.slot(connect_timeout).await?;
            connector
                .connect_h2(&owned, connect_timeout, slot)
                .await
                .map_err(ConnectFailure::from)
        }
        .boxed()
        .shared();
        connections.insert(target.clone(), H2Entry::Connecting(connecting.clone()));
        Err(connecting)
    }

    /// A new connection to `target` that is not pooled (TCP proxying), counted against the
    /// worker's budget while it is open.
    pub async fn connect_stream(
        &self,
        target: &Target,
        connect_timeout: Duration,
        alpn: UpstreamAlpn,
    ) -> Result<PooledStream, UpstreamError> {
        let slot = self.slot(connect_timeout).await?;
        self.connector
            .stream(target, connect_timeout, alpn, slot)
            .await
    }

    /// Closes pooled connections that are closed already, idle for longer than their
    /// cluster's idle timeout (`default_idle` when it sets none), past their cluster's
    /// maximum duration, or idle for `removed_idle` ([`REMOVED_ENDPOINT_IDLE`] in the
    /// workers) to an address not in `live` (an endpoint that left EDS), and forgets
    /// endpoints with nothing left pooled.
    pub fn sweep(
        &self,
        default_idle: Duration,
        removed_idle: Duration,
        live: &HashSet<SocketAddr>,
    ) {
        let now = Instant::now();
        let done = |target: &Target, since: Instant, usage: &Usage| {
            let idle_for = now.saturating_duration_since(since);
            done_with(&target.limits, default_idle, since, usage, now)
                || (!live.contains(&target.address) && idle_for >= removed_idle)
        };
        {
            let mut idle = self
                .connector
                .idle_h1
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            idle.retain(|target, stack| {
                // Busy connections stay: they are idle only once their response has ended.
                let keep = |pooled: &IdleH1| {
                    let conn = &pooled.conn;
                    let finished =
                        conn.sender.is_ready() && done(target, pooled.since, &conn.usage);
                    !conn.sender.is_closed() && !finished
                };
                stack.retain(keep);
                !stack.is_empty()
            });
        }
        let mut connections = self
            .h2
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        connections.retain(|target, entry| match entry {
            H2Entry::Ready {
                sender,
                last_used,
                usage,
            } => !sender.is_closed() && !done(target, *last_used, usage),
            H2Entry::Connecting(_) => true,
        });
    }

    /// Which pooled HTTP/1.1 connections to `address` read with the large buffer, bottom of
    /// the stack first, for tests.
    #[cfg(test)]
    pub fn idle_large_buffers(&self, address: SocketAddr) -> Vec<bool> {
        let idle = self
            .connector
            .idle_h1
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        idle.iter()
            .filter(|(target, _)| target.address == address)
            .flat_map(|(_, stack)| stack.iter().map(|pooled| pooled.conn.large))
            .collect()
    }

    /// Endpoints pooled now (HTTP/1.1 and HTTP/2), for tests of [`Pool::sweep`].
    pub fn pooled_endpoints(&self) -> usize {
        let idle = self
            .connector
            .idle_h1
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len();
        idle + self
            .h2
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }
}

/// What a request to an HTTP/1.1 endpoint gets from the pool.
enum Checkout {
    Idle(H1Conn),
    Slot(ConnSlot),
}

fn push_idle(idle: &IdleMap, target: Target, conn: H1Conn) {
    let mut idle = idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let stack = idle.entry(target).or_default();
    if stack.len() >= MAX_IDLE_PER_ENDPOINT {
        return;
    }
    // Below the large-buffer connections on top (at most `LARGE_PER_WORKER` of them).
    let below_large = if conn.large {
        stack.len()
    } else {
        stack.len()
            - stack
                .iter()
                .rev()
                .take_while(|pooled| pooled.conn.large)
                .count()
    };
    stack.insert(
        below_large,
        IdleH1 {
            conn,
            since: Instant::now(),
        },
    );
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
