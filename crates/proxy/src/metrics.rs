//! Istio's standard metrics (`istio_requests_total`, `istio_request_duration_milliseconds`,
//! `istio_request_bytes`, `istio_response_bytes`, `istio_tcp_*`) with Istio's label names and
//! `unknown` for values the proxy does not know, plus the proxy's own counters for `/stats`.
//! Served by the admin module, never on the data-path threads.

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::series_cap::{DEFAULT_MAX_SERIES, SeriesCap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const UNKNOWN: &str = "unknown";

/// Labels describing one side of a connection (a workload and, for destinations, the
/// service). Absent values are exported as `unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerLabels {
    pub workload: Arc<str>,
    pub namespace: Arc<str>,
    pub app: Arc<str>,
    pub version: Arc<str>,
    pub principal: Arc<str>,
    pub cluster: Arc<str>,
    pub canonical_service: Arc<str>,
    pub canonical_revision: Arc<str>,
    pub service: Arc<str>,
    pub service_name: Arc<str>,
    pub service_namespace: Arc<str>,
}

impl PeerLabels {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        workload: Option<&str>,
        namespace: Option<&str>,
        app: Option<&str>,
        version: Option<&str>,
        principal: Option<&str>,
        cluster: Option<&str>,
        service: Option<&str>,
        service_name: Option<&str>,
    ) -> PeerLabels {
        let label = |value: Option<&str>| -> Arc<str> {
            Arc::from(value.filter(|v| !v.is_empty()).unwrap_or(UNKNOWN))
        };
        // Istio derives the canonical service from the app label, else the workload name,
        // and the canonical revision from the version label, else "latest".
        let canonical_service = app.or(workload);
        let service_name =
            service_name.or_else(|| service.map(|host| host.split('.').next().unwrap_or(host)));
        let service_namespace = service
            .and_then(|host| host.split('.').nth(1))
            .or(namespace);
        PeerLabels {
            workload: label(workload),
            namespace: label(namespace),
            app: label(app),
            version: label(version),
            principal: label(principal),
            cluster: label(cluster),
            canonical_service: label(canonical_service),
            canonical_revision: Arc::from(version.filter(|v| !v.is_empty()).unwrap_or("latest")),
            service: label(service),
            service_name: label(service_name),
            service_namespace: label(service_namespace),
        }
    }

    pub fn unknown() -> PeerLabels {
        PeerLabels::new(None, None, None, None, None, None, None, None)
    }

    /// This proxy's workload as the destination of `service` (for inbound traffic).
    pub fn local_destination(local: &PeerLabels, service: &PeerLabels) -> PeerLabels {
        PeerLabels {
            service: service.service.clone(),
            service_name: service.service_name.clone(),
            service_namespace: service.service_namespace.clone(),
            ..local.clone()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reporter {
    Source,
    Destination,
}

impl Reporter {
    fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }
}

/// Envoy's response flags (the subset this proxy sets), printed comma-separated in Envoy's
/// order, `-` when none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ResponseFlags(u16);

impl ResponseFlags {
    pub const NONE: ResponseFlags = ResponseFlags(0);
    /// No healthy upstream host.
    pub const UH: ResponseFlags = ResponseFlags(1);
    /// Upstream connection failure.
    pub const UF: ResponseFlags = ResponseFlags(1 << 1);
    /// Upstream overflow (circuit breaking).
    pub const UO: ResponseFlags = ResponseFlags(1 << 2);
    /// No route configured.
    pub const NR: ResponseFlags = ResponseFlags(1 << 3);
    /// Upstream request timeout.
    pub const UT: ResponseFlags = ResponseFlags(1 << 4);
    /// Upstream connection termination (reset mid-response).
    pub const UC: ResponseFlags = ResponseFlags(1 << 5);
    /// Upstream retry limit exceeded.
    pub const URX: ResponseFlags = ResponseFlags(1 << 6);
    /// Downstream connection termination.
    pub const DC: ResponseFlags = ResponseFlags(1 << 7);
    /// Injected fault (abort).
    pub const FI: ResponseFlags = ResponseFlags(1 << 8);
    /// Injected fault (delay).
    pub const DI: ResponseFlags = ResponseFlags(1 << 9);
    /// Upstream protocol error (e.g. a 101 for a protocol the client did not ask for).
    pub const UPE: ResponseFlags = ResponseFlags(1 << 10);
    /// Downstream protocol error (e.g. a malformed chunk size from the client).
    pub const DPE: ResponseFlags = ResponseFlags(1 << 11);

    const NAMES: [(ResponseFlags, &'static str); 12] = [
        (Self::UH, "UH"),
        (Self::UF, "UF"),
        (Self::UO, "UO"),
        (Self::NR, "NR"),
        (Self::URX, "URX"),
        (Self::DC, "DC"),
        (Self::UT, "UT"),
        (Self::UC, "UC"),
        (Self::DI, "DI"),
        (Self::FI, "FI"),
        (Self::DPE, "DPE"),
        (Self::UPE, "UPE"),
    ];

    pub fn with(self, other: ResponseFlags) -> ResponseFlags {
        ResponseFlags(self.0 | other.0)
    }

    pub fn contains(self, other: ResponseFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// Labels of the HTTP request metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    pub reporter: Reporter,
    pub source: Arc<PeerLabels>,
    pub destination: Arc<PeerLabels>,
    /// `http` or `grpc`.
    pub request_protocol: &'static str,
    pub response_code: u16,
    pub grpc_status: Option<u16>,
    pub response_flags: ResponseFlags,
    pub security_policy: &'static str,
    /// The labels a Telemetry override made of the standard ones (`None` on the fast path);
    /// when set, the series is exactly these and the other fields are placeholders.
    pub custom: Option<Arc<CustomLabels>>,
}

/// Labels of the TCP metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TcpLabels {
    pub reporter: Reporter,
    pub source: Arc<PeerLabels>,
    pub destination: Arc<PeerLabels>,
    pub response_flags: ResponseFlags,
    pub security_policy: &'static str,
    /// As [`RequestLabels::custom`].
    pub custom: Option<Arc<CustomLabels>>,
}

/// A label set made by Telemetry overrides: the names (fixed per metric and listener, shared)
/// and this series' values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomLabels {
    pub names: Arc<[Arc<str>]>,
    pub values: Box<[Box<str>]>,
}

impl CustomLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let labels: Vec<(&str, &str)> = self
            .names
            .iter()
            .zip(self.values.iter())
            .map(|(name, value)| (&**name, &**value))
            .collect();
        labels.as_slice().encode(encoder)
    }
}

