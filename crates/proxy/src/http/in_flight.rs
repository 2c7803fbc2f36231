//! One request from the moment it arrives until it is recorded: [`InFlight`] counts it in
//! (`downstream_rq_total`, `downstream_rq_active`, the connection's requests in flight for its
//! idle timeout) and, whatever happens to it, records it exactly once and releases what it
//! holds. A request the client abandons before the response headers (hyper drops the request's
//! future) is recorded as Envoy and Istio record it: `response_code="0"`, flag `DC`.

use std::sync::Arc;
use std::time::Instant;

use super::body::RequestRecord;
use super::service::{ConnContext, Current};
use crate::config::snapshot::ClusterRt;
use crate::metrics::{PeerLabels, ProxyStats, RequestLabels, ResponseFlags};

pub struct InFlight {
    ctx: Arc<ConnContext>,
    current: Arc<Current>,
    protocol: &'static str,
    started: Instant,
    pub record: Arc<RequestRecord>,
    /// The cluster the request was routed to, once it is known (for an abandoned request's
    /// destination labels).
    pub cluster: Option<Arc<ClusterRt>>,
    /// The calling sidecar's identity (inbound), once known.
    pub peer: Option<Arc<PeerLabels>>,
    /// What the listener's metrics overrides read of the request, when they read it.
    pub stats_attrs: Option<Box<crate::stats_overrides::RequestAttrs>>,
    recorded: bool,
}

impl InFlight {
    /// Counts a request in; `protocol` is `http` or `grpc`.
    pub fn begin(ctx: Arc<ConnContext>, current: Arc<Current>, protocol: &'static str) -> Self {
        ctx.active.begin();
        ProxyStats::incr(&ctx.metrics.stats.downstream_rq_total);
        ProxyStats::incr(&ctx.metrics.stats.downstream_rq_active);
        InFlight {
            ctx,
            current,
            protocol,
            started: Instant::now(),
            record: RequestRecord::new(protocol == "grpc"),
            cluster: None,
            peer: None,
            stats_attrs: None,
            recorded: false,
        }
    }

    pub fn ctx(&self) -> &Arc<ConnContext> {
        &self.ctx
    }

    pub fn current(&self) -> &Arc<Current> {
        &self.current
    }

    pub fn protocol(&self) -> &'static str {
        self.protocol
    }

    /// Records the request with `labels` and releases it.
    pub fn finish(mut self, labels: &RequestLabels, response_bytes: u64, response_messages: u64) {
        self.record_once(labels, response_bytes, response_messages);
    }

    fn record_once(&mut self, labels: &RequestLabels, response_bytes: u64, response_messages: u64) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let elapsed_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let request_bytes = self
            .record
            .request_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        let metrics = &self.ctx.metrics;
        let grpc = self.protocol == "grpc";
        if let Some(table) = &self.current.listener.stats {
            let attrs = self.stats_attrs.as_deref();
            crate::stats_overrides::record_request(
                metrics,
                table,
                labels,
                attrs,
                elapsed_ms,
                request_bytes,
                response_bytes,
            );
            if grpc {
                let sent = self.record.request_messages();
                crate::stats_overrides::record_grpc_messages(
                    metrics,
                    table,
                    labels,
                    attrs,
                    sent,
                    response_messages,
                );
            }
        } else {
            metrics.record_request(labels, elapsed_ms, request_bytes, response_bytes);
            if grpc {
                metrics.record_grpc_messages(
                    labels,
                    self.record.request_messages(),
                    response_messages,
                );
            }
        }
        ProxyStats::decr(&self.ctx.metrics.stats.downstream_rq_active);
        self.ctx.active.end();
    }
}

impl Drop for InFlight {
    /// Abandoned before its response was handed over: no response code, the client's doing.
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        let mut labels = self.ctx.labels(
            &self.current,
            self.cluster.as_deref(),
            self.peer.as_ref(),
            self.protocol,
        );
        labels.response_code = 0;
        labels.response_flags = ResponseFlags::DC;
        self.record_once(&labels, 0, 0);
    }
}
