//! CDS: `outbound|PORT|SUBSET|HOST` clusters per visible service port and DestinationRule
//! subset, `inbound|PORT||` clusters for the proxy's own workload ports, and the well-known
//! BlackHoleCluster, PassthroughCluster and InboundPassthroughCluster.

use std::collections::BTreeMap;

use lateen_api::networking::{
    ConnectionPoolSettings, HashKey, LoadBalancerSettings, OutlierDetection, Resolution, SimpleLb,
};
use lateen_xds::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection as EnvoyOutlier, circuit_breakers, cluster,
};
use lateen_xds::pb::envoy::config::core::v3::{
    Http2ProtocolOptions, HttpProtocolOptions as CoreHttpProtocolOptions,
};
use lateen_xds::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use lateen_xds::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};

use super::names::{self, BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER};
use super::{Context, EffectivePolicy, effective_policy};
use crate::registry::{Service, ServicePort};

/// Connect timeout when neither the DestinationRule nor MeshConfig sets one (Istio's 10s).
const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An EDS cluster and what its endpoints are.
pub struct EdsTarget<'a> {
    pub cluster: String,
    pub service: &'a Service,
    pub port: &'a ServicePort,
    /// Subset labels (empty for the whole service).
    pub labels: BTreeMap<String, String>,
}

/// The clusters of a proxy plus the EDS clusters whose endpoints must be served.
pub struct Built<'a> {
    pub clusters: Vec<Cluster>,
    pub eds: Vec<EdsTarget<'a>>,
}

/// A port the proxy's own workload serves, and where the proxy forwards it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundPort {
    pub port: u32,
    pub endpoint_ip: String,
    pub endpoint_port: u32,
    /// Bind address for NONE mode (`Sidecar.ingress[].bind`).
    pub bind: Option<String>,
    /// HTTP (an HTTP connection manager) or opaque TCP.
    pub http: bool,
    /// What the application speaks, for the inbound cluster's upstream protocol.
    pub app_protocol: AppProtocol,
    /// Declared in `Sidecar.ingress` (NONE mode binds only those).
    pub explicit: bool,
}

/// A port's protocol as far as the upstream connection cares (Istio's `setUpstreamProtocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppProtocol {
    /// HTTP/1.1 (Envoy's default for a cluster: nothing to say).
    Http1,
    /// HTTP2, gRPC, gRPC-Web: HTTP/2 upstream.
    Http2,
    /// TCP and the other named protocols: no HTTP upstream.
    Opaque,
    /// Not declared (unnamed port, no protocol): the sidecar sniffs it, and the upstream
    /// speaks what the client spoke (`use_downstream_protocol_config`).
    Unknown,
}

impl AppProtocol {
    /// From a port's `protocol` (any case) or, when that is empty, its name's prefix
    /// (`http-web`, `grpc`, ...), as Istio reads them.
    pub fn of(protocol: &str, name: &str) -> Self {
        let declared = if protocol.is_empty() {
            name.split('-').next().unwrap_or_default()
        } else {
            protocol
        };
        match declared.to_ascii_uppercase().as_str() {
            "HTTP" => Self::Http1,
            "HTTP2" | "GRPC" | "GRPC-WEB" => Self::Http2,
            "TCP" | "TLS" | "HTTPS" | "MONGO" | "MYSQL" | "REDIS" | "UDP" => Self::Opaque,
            _ => Self::Unknown,
        }
    }