/// The peer placeholder of a custom label set (one shared allocation).
fn placeholder_peer() -> Arc<PeerLabels> {
    static PEER: std::sync::OnceLock<Arc<PeerLabels>> = std::sync::OnceLock::new();
    PEER.get_or_init(|| Arc::new(PeerLabels::unknown())).clone()
}

fn peer_labels<'a>(
    out: &mut Vec<(&'static str, &'a str)>,
    source: &'a PeerLabels,
    destination: &'a PeerLabels,
) {
    out.extend([
        ("source_workload", &*source.workload),
        ("source_canonical_service", &*source.canonical_service),
        ("source_canonical_revision", &*source.canonical_revision),
        ("source_workload_namespace", &*source.namespace),
        ("source_principal", &*source.principal),
        ("source_app", &*source.app),
        ("source_version", &*source.version),
        ("source_cluster", &*source.cluster),
        ("destination_workload", &*destination.workload),
        ("destination_workload_namespace", &*destination.namespace),
        ("destination_principal", &*destination.principal),
        ("destination_app", &*destination.app),
        ("destination_version", &*destination.version),
        ("destination_service", &*destination.service),
        (
            "destination_canonical_service",
            &*destination.canonical_service,
        ),
        (
            "destination_canonical_revision",
            &*destination.canonical_revision,
        ),
        ("destination_service_name", &*destination.service_name),
        (
            "destination_service_namespace",
            &*destination.service_namespace,
        ),
        ("destination_cluster", &*destination.cluster),
    ]);
}

