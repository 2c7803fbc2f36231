//! The compiled, immutable form of a [`ProxyConfig`](super::ProxyConfig) that the data path
//! reads. A new configuration is compiled whole and swapped in at once; a connection keeps
//! the snapshot it started with, which is how a reload loses no request.

use regex::Regex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::model::{self, Direction, ListenerProtocol, ProxyConfig, UpstreamProtocol};
use crate::metrics::PeerLabels;
use crate::upstream::balance::{Breakers, HostSet};

pub struct Snapshot {
    /// The configuration this snapshot was compiled from, for `/config_dump`.
    pub source: Arc<ProxyConfig>,
    /// Labels of this proxy's own workload.
    pub local: Arc<PeerLabels>,
    /// This workload's `x-envoy-peer-metadata` and `-id` header values, when it is known.
    pub local_peer: Option<(http::HeaderValue, http::HeaderValue)>,
    pub listeners: Vec<Arc<ListenerRt>>,
    /// Listeners reachable through capture, by their address and direction (`bind: false`
    /// or not): a sidecar has an inbound and an outbound listener on the same port.
    pub by_address: HashMap<(SocketAddr, Direction), Arc<ListenerRt>>,
    pub clusters: HashMap<String, Arc<ClusterRt>>,
}

impl Snapshot {
    /// The listener that serves a captured connection whose original destination is `dst`:
    /// an exact `ip:port` listener first, then one on the wildcard address with that port.
    pub fn listener_for_original_dst(
        &self,
        dst: SocketAddr,
        direction: Direction,
    ) -> Option<&Arc<ListenerRt>> {
        let wildcard = match dst {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], dst.port())),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], dst.port())),
        };
        [dst, wildcard]
            .iter()
            .filter_map(|addr| self.by_address.get(&(*addr, direction)))
            .find(|listener| !listener.is_capture)
    }
}

pub struct ListenerRt {
    pub name: Arc<str>,
    pub address: SocketAddr,
    pub bind: bool,
    pub is_capture: bool,
    pub direction: Direction,
    pub protocol: ListenerProtocol,
    pub detect_timeout: Duration,
    pub routes: Option<Arc<RouteTable>>,
    pub tcp_cluster: Option<Arc<ClusterRt>>,
    pub limits: model::HttpLimits,
    /// Empty unless access logging is configured: requests then build an access-log entry.
    pub access_logs: Vec<Arc<crate::access_log::AccessLogger>>,
    pub mtls: model::MtlsMode,
    pub tracing: Option<Arc<super::tracing::TracingRt>>,
    /// Telemetry `metrics` overrides; `None` on the fast path.
    pub stats: Option<Arc<crate::stats_overrides::StatsTable>>,
    pub http_authz: crate::authz::HttpAuthz,
    pub tcp_authz: crate::authz::NetworkAuthz,
}

pub struct RouteTable {
    pub name: Arc<str>,
    pub virtual_hosts: Vec<VirtualHostRt>,
    exact_domains: HashMap<String, usize>,
    /// `(suffix, vhost)` for `*.example.com`-style domains, longest first.
    suffix_domains: Vec<(String, usize)>,
    /// `(prefix, vhost)` for `example.*`-style domains, longest first.
    prefix_domains: Vec<(String, usize)>,
    catch_all: Option<usize>,
}

impl RouteTable {
    pub(super) fn new(
        name: &str,
        virtual_hosts: Vec<VirtualHostRt>,
        domains: &[Vec<String>],
    ) -> RouteTable {
        let mut exact_domains = HashMap::new();
        let mut suffix_domains = Vec::new();
        let mut prefix_domains = Vec::new();
        let mut catch_all = None;
        for (index, names) in domains.iter().enumerate() {
            for domain in names {
                let domain = domain.to_ascii_lowercase();
                if domain == "*" {
                    catch_all.get_or_insert(index);
                } else if let Some(suffix) = domain.strip_prefix('*') {
                    suffix_domains.push((suffix.to_string(), index));
                } else if let Some(prefix) = domain.strip_suffix('*') {
                    prefix_domains.push((prefix.to_string(), index));
                } else {
                    exact_domains.entry(domain).or_insert(index);
                }
            }
        }
        suffix_domains.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
        prefix_domains.sort_by_key(|d| std::cmp::Reverse(d.0.len()));
        RouteTable {
            name: name.into(),
            virtual_hosts,
            exact_domains,
            suffix_domains,
            prefix_domains,
            catch_all,
        }
    }