    /// The cluster's `HttpProtocolOptions`, when it needs any.
    fn options(self) -> Option<HttpProtocolOptions> {
        use http_protocol_options::UpstreamProtocolOptions;
        let upstream = match self {
            Self::Http2 => UpstreamProtocolOptions::ExplicitHttpConfig(
                http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(
                        http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                            Http2ProtocolOptions::default(),
                        ),
                    ),
                },
            ),
            Self::Unknown => UpstreamProtocolOptions::UseDownstreamProtocolConfig(
                http_protocol_options::UseDownstreamHttpConfig {
                    http2_protocol_options: Some(Http2ProtocolOptions::default()),
                    ..Default::default()
                },
            ),
            Self::Http1 | Self::Opaque => return None,
        };
        Some(HttpProtocolOptions {
            upstream_protocol_options: Some(upstream),
            ..Default::default()
        })
    }

    /// Sets the upstream protocol of `cluster` (sidecars only: a gateway does not sniff) and
    /// the per-connection limits of the DestinationRule's `pool`, both in the cluster's one
    /// `HttpProtocolOptions`, as istiod does.
    pub fn apply(
        self,
        cluster: &mut Cluster,
        sidecar: bool,
        pool: Option<&ConnectionPoolSettings>,
    ) {
        let protocol = if self == Self::Unknown && !sidecar {
            None
        } else {
            self.options()
        };
        let common = pool.and_then(connection_limits_of);
        let options = match (protocol, common) {
            (None, None) => return,
            (Some(protocol), common) => HttpProtocolOptions {
                common_http_protocol_options: common,
                ..protocol
            },
            // Envoy requires an upstream protocol beside the common options: HTTP/1.1, its
            // default, named explicitly, as istiod does.
            (None, common) => HttpProtocolOptions {
                common_http_protocol_options: common,
                upstream_protocol_options: Some(explicit_http1()),
                ..Default::default()
            },
        };
        cluster.typed_extension_protocol_options.insert(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            names::pack(&options),
        );
    }
}

/// HTTP/1.1 upstream, said explicitly.
fn explicit_http1() -> http_protocol_options::UpstreamProtocolOptions {
    use http_protocol_options::explicit_http_config::ProtocolConfig;
    http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
        http_protocol_options::ExplicitHttpConfig {
            protocol_config: Some(ProtocolConfig::HttpProtocolOptions(Default::default())),
        },
    )
}

/// Envoy's `common_http_protocol_options` for Istio's `connectionPool`: the HTTP idle timeout
/// (else the TCP one), `maxRequestsPerConnection` and the TCP `maxConnectionDuration`; none
/// when the DestinationRule sets none of them.
fn connection_limits_of(pool: &ConnectionPoolSettings) -> Option<CoreHttpProtocolOptions> {
    let http = pool.http.as_ref();
    let tcp = pool.tcp.as_ref();
    let idle_timeout = http
        .and_then(|h| h.idle_timeout)
        .or_else(|| tcp.and_then(|t| t.idle_timeout));
    let max_requests = positive(http.and_then(|h| h.max_requests_per_connection));
    let max_duration = tcp.and_then(|t| t.max_connection_duration);
    if idle_timeout.is_none() && max_requests.is_none() && max_duration.is_none() {
        return None;
    }
    Some(CoreHttpProtocolOptions {
        idle_timeout: idle_timeout.map(names::duration),
        max_requests_per_connection: max_requests,
        max_connection_duration: max_duration.map(names::duration),
        ..Default::default()
    })
}

pub fn build<'a>(ctx: &Context<'a>) -> Built<'a> {
    let mut clusters = vec![blackhole(), passthrough(PASSTHROUGH_CLUSTER)];
    let mut eds = Vec::new();
    for &service in &ctx.services {
        outbound_of_service(ctx, service, &mut clusters, &mut eds);
    }
    if !ctx.is_router() {
        clusters.push(passthrough(INBOUND_PASSTHROUGH_CLUSTER));
        for inbound in inbound_ports(ctx) {
            let mut c = static_cluster(
                &names::inbound_cluster(inbound.port),
                &inbound.endpoint_ip,
                inbound.endpoint_port,
            );
            // Of the service's DestinationRule only the connection pool applies inbound
            // (top level and port level, as istiod does).
            let served = inbound_service(ctx, inbound.port);
            let pool = served.and_then(|(service, port)| {
                effective_policy(ctx.destination_rule(service), "", port.number).connection_pool
            });
            inbound.app_protocol.apply(&mut c, true, pool.as_ref());
            c.metadata = served.map(|(service, port)| istio_metadata(service, port));
            clusters.push(c);
        }
    }
    Built { clusters, eds }
}

