//! The proxy's one configuration model: listeners → route tables → clusters → endpoints.
//!
//! The static YAML bootstrap deserializes straight into these types and xDS will fill them
//! too; `/config_dump` serializes them back. Field names are snake_case like Envoy's.
//! Cross-references (a listener's route table, a route's cluster) are by name and checked by
//! [`super::compile`].

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::duration;
pub use super::policy::*;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Who this proxy is: used for metric labels and, later, the xDS node.
    #[serde(default)]
    pub node: Node,
    #[serde(default)]
    pub admin: AdminConfig,
    /// How long in-flight requests may run after SIGTERM before the process exits.
    #[serde(default = "defaults::drain_timeout", with = "duration")]
    pub drain_timeout: Duration,
    #[serde(default)]
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub route_configs: Vec<RouteConfig>,
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Envoy's runtime values (a bootstrap's static `layered_runtime` layer), key → value;
    /// read: `overload.global_downstream_max_connections` (docs/hardening.md).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub runtime: BTreeMap<String, serde_json::Value>,
    /// Where the configuration came from when a control plane sent it: the accepted xDS
    /// resources and their versions (shown by `/config_dump`; never set in a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xds: Option<XdsInfo>,
}

/// The xDS resources a configuration was assembled from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XdsInfo {
    /// `HOST:PORT` of the control plane.
    pub control_plane: String,
    /// Per type (`CDS`, `EDS`, `LDS`, `RDS`): the last accepted `version_info` (SotW) or
    /// `system_version_info` (delta) of the type.
    #[serde(default)]
    pub type_versions: BTreeMap<String, String>,
    /// Per type: resource name → version.
    #[serde(default)]
    pub resources: BTreeMap<String, BTreeMap<String, String>>,
    /// Clusters and route tables still awaited when this configuration was applied (they
    /// are empty until they arrive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warming: Vec<String>,
}

/// The workload this proxy stands beside, as Istio's node metadata describes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// Addresses of the proxy's own servers. Istio's well-known ports by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `/config_dump`, `/stats`, `/ready`, `/quitquitquit`.
    #[serde(default = "defaults::admin_address")]
    pub address: SocketAddr,
    /// `/healthz/ready`.
    #[serde(default = "defaults::health_address")]
    pub health_address: SocketAddr,
    /// `/stats/prometheus`.
    #[serde(default = "defaults::metrics_address")]
    pub metrics_address: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            address: defaults::admin_address(),
            health_address: defaults::health_address(),
            metrics_address: defaults::metrics_address(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Traffic leaving the workload; metrics say `reporter="source"`.
    #[default]
    Outbound,
    /// Traffic arriving at the workload; metrics say `reporter="destination"`.
    Inbound,
}

/// What a listener does with the connections it gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capture {
    /// Serve the connection with this listener's own protocol settings.
    #[default]
    None,
    /// A capture listener (15001/15006): read the original destination with
    /// `SO_ORIGINAL_DST` and hand the connection to the listener configured for that
    /// address (`bind: false` listeners), else pass it through to the original destination.
    OriginalDst,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// Sniff the first bytes: HTTP/1.x request line, HTTP/2 preface, else opaque TCP.
    #[default]
    Auto,
    Http1,
    Http2,
    /// Any HTTP version, detected from the first bytes, never TCP.
    Http,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    /// False for listeners that exist only as targets of a capture listener (Envoy's
    /// `bind_to_port: false`).
    #[serde(default = "defaults::yes")]
    pub bind: bool,
    #[serde(default)]
    pub capture: Capture,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub protocol: ListenerProtocol,
    /// How long protocol sniffing waits for the client's first bytes before treating the
    /// connection as opaque TCP (server-speaks-first protocols send nothing); `0s`, the
    /// default as in Istio, waits as long as the client stays connected.
    #[serde(default = "defaults::detect_timeout", with = "duration")]
    pub detect_timeout: Duration,
    /// Route table for HTTP traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_config: Option<String>,
    /// Cluster for opaque TCP traffic. Without it TCP goes to the original destination
    /// (capture) or is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_cluster: Option<String>,
    #[serde(default)]
    pub limits: HttpLimits,
    /// JWT and RBAC filters of the HTTP connection manager (Istio's RequestAuthentication
    /// and AuthorizationPolicy).
    #[serde(default, skip_serializing_if = "crate::authz::HttpAuthz::is_empty")]
    pub http_authz: crate::authz::HttpAuthz,
    /// RBAC network filters before the TCP proxy.
    #[serde(default, skip_serializing_if = "crate::authz::NetworkAuthz::is_empty")]
    pub tcp_authz: crate::authz::NetworkAuthz,
    /// Spans for the HTTP requests of this listener (Envoy's HCM `tracing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<super::tracing::TracingConfig>,
    /// Access logs written for every request (HTTP) or connection (TCP) of this listener.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_log: Vec<AccessLog>,
    /// Telemetry `metrics` overrides (Istio's `istio.stats` filter); none: Istio's metrics
    /// as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<crate::stats_overrides::StatsConfig>,
    /// Mesh mutual TLS on this (inbound) listener, Istio's PeerAuthentication mode.
    #[serde(default, skip_serializing_if = "MtlsMode::is_disable")]
    pub mtls: MtlsMode,
}