    /// Envoy's virtual host selection: exact domain, then the longest `*suffix`, then the
    /// longest `prefix*`, then `*`. The authority is tried as given, then without its port.
    pub fn virtual_host(&self, authority: &str) -> Option<&VirtualHostRt> {
        let lowered;
        let authority = if authority.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = authority.to_ascii_lowercase();
            lowered.as_str()
        } else {
            authority
        };
        let without_port = strip_port(authority);
        let index = self
            .exact_domains
            .get(authority)
            .or_else(|| self.exact_domains.get(without_port))
            .copied()
            .or_else(|| {
                [authority, without_port].iter().find_map(|host| {
                    self.suffix_domains
                        .iter()
                        .find(|(suffix, _)| {
                            host.len() > suffix.len() && host.ends_with(suffix.as_str())
                        })
                        .or_else(|| {
                            self.prefix_domains.iter().find(|(prefix, _)| {
                                host.len() > prefix.len() && host.starts_with(prefix.as_str())
                            })
                        })
                        .map(|(_, index)| *index)
                })
            })
            .or(self.catch_all)?;
        self.virtual_hosts.get(index)
    }
}

fn strip_port(authority: &str) -> &str {
    if authority.ends_with(']') {
        return authority;
    }
    match authority.rfind(':') {
        Some(colon) if authority[colon + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            // `[::1]:80` keeps its brackets; a bare IPv6 address has more colons and no port.
            let host = &authority[..colon];
            if host.contains(':') && !host.starts_with('[') {
                authority
            } else {
                host
            }
        }
        _ => authority,
    }
}

pub struct VirtualHostRt {
    pub name: Arc<str>,
    pub routes: Vec<RouteRt>,
}

pub struct RouteRt {
    pub name: Option<Arc<str>>,
    pub path: Option<PathMatcher>,
    pub headers: Vec<ValueMatcher>,
    pub query_params: Vec<ValueMatcher>,
    pub method: Option<http::Method>,
    pub action: ActionRt,
    pub request_headers: model::HeaderOps,
    pub response_headers: model::HeaderOps,
    pub fault: Option<crate::http::fault::FaultRt>,
    pub cors: Option<crate::http::cors::CorsRt>,
    /// Span name of requests on this route.
    pub decorator: Option<Arc<str>>,
}

pub enum PathMatcher {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

impl PathMatcher {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatcher::Exact(exact) => path == exact,
            PathMatcher::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PathMatcher::Regex(regex) => regex.is_match(path),
        }
    }
}

pub struct ValueMatcher {
    pub name: String,
    pub kind: ValueMatcherKind,
    pub invert: bool,
}

pub enum ValueMatcherKind {
    Exact(String),
    Prefix(String),
    Regex(Regex),
    Present(bool),
}

impl ValueMatcher {
    /// `value` is `None` when the header or parameter is absent.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let matched = match (&self.kind, value) {
            (ValueMatcherKind::Present(present), value) => value.is_some() == *present,
            (_, None) => false,
            (ValueMatcherKind::Exact(exact), Some(value)) => value == exact,
            (ValueMatcherKind::Prefix(prefix), Some(value)) => value.starts_with(prefix.as_str()),
            (ValueMatcherKind::Regex(regex), Some(value)) => regex.is_match(value),
        };
        matched != self.invert
    }
}

pub enum ActionRt {
    Forward(ForwardRt),
    Redirect(model::RedirectAction),
    Direct {
        status: http::StatusCode,
        body: bytes::Bytes,
    },
}

pub struct ForwardRt {
    /// One entry for a plain route; several for a weighted split.
    pub clusters: Vec<(Arc<ClusterRt>, u32)>,
    pub total_weight: u32,
    pub timeout: Option<Duration>,
    pub retry: Option<RetryRt>,
    pub prefix_rewrite: Option<String>,
    pub host_rewrite: Option<http::HeaderValue>,
    pub mirrors: Vec<crate::http::mirror::MirrorRt>,
    pub hash_policy: Vec<model::HashPolicy>,
}

impl ForwardRt {
    /// Picks a cluster by weight; `draw` is uniform in `0..total_weight`.
    pub fn pick(&self, draw: u32) -> &Arc<ClusterRt> {
        let mut remaining = draw;
        for (cluster, weight) in &self.clusters {
            if remaining < *weight {
                return cluster;
            }
            remaining -= weight;
        }
        // Unreachable when draw < total_weight; fall back to the first (compile ensures one).
        &self.clusters[0].0
    }
}