/// The proxy's own workload ports: from `Sidecar.ingress`, else from the services it is an
/// endpoint of and the ports it declared (`POD_PORTS`), forwarded to 127.0.0.1.
pub fn inbound_ports(ctx: &Context<'_>) -> Vec<InboundPort> {
    let mut out: Vec<InboundPort> = Vec::new();
    let ingress = ctx
        .sidecar
        .map(|s| s.spec.ingress.as_slice())
        .unwrap_or_default();
    if !ingress.is_empty() {
        for l in ingress {
            let Some(port) = l.port.as_ref().map(|p| p.number) else {
                continue;
            };
            let (ip, ep_port) = match l.default_endpoint.as_deref() {
                Some(ep) if !ep.starts_with("unix://") => match ep.rsplit_once(':') {
                    Some((host, p)) => {
                        let host = host.trim_start_matches('[').trim_end_matches(']');
                        let ip = match host {
                            "0.0.0.0" => "127.0.0.1",
                            "::" => "::1",
                            h => h,
                        };
                        (ip.to_string(), p.parse().unwrap_or(port))
                    }
                    None => ("127.0.0.1".to_string(), port),
                },
                _ => ("127.0.0.1".to_string(), port),
            };
            let declared = l.port.as_ref();
            out.push(InboundPort {
                port,
                endpoint_ip: ip,
                endpoint_port: ep_port,
                bind: l.bind.clone(),
                http: declared.is_some_and(|p| is_http_protocol(&p.protocol, &p.name)),
                app_protocol: declared.map_or(AppProtocol::Unknown, |p| {
                    AppProtocol::of(&p.protocol, &p.name)
                }),
                explicit: true,
            });
        }
        return out;
    }
    let mut add = |port: u32, http: bool, app_protocol: AppProtocol| {
        if !out.iter().any(|p| p.port == port) {
            out.push(InboundPort {
                port,
                endpoint_ip: "127.0.0.1".to_string(),
                endpoint_port: port,
                bind: None,
                http,
                app_protocol,
                explicit: false,
            });
        }
    };
    for service in &ctx.registry.services {
        for instance in service
            .instances
            .iter()
            .filter(|i| ctx.proxy.instance_addresses.contains(&i.address))
        {
            for port in &service.ports {
                add(
                    service.endpoint_port(instance, port),
                    port.is_http(),
                    AppProtocol::of(&port.protocol, &port.name),
                );
            }
        }
    }
    for declared in &ctx.proxy.ports {
        add(
            declared.port,
            is_http_protocol("", &declared.name),
            AppProtocol::of("", &declared.name),
        );
    }
    out.sort_by_key(|p| p.port);
    out
}

/// The EDS clusters of one service (an endpoint-only push re-translates just their
/// ClusterLoadAssignments).
pub fn eds_targets<'a>(ctx: &Context<'a>, service: &'a Service) -> Vec<EdsTarget<'a>> {
    let mut eds = Vec::new();
    outbound_of_service(ctx, service, &mut Vec::new(), &mut eds);
    eds
}

/// The outbound clusters of one service: per port, the whole service and each
/// DestinationRule subset.
fn outbound_of_service<'a>(
    ctx: &Context<'a>,
    service: &'a Service,
    clusters: &mut Vec<Cluster>,
    eds: &mut Vec<EdsTarget<'a>>,
) {
    let dr = ctx.destination_rule(service);
    for port in &service.ports {
        let mut subsets = vec![(String::new(), BTreeMap::new())];
        if let Some(dr) = dr {
            subsets.extend(
                dr.spec
                    .subsets
                    .iter()
                    .map(|s| (s.name.clone(), s.labels.clone())),
            );
        }
        for (subset, labels) in subsets {
            let name = names::outbound_cluster(port.number, &subset, &service.hostname);
            let policy = effective_policy(dr, &subset, port.number);
            let mut c = outbound(ctx, &name, service, port, &labels, &policy);
            super::mtls_outbound::apply(ctx, &mut c, service, port.number, &subset, dr);
            if c.cluster_discovery_type
                == Some(cluster::ClusterDiscoveryType::Type(
                    cluster::DiscoveryType::Eds as i32,
                ))
            {
                eds.push(EdsTarget {
                    cluster: name,
                    service,
                    port,
                    labels,
                });
            }
            clusters.push(c);
        }
    }
}

/// HTTP-family protocol, or (protocol unset or plain TCP) a port name like `http` / `http-web`.
pub fn is_http_protocol(protocol: &str, name: &str) -> bool {
    ServicePort {
        name: name.to_string(),
        number: 0,
        protocol: if protocol.eq_ignore_ascii_case("TCP") {
            String::new()
        } else {
            protocol.to_ascii_uppercase()
        },
        target_port: None,
    }
    .is_http()
}

