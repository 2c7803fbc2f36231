//! Opaque TCP proxying: connect to the cluster's endpoint and copy bytes both ways, passing
//! half-close along (one side's EOF becomes a write shutdown on the other). Istio's TCP
//! metrics are counted as bytes flow, not only at close.

use prometheus_client::metrics::counter::Counter;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::Snapshot;
use crate::config::model::Direction;
use crate::config::snapshot::{ClusterRt, ListenerRt};
use crate::metrics::{Metrics, PeerLabels, Reporter, ResponseFlags, TcpLabels};
use crate::stats_overrides::TcpRecord;
use crate::tls::{ConnSecurity, UpstreamAlpn};
use crate::upstream::{Pool, Target};

/// How a proxied connection went, for its access-log line.
#[derive(Debug, Default)]
pub struct TcpOutcome {
    pub upstream_host: Option<std::net::SocketAddr>,
    pub response_flags: ResponseFlags,
    /// Bytes from the downstream client to the upstream.
    pub received: u64,
    /// Bytes from the upstream to the downstream client.
    pub sent: u64,
}

pub async fn proxy<I>(
    downstream: I,
    cluster: &ClusterRt,
    snapshot: &Snapshot,
    listener: &ListenerRt,
    metrics: &Arc<Metrics>,
    pool: &Pool,
    security: &ConnSecurity,
) -> TcpOutcome
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let stats = listener.stats.as_deref();
    let mut labels = match listener.direction {
        Direction::Outbound => TcpLabels {
            reporter: Reporter::Source,
            source: snapshot.local.clone(),
            destination: cluster.destination.clone(),
            response_flags: ResponseFlags::NONE,
            security_policy: "unknown",
            custom: None,
        },
        Direction::Inbound => {
            let (source, destination, security_policy) = security.inbound_labels(
                Arc::new(PeerLabels::unknown()),
                cluster.inbound_destination.clone(),
            );
            TcpLabels {
                reporter: Reporter::Destination,
                source,
                destination,
                response_flags: ResponseFlags::NONE,
                security_policy,
                custom: None,
            }
        }
    };
    let mut outcome = TcpOutcome::default();
    // The pool counts the connection and its failures (TCP or TLS); this one is not pooled.
    let upstream = match cluster.pick_endpoint(None) {
        None => Err(ResponseFlags::UH),
        Some(endpoint) => {
            outcome.upstream_host = Some(endpoint);
            pool.connect_stream(
                &Target::of(cluster, endpoint),
                cluster.connect_timeout,
                UpstreamAlpn::Tcp,
            )
            .await
            .map_err(|err| {
                tracing::debug!(cluster = %cluster.name, "{err}");
                match err {
                    crate::upstream::UpstreamError::Overflow { .. } => ResponseFlags::UO,
                    _ => ResponseFlags::UF,
                }
            })
        }
    };
    let mut upstream = match upstream {
        Ok(stream) => stream,
        Err(flags) => {
            labels.response_flags = flags;
            TcpRecord::open(metrics, stats, &labels).close();
            outcome.response_flags = flags;
            return outcome;
        }
    };
    let record = TcpRecord::open(metrics, stats, &labels);
    let mut downstream = Counted {
        inner: downstream,
        received: record.received.clone(),
        sent: record.sent.clone(),
    };
    if let Ok((received, sent)) =
        tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await
    {
        outcome.received = received;
        outcome.sent = sent;
    }
    record.close();
    outcome
}

/// The downstream side of a TCP proxy: reads count as received, writes as sent.
struct Counted<I> {
    inner: I,
    received: Counter,
    sent: Counter,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.received.inc_by(read as u64);
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = result {
            self.sent.inc_by(written as u64);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