#[derive(Debug, Clone)]
pub struct RetryRt {
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub on_5xx: bool,
    pub on_gateway_error: bool,
    pub on_connect_failure: bool,
    pub on_reset: bool,
    pub on_refused_stream: bool,
    pub retriable_status_codes: Vec<u16>,
}

impl RetryRt {
    pub fn retries_status(&self, status: u16) -> bool {
        (self.on_5xx && status >= 500)
            || (self.on_gateway_error && matches!(status, 502..=504))
            || self.retriable_status_codes.contains(&status)
    }
}

pub struct ClusterRt {
    pub name: Arc<str>,
    pub protocol: UpstreamProtocol,
    pub connect_timeout: Duration,
    /// Endpoints, their load-balancing and outlier-detection state.
    pub hosts: HostSet,
    pub source_address: Option<std::net::IpAddr>,
    pub destination: Arc<PeerLabels>,
    /// This proxy's own workload as the destination of the cluster's service: the
    /// `destination_*` labels of inbound traffic.
    pub inbound_destination: Arc<PeerLabels>,
    /// Connect to the captured original destination instead of the endpoints.
    pub original_dst: bool,
    pub breakers: Option<Breakers>,
    /// Mesh mTLS to the endpoints.
    pub tls: Option<Arc<crate::tls::UpstreamTlsRt>>,
    /// Endpoints reached in plaintext although `tls` is set (auto mTLS: no sidecar).
    pub plaintext_endpoints: std::collections::HashSet<SocketAddr>,
    /// Limits on each pooled connection to the endpoints.
    pub limits: model::ConnectionLimits,
}

impl ClusterRt {
    pub(super) fn new(
        cluster: &model::Cluster,
        local: &PeerLabels,
        tls: Option<Arc<crate::tls::UpstreamTlsRt>>,
    ) -> ClusterRt {
        let destination = PeerLabels::from_destination(&cluster.destination);
        let endpoints = cluster
            .endpoints
            .iter()
            .map(|endpoint| endpoint.address)
            .collect();
        ClusterRt {
            inbound_destination: Arc::new(PeerLabels::local_destination(local, &destination)),
            name: cluster.name.as_str().into(),
            protocol: cluster.protocol,
            connect_timeout: cluster.connect_timeout,
            hosts: HostSet::new(
                endpoints,
                cluster.lb_policy,
                cluster.minimum_ring_size,
                cluster.outlier_detection.clone(),
            ),
            source_address: cluster.source_address,
            destination: Arc::new(destination),
            original_dst: cluster.original_dst,
            breakers: cluster.circuit_breakers.clone().map(Breakers::new),
            plaintext_endpoints: cluster
                .endpoints
                .iter()
                .filter(|endpoint| {
                    cluster
                        .tls
                        .as_ref()
                        .is_some_and(|tls| tls.only_tls_mode_istio)
                        && endpoint.tls_mode.as_deref() != Some(crate::tls::TLS_MODE_ISTIO)
                })
                .map(|endpoint| endpoint.address)
                .collect(),
            tls,
            limits: cluster.connection_limits,
        }
    }

    /// A passthrough cluster to one address (a captured connection with no listener);
    /// `local` is this proxy's workload, the destination of inbound passthrough traffic.
    pub fn passthrough(
        name: &str,
        address: SocketAddr,
        source_address: Option<std::net::IpAddr>,
        local: Arc<PeerLabels>,
    ) -> ClusterRt {
        ClusterRt {
            name: name.into(),
            protocol: UpstreamProtocol::Downstream,
            connect_timeout: model::defaults::connect_timeout(),
            hosts: HostSet::new(vec![address], model::LbPolicy::RoundRobin, None, None),
            source_address,
            destination: Arc::new(PeerLabels::unknown()),
            inbound_destination: local,
            original_dst: false,
            breakers: None,
            tls: None,
            plaintext_endpoints: Default::default(),
            limits: Default::default(),
        }
    }

    /// The next endpoint by the cluster's policy, skipping `avoid` (the host that just
    /// failed) when there is another.
    pub fn pick_endpoint(&self, avoid: Option<SocketAddr>) -> Option<SocketAddr> {
        self.hosts
            .pick(avoid, None)
            .map(|index| self.hosts.endpoints[index])
    }
}