fn connect_timeout(
    ctx: &Context<'_>,
    pool: Option<&ConnectionPoolSettings>,
) -> std::time::Duration {
    pool.and_then(|p| p.tcp.as_ref())
        .and_then(|t| t.connect_timeout)
        .or(ctx.config.mesh.connect_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
}

fn outbound(
    ctx: &Context<'_>,
    name: &str,
    service: &Service,
    port: &ServicePort,
    labels: &BTreeMap<String, String>,
    policy: &EffectivePolicy,
) -> Cluster {
    let pool = policy.connection_pool.as_ref();
    let mut c = Cluster {
        name: name.to_string(),
        connect_timeout: Some(names::duration(connect_timeout(ctx, pool))),
        ..Default::default()
    };
    // Which services embed their endpoints here is also `Service::endpoints_via_eds`: the
    // push re-translates only EDS when nothing else changed, so keep the two in step.
    match service.resolution {
        Resolution::Dns | Resolution::DnsRoundRobin => {
            let kind = if service.resolution == Resolution::Dns {
                cluster::DiscoveryType::StrictDns
            } else {
                cluster::DiscoveryType::LogicalDns
            };
            c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(kind as i32));
            c.dns_lookup_family = cluster::DnsLookupFamily::V4Only as i32;
            let mut targets: Vec<(String, u32)> = service
                .instances
                .iter()
                .filter(|i| super::endpoints::subset_matches(labels, &i.labels))
                .map(|i| (i.address.clone(), service.endpoint_port(i, port)))
                .collect();
            if targets.is_empty() && service.instances.is_empty() {
                targets.push((service.hostname.clone(), port.number));
            }
            if kind == cluster::DiscoveryType::LogicalDns {
                targets.truncate(1);
            }
            c.load_assignment = Some(assignment(name, &targets));
        }
        Resolution::None if service.instances.is_empty() => {
            // Passthrough service: connect to whatever address the client asked for.
            c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::OriginalDst as i32,
            ));
            c.lb_policy = cluster::LbPolicy::ClusterProvided as i32;
        }
        _ => {
            c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Eds as i32,
            ));
            c.eds_cluster_config = Some(cluster::EdsClusterConfig {
                eds_config: Some(names::ads()),
                service_name: String::new(),
            });
        }
    }
    c.metadata = Some(istio_metadata(service, port));
    if c.lb_policy != cluster::LbPolicy::ClusterProvided as i32 {
        apply_load_balancer(&mut c, policy.load_balancer.as_ref());
        if distributes_by_locality(ctx, policy) {
            // The EDS localities carry the `distribute` weights; this makes them count.
            c.common_lb_config = Some(cluster::CommonLbConfig {
                locality_config_specifier: Some(
                    cluster::common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(
                        Default::default(),
                    ),
                ),
                ..Default::default()
            });
        }
    }
    if let Some(pool) = pool {
        c.circuit_breakers = Some(circuit_breakers_of(pool));
    }
    if let Some(od) = &policy.outlier_detection {
        c.outlier_detection = Some(outlier_of(od));
    }
    AppProtocol::of(&port.protocol, &port.name).apply(&mut c, !ctx.is_router(), pool);
    c
}

/// Whether a `localityLbSetting.distribute` applies (the cluster's policy, else MeshConfig's).
fn distributes_by_locality(ctx: &Context<'_>, policy: &EffectivePolicy) -> bool {
    policy
        .load_balancer
        .as_ref()
        .and_then(|lb| lb.locality_lb_setting.as_ref())
        .or(ctx.config.mesh.locality_lb_setting.as_ref())
        .is_some_and(|s| s.enabled != Some(false) && !s.distribute.is_empty())
}

