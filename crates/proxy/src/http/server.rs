//! Serves one downstream HTTP connection: HTTP/1.1 (keep-alive, upgrades) with hyper, HTTP/2
//! with `h2` directly ([`super::h2_server`]), with the listener's limits, an idle timeout
//! counted while no request is in flight, and a graceful close when the proxy drains.

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};

use super::downstream_body::DownstreamBody;
use super::service::{ConnContext, handle};
use crate::drain::DrainWatch;

/// hyper refuses read buffers smaller than this.
const MIN_READ_BUFFER: usize = 8192;

/// Requests in flight on one connection, and when the last one ended, for the idle timeout.
pub struct ActiveRequests {
    active: AtomicUsize,
    idle_since_ms: AtomicU64,
    epoch: Instant,
}

impl ActiveRequests {
    pub fn new() -> ActiveRequests {
        ActiveRequests {
            active: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    pub fn begin(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    pub fn end(&self) {
        self.idle_since_ms
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// How long the connection has had no request in flight, if it has none now.
    fn idle_for(&self) -> Option<Duration> {
        if self.active.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(since))
    }
}

impl Default for ActiveRequests {
    fn default() -> Self {
        ActiveRequests::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    Http1,
    Http2,
}

/// A connection that can be asked to close gracefully.
pub(super) trait GracefulConnection: std::future::Future {
    fn close_gracefully(self: std::pin::Pin<&mut Self>);
}

impl<I, S> GracefulConnection for http1::UpgradeableConnection<I, S>
where
    http1::UpgradeableConnection<I, S>: std::future::Future,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn close_gracefully(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

pub async fn serve<I>(io: I, version: HttpVersion, ctx: Arc<ConnContext>, drain: DrainWatch)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = ctx.current().listener.limits.clone();
    let active = ctx.active.clone();
    match version {
        HttpVersion::Http1 => {
            let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                handle(ctx.clone(), request.map(DownstreamBody::Http1))
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .keep_alive(true)
                .max_buf_size(limits.max_header_bytes.max(MIN_READ_BUFFER))
                .max_headers(limits.max_headers)
                .header_read_timeout(limits.request_headers_timeout)
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            drive(connection, drain, &active, limits.idle_timeout).await;
        }
        HttpVersion::Http2 => {
            let connection = super::h2_server::H2Connection::new(io, &limits, ctx);
            drive(connection, drain, &active, limits.idle_timeout).await;
        }
    }
}

async fn drive<C>(
    connection: C,
    mut drain: DrainWatch,
    active: &ActiveRequests,
    idle_timeout: Duration,
) where
    C: GracefulConnection,
{
    let mut connection = std::pin::pin!(connection);
    let mut closing = drain.is_draining();
    if closing {
        connection.as_mut().close_gracefully();
    }
    let idle = tokio::time::sleep(idle_timeout);
    let mut idle = std::pin::pin!(idle);
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = drain.signaled(), if !closing => {
                closing = true;
                connection.as_mut().close_gracefully();
            }
            _ = idle.as_mut(), if !closing => {
                match active.idle_for() {
                    Some(idle_for) if idle_for >= idle_timeout => {
                        closing = true;
                        connection.as_mut().close_gracefully();
                    }
                    Some(idle_for) => idle.as_mut().reset(tokio::time::Instant::now() + (idle_timeout - idle_for)),
                    None => idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout),
                }
            }
        }
    }
}