impl RequestLabels {
    /// Calls `f` with Istio's standard labels of the request, in Istio's order.
    pub fn with_standard<R>(&self, f: impl FnOnce(&[(&'static str, &str)]) -> R) -> R {
        let code = self.response_code.to_string();
        let grpc = self
            .grpc_status
            .map(|status| status.to_string())
            .unwrap_or_default();
        let flags = self.response_flags.to_string();
        let mut labels = Vec::with_capacity(25);
        labels.push(("reporter", self.reporter.as_str()));
        peer_labels(&mut labels, &self.source, &self.destination);
        labels.extend([
            ("request_protocol", self.request_protocol),
            ("response_code", code.as_str()),
            ("grpc_response_status", grpc.as_str()),
            ("response_flags", flags.as_str()),
            ("connection_security_policy", self.security_policy),
        ]);
        f(&labels)
    }

    /// A series whose labels are `custom` only.
    pub fn custom(reporter: Reporter, custom: CustomLabels) -> RequestLabels {
        RequestLabels {
            reporter,
            source: placeholder_peer(),
            destination: placeholder_peer(),
            request_protocol: "",
            response_code: 0,
            grpc_status: None,
            response_flags: ResponseFlags::NONE,
            security_policy: "",
            custom: Some(Arc::new(custom)),
        }
    }
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        if let Some(custom) = &self.custom {
            return custom.encode(encoder);
        }
        self.with_standard(|labels| labels.encode(encoder))
    }
}

impl TcpLabels {
    /// Calls `f` with Istio's standard labels of the connection, in Istio's order.
    pub fn with_standard<R>(&self, f: impl FnOnce(&[(&'static str, &str)]) -> R) -> R {
        let flags = self.response_flags.to_string();
        let mut labels = Vec::with_capacity(23);
        labels.push(("reporter", self.reporter.as_str()));
        peer_labels(&mut labels, &self.source, &self.destination);
        labels.extend([
            ("request_protocol", "tcp"),
            ("response_flags", flags.as_str()),
            ("connection_security_policy", self.security_policy),
        ]);
        f(&labels)
    }

    /// A series whose labels are `custom` only.
    pub fn custom(reporter: Reporter, custom: CustomLabels) -> TcpLabels {
        TcpLabels {
            reporter,
            source: placeholder_peer(),
            destination: placeholder_peer(),
            response_flags: ResponseFlags::NONE,
            security_policy: "",
            custom: Some(Arc::new(custom)),
        }
    }
}

impl EncodeLabelSet for TcpLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        if let Some(custom) = &self.custom {
            return custom.encode(encoder);
        }
        self.with_standard(|labels| labels.encode(encoder))
    }
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // Istio's buckets for istio_request_duration_milliseconds.
    Histogram::new([
        0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
        30000.0, 60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
    ])
}

fn size_histogram() -> Histogram {
    // Istio's buckets for istio_request_bytes / istio_response_bytes: 1 to 10^9 by powers of 10.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 10.0, 10,
    ))
}

/// The proxy's own counters, shown by `/stats` in Envoy's `name: value` form.
#[derive(Default)]
pub struct ProxyStats {
    pub downstream_cx_total: AtomicU64,
    pub downstream_cx_active: AtomicU64,
    pub downstream_rq_total: AtomicU64,
    pub downstream_rq_active: AtomicU64,
    pub upstream_cx_total: AtomicU64,
    pub upstream_cx_connect_fail: AtomicU64,
    pub upstream_rq_retry: AtomicU64,
    pub upstream_rq_timeout: AtomicU64,
    /// Requests refused by a cluster's circuit breakers (flag `UO`).
    pub upstream_rq_pending_overflow: AtomicU64,
    /// Retries not made because the cluster's `max_retries` was reached.
    pub upstream_rq_retry_overflow: AtomicU64,
    pub protocol_detect_timeout: AtomicU64,
    pub downstream_rq_rejected: AtomicU64,
    /// Inbound mTLS handshakes completed (Envoy's `ssl.handshake`).
    pub ssl_handshake: AtomicU64,
    /// Inbound TLS handshakes refused: bad or missing client certificate, bad ClientHello.
    pub ssl_connection_error: AtomicU64,
    /// Connections no filter chain takes: plaintext on a STRICT mTLS listener.
    pub no_filter_chain_match: AtomicU64,
    /// Requests and TCP connections not recorded because their label set would have been a
    /// new series beyond the bound (`SeriesCap`).
    pub metrics_series_dropped: AtomicU64,
    /// Connections accepted and closed at once: the global downstream cap was reached
    /// (Envoy's `downstream_global_cx_overflow`).
    pub downstream_global_cx_overflow: AtomicU64,
}

impl ProxyStats {
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn decr(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        for (name, value) in [
            ("downstream_cx_total", &self.downstream_cx_total),
            ("downstream_cx_active", &self.downstream_cx_active),
            ("downstream_rq_total", &self.downstream_rq_total),
            ("downstream_rq_active", &self.downstream_rq_active),
            ("downstream_rq_rejected", &self.downstream_rq_rejected),
            ("upstream_cx_total", &self.upstream_cx_total),
            ("upstream_cx_connect_fail", &self.upstream_cx_connect_fail),
            ("upstream_rq_retry", &self.upstream_rq_retry),
            ("upstream_rq_timeout", &self.upstream_rq_timeout),
            (
                "upstream_rq_pending_overflow",
                &self.upstream_rq_pending_overflow,
            ),
            (
                "upstream_rq_retry_overflow",
                &self.upstream_rq_retry_overflow,
            ),
            ("protocol_detect_timeout", &self.protocol_detect_timeout),
            ("ssl_handshake", &self.ssl_handshake),
            ("ssl_connection_error", &self.ssl_connection_error),
            ("no_filter_chain_match", &self.no_filter_chain_match),
            ("metrics_series_dropped", &self.metrics_series_dropped),
            (
                "downstream_global_cx_overflow",
                &self.downstream_global_cx_overflow,
            ),
        ] {
            let _ = writeln!(out, "lateen.{name}: {}", value.load(Ordering::Relaxed));
        }
    }
}

pub struct Metrics {
    registry: Registry,
    pub requests_total: Family<RequestLabels, Counter>,
    pub request_duration: HistogramFamily<RequestLabels>,
    pub request_bytes: HistogramFamily<RequestLabels>,
    pub response_bytes: HistogramFamily<RequestLabels>,
    pub request_messages: Family<RequestLabels, Counter>,
    pub response_messages: Family<RequestLabels, Counter>,
    pub tcp_sent_bytes: Family<TcpLabels, Counter>,
    pub tcp_received_bytes: Family<TcpLabels, Counter>,
    pub tcp_opened: Family<TcpLabels, Counter>,
    pub tcp_closed: Family<TcpLabels, Counter>,
    pub stats: ProxyStats,
    request_series: SeriesCap,
    tcp_series: SeriesCap,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::with_max_series(DEFAULT_MAX_SERIES)
    }