fn apply_load_balancer(c: &mut Cluster, lb: Option<&LoadBalancerSettings>) {
    // Istio's default is LEAST_REQUEST.
    let mut policy = cluster::LbPolicy::LeastRequest;
    if let Some(lb) = lb {
        if let Some(simple) = lb.simple {
            policy = match simple {
                SimpleLb::RoundRobin => cluster::LbPolicy::RoundRobin,
                SimpleLb::Random => cluster::LbPolicy::Random,
                _ => cluster::LbPolicy::LeastRequest,
            };
        } else if let Some(hash) = &lb.consistent_hash
            && hash.hash_key().is_some()
            && let Some(maglev) = &hash.maglev
        {
            policy = cluster::LbPolicy::Maglev;
            c.lb_config = Some(cluster::LbConfig::MaglevLbConfig(cluster::MaglevLbConfig {
                table_size: maglev
                    .table_size
                    .map(|v| lateen_xds::pb::google::protobuf::UInt64Value { value: v }),
            }));
        } else if let Some(hash) = &lb.consistent_hash
            && hash.hash_key().is_some()
        {
            policy = cluster::LbPolicy::RingHash;
            let min = hash
                .ring_hash
                .as_ref()
                .and_then(|r| r.minimum_ring_size)
                .or(hash.minimum_ring_size);
            c.lb_config = Some(cluster::LbConfig::RingHashLbConfig(
                cluster::RingHashLbConfig {
                    minimum_ring_size: min
                        .map(|v| lateen_xds::pb::google::protobuf::UInt64Value { value: v }),
                    ..Default::default()
                },
            ));
        }
    }
    c.lb_policy = policy as i32;
}

/// The route-level hash policy a consistent-hash load balancer needs.
pub fn hash_policy(
    lb: Option<&LoadBalancerSettings>,
) -> Vec<lateen_xds::pb::envoy::config::route::v3::route_action::HashPolicy> {
    use lateen_xds::pb::envoy::config::route::v3::route_action::{HashPolicy, hash_policy};
    let Some(key) = lb
        .and_then(|l| l.consistent_hash.as_ref())
        .and_then(|h| h.hash_key())
    else {
        return Vec::new();
    };
    let spec =
        match key {
            HashKey::Header(name) => hash_policy::PolicySpecifier::Header(hash_policy::Header {
                header_name: name.to_string(),
                ..Default::default()
            }),
            HashKey::Cookie(cookie) => hash_policy::PolicySpecifier::Cookie(hash_policy::Cookie {
                name: cookie.name.clone(),
                ttl: cookie.ttl.map(names::duration),
                path: cookie.path.clone().unwrap_or_default(),
                attributes: cookie
                    .attributes
                    .iter()
                    .map(|a| hash_policy::CookieAttribute {
                        name: a.name.clone(),
                        value: a.value.clone(),
                    })
                    .collect(),
            }),
            HashKey::SourceIp => hash_policy::PolicySpecifier::ConnectionProperties(
                hash_policy::ConnectionProperties { source_ip: true },
            ),
            HashKey::QueryParameter(name) => {
                hash_policy::PolicySpecifier::QueryParameter(hash_policy::QueryParameter {
                    name: name.to_string(),
                })
            }
        };
    vec![HashPolicy {
        terminal: false,
        policy_specifier: Some(spec),
    }]
}

fn positive(v: Option<i32>) -> Option<lateen_xds::pb::google::protobuf::UInt32Value> {
    v.and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .map(names::uint32)
}