/// One file access log (Envoy's `envoy.access_loggers.file`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    /// File to append to (`/dev/stdout` works).
    pub path: String,
    /// A format string with Envoy's command operators (`%RESPONSE_CODE%`); Istio's default
    /// text format when neither this nor `json` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// One JSON object per line: key to format string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    /// A CEL expression (Envoy's attributes): only entries for which it is `true` are logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// Istio's PeerAuthentication `mtls.mode` as an inbound listener applies it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MtlsMode {
    /// Plaintext only: a TLS ClientHello is proxied as opaque bytes.
    #[default]
    Disable,
    /// mTLS and plaintext on the same port, told apart by the first byte.
    Permissive,
    /// mTLS only: a plaintext connection is closed.
    Strict,
}

impl MtlsMode {
    pub fn is_disable(&self) -> bool {
        *self == MtlsMode::Disable
    }
}

/// Mesh mTLS to a cluster's endpoints (Istio's `ISTIO_MUTUAL`), with the proxy's own
/// workload certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// The SNI sent, Istio's `outbound_.PORT_.SUBSET_.HOST`; none sends no SNI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// SPIFFE URIs the server's certificate may carry; empty accepts any the mesh roots
    /// signed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// Auto mTLS (Envoy's `transport_socket_matches` as Istio sends them): TLS only to
    /// endpoints whose `tls_mode` is `istio`, plaintext to the others.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only_tls_mode_istio: bool,
    /// DestinationRule SIMPLE/MUTUAL origination with these files instead of the mesh
    /// certificate; `subject_alt_names` are then DNS or URI SANs (docs/mtls.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<crate::tls::origination::TlsFiles>,
}