    /// Metrics keeping at most `max_series` label sets for the HTTP metrics and as many for
    /// the TCP metrics.
    pub fn with_max_series(max_series: usize) -> Metrics {
        let mut registry = Registry::with_prefix("istio");
        let requests_total = Family::<RequestLabels, Counter>::default();
        let request_duration =
            HistogramFamily::new_with_constructor(duration_histogram as fn() -> Histogram);
        let request_bytes =
            HistogramFamily::new_with_constructor(size_histogram as fn() -> Histogram);
        let response_bytes =
            HistogramFamily::new_with_constructor(size_histogram as fn() -> Histogram);
        let request_messages = Family::<RequestLabels, Counter>::default();
        let response_messages = Family::<RequestLabels, Counter>::default();
        let tcp_sent_bytes = Family::<TcpLabels, Counter>::default();
        let tcp_received_bytes = Family::<TcpLabels, Counter>::default();
        let tcp_opened = Family::<TcpLabels, Counter>::default();
        let tcp_closed = Family::<TcpLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests handled, by Istio's standard labels",
            requests_total.clone(),
        );
        registry.register(
            "request_duration_milliseconds",
            "Request duration in milliseconds",
            request_duration.clone(),
        );
        registry.register(
            "request_bytes",
            "HTTP request body sizes in bytes",
            request_bytes.clone(),
        );
        registry.register(
            "response_bytes",
            "HTTP response body sizes in bytes",
            response_bytes.clone(),
        );
        registry.register(
            "request_messages",
            "gRPC messages sent by the client, by Istio's standard labels",
            request_messages.clone(),
        );
        registry.register(
            "response_messages",
            "gRPC messages sent by the server, by Istio's standard labels",
            response_messages.clone(),
        );
        registry.register(
            "tcp_sent_bytes",
            "Bytes sent to the downstream in TCP connections",
            tcp_sent_bytes.clone(),
        );
        registry.register(
            "tcp_received_bytes",
            "Bytes received from the downstream in TCP connections",
            tcp_received_bytes.clone(),
        );
        registry.register(
            "tcp_connections_opened",
            "TCP connections opened",
            tcp_opened.clone(),
        );
        registry.register(
            "tcp_connections_closed",
            "TCP connections closed",
            tcp_closed.clone(),
        );
        // Istio's build gauge: every proxy reports its component and version as 1.
        let build = Family::<[(&'static str, &'static str); 2], Gauge>::default();
        build
            .get_or_create(&[("component", "proxy"), ("tag", env!("CARGO_PKG_VERSION"))])
            .set(1);
        registry.register("build", "Istio component build info", build);
        Metrics {
            registry,
            requests_total,
            request_duration,
            request_bytes,
            response_bytes,
            request_messages,
            response_messages,
            tcp_sent_bytes,
            tcp_received_bytes,
            tcp_opened,
            tcp_closed,
            stats: ProxyStats::default(),
            request_series: SeriesCap::new(max_series),
            tcp_series: SeriesCap::new(max_series),
        }
    }

    /// Records one finished HTTP request.
    pub fn record_request(
        &self,
        labels: &RequestLabels,
        duration_ms: f64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        if !self.request_series.admit(&self.requests_total, labels) {
            ProxyStats::incr(&self.stats.metrics_series_dropped);
            return;
        }
        self.requests_total.get_or_create(labels).inc();
        self.request_duration
            .get_or_create(labels)
            .observe(duration_ms);
        self.request_bytes
            .get_or_create(labels)
            .observe(request_bytes as f64);
        self.response_bytes
            .get_or_create(labels)
            .observe(response_bytes as f64);
    }

    /// Records the messages of one finished gRPC request (Istio's gRPC stats), after
    /// [`Metrics::record_request`] for the same request: a label set the series bound kept out
    /// of `istio_requests_total` stays out of the message counts too (its drop is already
    /// counted there).
    pub fn record_grpc_messages(
        &self,
        labels: &RequestLabels,
        request_messages: u64,
        response_messages: u64,
    ) {
        if self.requests_total.get(labels).is_none() {
            return;
        }
        self.request_messages
            .get_or_create(labels)
            .inc_by(request_messages);
        self.response_messages
            .get_or_create(labels)
            .inc_by(response_messages);
    }

    /// Whether `labels` may be recorded in `family` (one of the HTTP metrics) under the HTTP
    /// series bound; counts it as dropped if not. For label sets made by overrides, which
    /// differ between the metrics of one request.
    pub fn admit_request_series<M, C>(
        &self,
        family: &Family<RequestLabels, M, C>,
        labels: &RequestLabels,
    ) -> bool
    where
        C: prometheus_client::metrics::family::MetricConstructor<M>,
    {
        let admitted = self.request_series.admit(family, labels);
        if !admitted {
            ProxyStats::incr(&self.stats.metrics_series_dropped);
        }
        admitted
    }

    /// As [`Metrics::admit_request_series`] for the TCP metrics.
    pub fn admit_tcp_series<M, C>(
        &self,
        family: &Family<TcpLabels, M, C>,
        labels: &TcpLabels,
    ) -> bool
    where
        C: prometheus_client::metrics::family::MetricConstructor<M>,
    {
        let admitted = self.tcp_series.admit(family, labels);
        if !admitted {
            ProxyStats::incr(&self.stats.metrics_series_dropped);
        }
        admitted
    }

    /// Whether a TCP connection with `labels` may be recorded; counts it as dropped if not.
    /// Every TCP label set enters `tcp_connections_opened` first.
    pub fn admit_tcp(&self, labels: &TcpLabels) -> bool {
        let admitted = self.tcp_series.admit(&self.tcp_opened, labels);
        if !admitted {
            ProxyStats::incr(&self.stats.metrics_series_dropped);
        }
        admitted
    }

    /// The Prometheus text exposition of every Istio metric.
    pub fn encode_prometheus(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_print_in_envoy_order() {
        assert_eq!(ResponseFlags::NONE.to_string(), "-");
        assert_eq!(
            ResponseFlags::URX.with(ResponseFlags::UF).to_string(),
            "UF,URX"
        );
    }

    #[test]
    fn exports_istio_names_and_unknown_labels() {
        let metrics = Metrics::new();
        let labels = RequestLabels {
            reporter: Reporter::Source,
            source: Arc::new(PeerLabels::unknown()),
            destination: Arc::new(PeerLabels::new(
                None,
                None,
                None,
                Some("v1"),
                None,
                None,
                Some("reviews.default.svc.cluster.local"),
                None,
            )),
            request_protocol: "http",
            response_code: 200,
            grpc_status: None,
            response_flags: ResponseFlags::NONE,
            security_policy: "unknown",
            custom: None,
        };
        metrics.record_request(&labels, 3.0, 0, 10);
        let text = metrics.encode_prometheus();
        assert!(
            text.contains("istio_requests_total{reporter=\"source\",source_workload=\"unknown\""),
            "{text}"
        );
        assert!(
            text.contains("destination_service_name=\"reviews\""),
            "{text}"
        );
        assert!(
            text.contains("destination_service_namespace=\"default\""),
            "{text}"
        );
        assert!(
            text.contains("istio_request_duration_milliseconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "istio_build{{component=\"proxy\",tag=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
    }

    #[test]
    fn series_beyond_the_bound_are_dropped_and_counted() {
        let metrics = Metrics::with_max_series(2);
        let labels_for = |code: u16| RequestLabels {
            reporter: Reporter::Destination,
            source: Arc::new(PeerLabels::unknown()),
            destination: Arc::new(PeerLabels::unknown()),
            request_protocol: "http",
            response_code: code,
            grpc_status: None,
            response_flags: ResponseFlags::NONE,
            security_policy: "unknown",
            custom: None,
        };
        for code in [200, 201, 202, 200, 203] {
            metrics.record_request(&labels_for(code), 1.0, 0, 0);
        }
        let text = metrics.encode_prometheus();
        assert!(text.contains("response_code=\"200\""), "{text}");
        assert!(text.contains("response_code=\"201\""), "{text}");
        assert!(!text.contains("response_code=\"202\""), "{text}");
        assert_eq!(text.matches("istio_requests_total{").count(), 2, "{text}");
        // gRPC message counts follow the request's series: none for a dropped label set.
        metrics.record_grpc_messages(&labels_for(200), 3, 4);
        metrics.record_grpc_messages(&labels_for(202), 3, 4);
        let text = metrics.encode_prometheus();
        assert_eq!(
            text.matches("istio_request_messages_total{").count(),
            1,
            "{text}"
        );
        assert_eq!(
            metrics.stats.metrics_series_dropped.load(Ordering::Relaxed),
            2
        );
        let mut stats = String::new();
        metrics.stats.render(&mut stats);
        assert!(
            stats.contains("lateen.metrics_series_dropped: 2"),
            "{stats}"
        );
    }
}