fn circuit_breakers_of(pool: &ConnectionPoolSettings) -> CircuitBreakers {
    let tcp = pool.tcp.as_ref();
    let http = pool.http.as_ref();
    CircuitBreakers {
        thresholds: vec![circuit_breakers::Thresholds {
            max_connections: positive(tcp.and_then(|t| t.max_connections)),
            max_pending_requests: positive(http.and_then(|h| h.http1_max_pending_requests)),
            max_requests: positive(http.and_then(|h| h.http2_max_requests)),
            max_retries: positive(http.and_then(|h| h.max_retries)),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn outlier_of(od: &OutlierDetection) -> EnvoyOutlier {
    let consecutive_5xx = od
        .consecutive_5xx_errors
        .or_else(|| od.consecutive_errors.and_then(|v| u32::try_from(v).ok()));
    EnvoyOutlier {
        consecutive_5xx: consecutive_5xx.map(names::uint32),
        enforcing_consecutive_5xx: Some(names::uint32(if consecutive_5xx == Some(0) {
            0
        } else {
            100
        })),
        consecutive_gateway_failure: od.consecutive_gateway_errors.map(names::uint32),
        enforcing_consecutive_gateway_failure: od
            .consecutive_gateway_errors
            .map(|v| names::uint32(if v > 0 { 100 } else { 0 })),
        consecutive_local_origin_failure: od.consecutive_local_origin_failures.map(names::uint32),
        split_external_local_origin_errors: od.split_external_local_origin_errors.unwrap_or(false),
        interval: od.interval.map(names::duration),
        base_ejection_time: od.base_ejection_time.map(names::duration),
        max_ejection_percent: od
            .max_ejection_percent
            .and_then(|v| u32::try_from(v).ok())
            .map(names::uint32),
        // Istio turns off success-rate ejection: only the configured consecutive errors count.
        enforcing_success_rate: Some(names::uint32(0)),
        ..Default::default()
    }
}

fn assignment(name: &str, targets: &[(String, u32)]) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: targets
                .iter()
                .map(|(host, port)| LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(names::socket(host, *port)),
                        ..Default::default()
                    })),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The service whose endpoint this proxy is on `port` (the first by hostname), which Istio
/// names in the inbound cluster's metadata so that the destination side reports
/// `destination_service*` as the source side does.
fn inbound_service<'a>(ctx: &Context<'a>, port: u32) -> Option<(&'a Service, &'a ServicePort)> {
    ctx.registry.services.iter().find_map(|service| {
        let service: &'a Service = service;
        service
            .instances
            .iter()
            .filter(|i| ctx.proxy.instance_addresses.contains(&i.address))
            .find_map(|instance| {
                service
                    .ports
                    .iter()
                    .find(|p| service.endpoint_port(instance, p) == port)
            })
            .map(|p| (service, p))
    })
}

/// Istio's cluster metadata (`filter_metadata.istio.services[0].host`), from which data
/// planes take the `destination_service*` labels (name and namespace follow from the host).
/// Every map here holds one entry on purpose: protobuf maps are hash maps in the generated
/// types, and a map with several entries would encode differently on every rebuild, making
/// each push resend every cluster.
fn istio_metadata(
    service: &Service,
    _port: &ServicePort,
) -> lateen_xds::pb::envoy::config::core::v3::Metadata {
    use lateen_xds::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};
    let single = |key: &str, value: Value| Struct {
        fields: [(key.to_string(), value)].into_iter().collect(),
    };
    let entry = single(
        "host",
        Value {
            kind: Some(Kind::StringValue(service.hostname.clone())),
        },
    );
    let services = Value {
        kind: Some(Kind::ListValue(ListValue {
            values: vec![Value {
                kind: Some(Kind::StructValue(entry)),
            }],
        })),
    };
    lateen_xds::pb::envoy::config::core::v3::Metadata {
        filter_metadata: [("istio".to_string(), single("services", services))]
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

fn static_cluster(name: &str, ip: &str, port: u32) -> Cluster {
    Cluster {
        name: name.to_string(),
        connect_timeout: Some(names::duration(DEFAULT_CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        load_assignment: Some(assignment(name, &[(ip.to_string(), port)])),
        ..Default::default()
    }
}

fn blackhole() -> Cluster {
    Cluster {
        name: BLACKHOLE_CLUSTER.to_string(),
        connect_timeout: Some(names::duration(DEFAULT_CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        ..Default::default()
    }
}

fn passthrough(name: &str) -> Cluster {
    Cluster {
        name: name.to_string(),
        connect_timeout: Some(names::duration(DEFAULT_CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        ..Default::default()
    }
}

#[cfg(test)]
mod metadata_tests {
    use super::*;
    use lateen_xds::prost::Message;

    #[test]
    fn istio_metadata_encodes_the_same_every_time() {
        let service = Service {
            hostname: "reviews.default.svc.cluster.local".into(),
            namespace: "default".into(),
            ports: Vec::new(),
            resolution: Resolution::Static,
            addresses: Vec::new(),
            instances: Vec::new(),
            export_to: Vec::new(),
        };
        let port = ServicePort {
            number: 9080,
            name: "http".into(),
            protocol: "HTTP".into(),
            target_port: None,
        };
        let first = istio_metadata(&service, &port).encode_to_vec();
        for _ in 0..20 {
            assert_eq!(istio_metadata(&service, &port).encode_to_vec(), first);
        }
    }
}