/// Protections of the HTTP server side of a listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpLimits {
    /// Largest request head (request line plus headers) in bytes; larger gets 431.
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    /// Most headers in one request; more gets 431.
    #[serde(default = "defaults::max_headers")]
    pub max_headers: usize,
    /// Time allowed for a client to send a complete request head.
    #[serde(default = "defaults::header_timeout", with = "duration")]
    pub request_headers_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    #[serde(default = "defaults::idle_timeout", with = "duration")]
    pub idle_timeout: Duration,
    /// HTTP/2 streams one client connection may have open at once.
    #[serde(default = "defaults::max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    /// Protocols an HTTP/1.1 client may switch to with `Upgrade` (Envoy's `upgrade_configs`,
    /// compared without case); any other gets 403. `h2c` is never one: its upgrade headers
    /// are stripped and the request served as plain HTTP/1.1, as Envoy does.
    #[serde(default = "defaults::upgrade_types")]
    pub upgrade_types: Vec<String>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_header_bytes: defaults::max_header_bytes(),
            max_headers: defaults::max_headers(),
            request_headers_timeout: defaults::header_timeout(),
            idle_timeout: defaults::idle_timeout(),
            max_concurrent_streams: defaults::max_concurrent_streams(),
            upgrade_types: defaults::upgrade_types(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    #[serde(default)]
    pub virtual_hosts: Vec<VirtualHost>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualHost {
    pub name: String,
    /// Host names, `host:port`, `*.suffix`, `prefix.*` or `*`, as Envoy matches them.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "match", default)]
    pub matcher: RouteMatch,
    #[serde(flatten)]
    pub action: RouteAction,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub request_headers: HeaderOps,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub response_headers: HeaderOps,
    /// Fault injection (delays and aborts) before the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
    /// The name of this route's spans (Envoy's `decorator.operation`; istiod sets
    /// `HOST:PORT/*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decorator: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<HeaderMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

/// Matches one header (or query parameter) by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMatch {
    pub name: String,
    #[serde(flatten)]
    pub value: ValueMatch,
    /// Match when the header does *not* match.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invert: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
    Present(bool),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAction {
    /// Forward to one cluster or split by weight between several.
    Route(ForwardAction),
    Redirect(RedirectAction),
    DirectResponse(DirectResponse),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weighted_clusters: Vec<WeightedCluster>,
    /// Whole-request deadline; past it the client gets 504 (`UT`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration::option"
    )]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_rewrite: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_rewrite: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<MirrorPolicy>,
    /// Keys of a consistent-hash cluster; the first ones present are combined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hash_policy: Vec<HashPolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedCluster {
    pub name: String,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Envoy's `retry_on` conditions: `5xx`, `gateway-error`, `connect-failure`, `reset`,
    /// `refused-stream`, `retriable-status-codes`.
    #[serde(default = "defaults::retry_on")]
    pub retry_on: Vec<String>,
    #[serde(default = "defaults::retries")]
    pub num_retries: u32,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "duration::option"
    )]
    pub per_try_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retriable_status_codes: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default = "defaults::redirect_code")]
    pub response_code: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponse {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Headers to set (replace), add (append) and remove.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderOps {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// Speak to the upstream in the protocol the client used (Envoy's
    /// `USE_DOWNSTREAM_PROTOCOL`).
    #[default]
    Downstream,
    Http1,
    Http2,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    Random,
    /// Power of two choices over the requests in flight per endpoint.
    LeastRequest,
    /// Consistent hashing of the route's `hash_policy` key on a ring.
    RingHash,
    /// Served by the same consistent-hash ring as `ring_hash`.
    Maglev,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    #[serde(default = "defaults::connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
    #[serde(default)]
    pub lb_policy: LbPolicy,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Local address to connect from (Envoy's `upstream_bind_config`); inbound clusters use
    /// 127.0.0.6 so the capture rules let the connection through to the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<std::net::IpAddr>,
    /// The service behind this cluster, for `destination_*` metric labels.
    #[serde(default)]
    pub destination: Destination,
    /// Envoy's ORIGINAL_DST cluster (Istio's PassthroughCluster): no endpoints of its own,
    /// connections go where the client was going. TCP listeners naming it pass through;
    /// an HTTP route to it needs the data path to use the captured destination (not done
    /// yet: such a route answers 503).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub original_dst: bool,
    /// Points on the consistent-hash ring (`ring_hash`/`maglev`); Envoy's default is 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<CircuitBreakers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// Mesh mTLS to the endpoints; plaintext without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<UpstreamTls>,
    /// Limits on each pooled connection to the endpoints.
    #[serde(default, skip_serializing_if = "ConnectionLimits::is_default")]
    pub connection_limits: ConnectionLimits,
}

/// Limits on each upstream connection of a cluster: Envoy's `common_http_protocol_options`,
/// which istiod fills from a DestinationRule's `connectionPool`. How long a connection may
/// sit idle in the pool (`http.idleTimeout`, else `tcp.idleTimeout`; Envoy's default 1 h
/// when unset, never when zero),
/// how many requests it carries (`http.maxRequestsPerConnection`) and how long it is used
/// for (`tcp.maxConnectionDuration`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u32>,
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_connection_duration: Option<Duration>,
}

impl ConnectionLimits {
    pub fn is_default(&self) -> bool {
        *self == ConnectionLimits::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub address: SocketAddr,
    /// Istio's `tlsMode` of the endpoint (`istio`: it has a sidecar that accepts mTLS), from
    /// EDS metadata `envoy.transport_socket_match`; what auto mTLS goes by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_mode: Option<String>,
}

/// Labels of the service and workload a cluster leads to; missing values are `unknown` in
/// metrics, as in Istio.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

pub(crate) mod defaults {
    use std::net::SocketAddr;
    use std::time::Duration;

    pub fn yes() -> bool {
        true
    }
    pub fn drain_timeout() -> Duration {
        Duration::from_secs(5)
    }
    pub fn admin_address() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 15000))
    }
    pub fn health_address() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 15021))
    }
    pub fn metrics_address() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 15090))
    }
    /// No budget: Istio's `protocolDetectionTimeout` default (0s), which it sends to Envoy
    /// as `listener_filters_timeout: 0s`; a slow client is still sniffed, never taken for TCP.
    pub fn detect_timeout() -> Duration {
        Duration::ZERO
    }
    pub fn max_header_bytes() -> usize {
        60 * 1024
    }
    /// WebSocket only, as Istio configures every HTTP connection manager.
    pub fn upgrade_types() -> Vec<String> {
        vec!["websocket".to_string()]
    }
    pub fn max_headers() -> usize {
        100
    }
    pub fn header_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn idle_timeout() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn max_concurrent_streams() -> u32 {
        2147483647
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn retry_on() -> Vec<String> {
        vec![
            "connect-failure".into(),
            "refused-stream".into(),
            "5xx".into(),
        ]
    }
    pub fn retries() -> u32 {
        2
    }
    pub fn redirect_code() -> u16 {
        301
    }
}
