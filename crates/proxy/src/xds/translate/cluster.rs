//! `Cluster` → [`model::Cluster`]: EDS, STATIC and STRICT_DNS/LOGICAL_DNS with IP addresses
//! (names are not resolved), ORIGINAL_DST as passthrough; connect timeout, load balancing
//! (round robin, random, least request, ring hash, Maglev, locality-weighted), circuit
//! breakers, outlier detection, upstream HTTP/2, the limits on each upstream connection
//! (idle timeout, requests, lifetime), source address and Istio's service metadata.

use lateen_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use lateen_xds::pb::envoy::config::core::v3::{
    HttpProtocolOptions as CommonHttpProtocolOptions, config_source,
};
use lateen_xds::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use lateen_xds::pb::google::protobuf::{Struct, value::Kind};

use super::{Check, Rejection, duration, socket_addr, unpack};
use crate::config::model;

/// A translated cluster and where its endpoints come from.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslatedCluster {
    /// Endpoints filled for STATIC/DNS clusters; EDS fills them later.
    pub cluster: model::Cluster,
    /// The EDS resource name to subscribe to (`service_name`, else the cluster name).
    pub eds_name: Option<String>,
    /// ORIGINAL_DST: connections go where the client sent them.
    pub original_dst: bool,
}

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

#[allow(deprecated)] // http2_protocol_options: still what many control planes send
pub fn translate(source: &Cluster) -> Result<TranslatedCluster, Rejection> {
    let check = Check::new("Cluster", &source.name);
    if source.name.is_empty() {
        return Err(check.reject("name", "must not be empty"));
    }
    let mut cluster = empty(&source.name);
    if let Some(timeout) = &source.connect_timeout {
        cluster.connect_timeout =
            duration(timeout).map_err(|reason| check.reject("connect_timeout", reason))?;
    }

    let kind = match &source.cluster_discovery_type {
        None => cluster::DiscoveryType::Static,
        Some(cluster::ClusterDiscoveryType::Type(kind)) => cluster::DiscoveryType::try_from(*kind)
            .map_err(|_| check.reject("type", format!("unknown discovery type {kind}")))?,
        Some(cluster::ClusterDiscoveryType::ClusterType(custom)) => {
            return Err(check.reject(
                "cluster_type",
                format!("custom cluster type {:?} is not supported", custom.name),
            ));
        }
    };
    let original_dst = kind == cluster::DiscoveryType::OriginalDst;

    cluster.lb_policy = match cluster::LbPolicy::try_from(source.lb_policy) {
        Ok(cluster::LbPolicy::RoundRobin) => model::LbPolicy::RoundRobin,
        Ok(cluster::LbPolicy::LeastRequest) => model::LbPolicy::LeastRequest,
        Ok(cluster::LbPolicy::RingHash) => model::LbPolicy::RingHash,
        Ok(cluster::LbPolicy::Maglev) => model::LbPolicy::Maglev,
        Ok(cluster::LbPolicy::Random) => model::LbPolicy::Random,
        Ok(cluster::LbPolicy::ClusterProvided) if original_dst => model::LbPolicy::RoundRobin,
        Ok(other) => {
            return Err(check.reject(
                "lb_policy",
                format!("{} is not supported", other.as_str_name()),
            ));
        }
        Err(_) => {
            return Err(check.reject("lb_policy", format!("unknown policy {}", source.lb_policy)));
        }
    };

    cluster.original_dst = original_dst;
    let mut eds_name = None;
    match kind {
        cluster::DiscoveryType::Eds => {
            let config = source
                .eds_cluster_config
                .as_ref()
                .ok_or_else(|| check.reject("eds_cluster_config", "an EDS cluster needs it"))?;
            let ads = config.eds_config.as_ref().is_some_and(|source| {
                matches!(
                    source.config_source_specifier,
                    Some(config_source::ConfigSourceSpecifier::Ads(_))
                )
            });
            if !ads {
                return Err(check.reject("eds_cluster_config.eds_config", "only ADS is supported"));
            }
            eds_name = Some(if config.service_name.is_empty() {
                source.name.clone()
            } else {
                config.service_name.clone()
            });
            if source.load_assignment.is_some() {
                return Err(check.reject(
                    "load_assignment",
                    "an EDS cluster takes its endpoints from EDS",
                ));
            }
        }
        cluster::DiscoveryType::Static
        | cluster::DiscoveryType::StrictDns
        | cluster::DiscoveryType::LogicalDns => {
            if let Some(assignment) = &source.load_assignment {
                let mut endpoints =
                    super::endpoint::endpoints(assignment, &check).map_err(|rejection| {
                        Rejection {
                            field: format!("load_assignment.{}", rejection.field),
                            ..rejection
                        }
                    })?;
                if kind == cluster::DiscoveryType::LogicalDns {
                    endpoints.truncate(1);
                }
                cluster.endpoints = endpoints;
            }
        }
        cluster::DiscoveryType::OriginalDst => {
            if source.load_assignment.is_some() {
                return Err(check.reject(
                    "load_assignment",
                    "an ORIGINAL_DST cluster has no endpoints",
                ));
            }
        }
    }

    if source.http2_protocol_options.is_some() {
        cluster.protocol = model::UpstreamProtocol::Http2;
    }
    for (name, options) in &source.typed_extension_protocol_options {
        let path = format!("typed_extension_protocol_options[{name:?}]");
        if name != HTTP_PROTOCOL_OPTIONS {
            return Err(check.reject(path, "not supported by lateen-proxy"));
        }
        let options: HttpProtocolOptions =
            unpack(options).map_err(|reason| check.reject(&path, reason))?;
        let reject =
            |(field, reason): (String, String)| check.reject(format!("{path}.{field}"), reason);
        cluster.protocol = upstream_protocol(&options).map_err(reject)?;
        if let Some(common) = &options.common_http_protocol_options {
            cluster.connection_limits = connection_limits(common).map_err(|(field, reason)| {
                reject((format!("common_http_protocol_options.{field}"), reason))
            })?;
        }
    }

    if let Some(bind) = &source.upstream_bind_config {
        let rest = lateen_xds::pb::envoy::config::core::v3::BindConfig {
            source_address: None,
            ..bind.clone()
        };
        check.no_leftover("upstream_bind_config", &rest)?;
        let address = bind
            .source_address
            .as_ref()
            .ok_or_else(|| check.reject("upstream_bind_config.source_address", "missing"))?;
        let socket = lateen_xds::pb::envoy::config::core::v3::Address {
            address: Some(
                lateen_xds::pb::envoy::config::core::v3::address::Address::SocketAddress(
                    address.clone(),
                ),
            ),
        };
        let address = socket_addr(Some(&socket))
            .map_err(|reason| check.reject("upstream_bind_config.source_address", reason))?;
        cluster.source_address = Some(address.ip());
    }
    if let Some(istio) = source
        .metadata
        .as_ref()
        .and_then(|metadata| metadata.filter_metadata.get("istio"))
    {
        cluster.destination = destination_of(istio);
    }

    match &source.lb_config {
        None => {}
        Some(cluster::LbConfig::RingHashLbConfig(ring))
            if cluster.lb_policy == model::LbPolicy::RingHash =>
        {
            // The hash function and the ring's upper bound change which host a key lands
            // on, not that it always lands on the same one.
            cluster.minimum_ring_size = ring
                .minimum_ring_size
                .as_ref()
                .map(|size| size.value)
                .filter(|size| *size > 0);
        }
        Some(cluster::LbConfig::MaglevLbConfig(maglev))
            if cluster.lb_policy == model::LbPolicy::Maglev =>
        {
            cluster.minimum_ring_size = maglev
                .table_size
                .as_ref()
                .map(|size| size.value)
                .filter(|size| *size > 0);
        }
        // Active-request bias and slow start tune the choice; power of two choices stays.
        Some(cluster::LbConfig::LeastRequestLbConfig(_))
            if cluster.lb_policy == model::LbPolicy::LeastRequest => {}
        Some(_) => {
            return Err(check.reject("lb_config", "does not match lb_policy or is not supported"));
        }
    }
    if let Some(common) = &source.common_lb_config {
        common_lb_config(common).map_err(|(field, reason)| {
            check.reject(super::join("common_lb_config", &field), reason)
        })?;
    }
    if let Some(breakers) = &source.circuit_breakers {
        cluster.circuit_breakers =
            super::policy::breakers_of(breakers).map_err(|(field, reason)| {
                check.reject(super::join("circuit_breakers", &field), reason)
            })?;
    }
    if let Some(outlier) = &source.outlier_detection {
        cluster.outlier_detection = Some(super::policy::outlier_of(outlier).map_err(
            |(field, reason)| check.reject(super::join("outlier_detection", &field), reason),
        )?);
    }

    cluster.tls = match (
        &source.transport_socket,
        source.transport_socket_matches.as_slice(),
    ) {
        (None, []) => None,
        (Some(socket), []) => super::tls::upstream_socket(socket).map_err(|(field, reason)| {
            check.reject(super::join("transport_socket", &field), reason)
        })?,
        (_, matches) => Some(
            super::tls::socket_matches(matches)
                .map_err(|(field, reason)| check.reject(field, reason))?,
        ),
    };

    // Informational: alt_stat_name, metadata. DNS lookup family only matters when names
    // are resolved, which they are not.
    let rest = Cluster {
        name: String::new(),
        alt_stat_name: String::new(),
        connect_timeout: None,
        cluster_discovery_type: None,
        lb_policy: 0,
        eds_cluster_config: None,
        load_assignment: None,
        http2_protocol_options: None,
        typed_extension_protocol_options: Default::default(),
        upstream_bind_config: None,
        metadata: None,
        circuit_breakers: None,
        outlier_detection: None,
        lb_config: None,
        common_lb_config: None,
        dns_lookup_family: 0,
        // Istio sends both with auto mTLS: the matches decide, the socket is their default.
        transport_socket: None,
        transport_socket_matches: Vec::new(),
        ..source.clone()
    };
    check.no_leftover("", &rest)?;
    Ok(TranslatedCluster {
        cluster,
        eds_name,
        original_dst,
    })
}

/// Istio's `common_lb_config`: empty, or asking for locality-weighted balancing, which
/// the endpoint translation applies from the locality weights ([`super::endpoint`]).
/// Zone-aware routing and the other knobs change which host is picked and are refused.
fn common_lb_config(common: &cluster::CommonLbConfig) -> Result<(), (String, String)> {
    use cluster::common_lb_config::LocalityConfigSpecifier;
    match &common.locality_config_specifier {
        None | Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_)) => {}
        Some(_) => {
            return Err((
                "zone_aware_lb_config".into(),
                "zone-aware routing is not supported by lateen-proxy".into(),
            ));
        }
    }
    let left = super::fields::leftover(&cluster::CommonLbConfig {
        locality_config_specifier: None,
        ..common.clone()
    });
    if left.is_empty() {
        Ok(())
    } else {
        Err((left.join(", "), "not supported by lateen-proxy".into()))
    }
}

/// A cluster with Envoy's defaults and no endpoints: HTTP/1.1 upstream unless the cluster's
/// protocol options say otherwise (an h2c client is then bridged to HTTP/1.1, as by Envoy).
pub fn empty(name: &str) -> model::Cluster {
    model::Cluster {
        name: name.to_string(),
        protocol: model::UpstreamProtocol::Http1,
        connect_timeout: model::defaults::connect_timeout(),
        lb_policy: model::LbPolicy::RoundRobin,
        endpoints: Vec::new(),
        source_address: None,
        destination: model::Destination::default(),
        original_dst: false,
        minimum_ring_size: None,
        circuit_breakers: None,
        outlier_detection: None,
        tls: None,
        connection_limits: Default::default(),
    }
}

fn upstream_protocol(
    options: &HttpProtocolOptions,
) -> Result<model::UpstreamProtocol, (String, String)> {
    use http_protocol_options::UpstreamProtocolOptions as Upstream;
    use http_protocol_options::explicit_http_config::ProtocolConfig;
    let rest = HttpProtocolOptions {
        upstream_protocol_options: None,
        common_http_protocol_options: None,
        ..options.clone()
    };
    let left = super::fields::leftover(&rest);
    if !left.is_empty() {
        return Err((left.join(", "), "not supported by lateen-proxy".into()));
    }
    Ok(match &options.upstream_protocol_options {
        None => model::UpstreamProtocol::Http1,
        Some(Upstream::UseDownstreamProtocolConfig(_)) => model::UpstreamProtocol::Downstream,
        Some(Upstream::ExplicitHttpConfig(explicit)) => match &explicit.protocol_config {
            Some(ProtocolConfig::HttpProtocolOptions(_)) | None => model::UpstreamProtocol::Http1,
            Some(ProtocolConfig::Http2ProtocolOptions(_)) => model::UpstreamProtocol::Http2,
            Some(ProtocolConfig::Http3ProtocolOptions(_)) => {
                return Err((
                    "explicit_http_config.http3_protocol_options".into(),
                    "HTTP/3 is not supported".into(),
                ));
            }
        },
        Some(Upstream::AutoConfig(_)) => {
            return Err((
                "auto_config".into(),
                "ALPN protocol selection needs TLS, not supported".into(),
            ));
        }
    })
}

/// The limits on each upstream connection that istiod sets from a DestinationRule's
/// `connectionPool`; the other common options are refused.
fn connection_limits(
    common: &CommonHttpProtocolOptions,
) -> Result<model::ConnectionLimits, (String, String)> {
    let rest = CommonHttpProtocolOptions {
        idle_timeout: None,
        max_requests_per_connection: None,
        max_connection_duration: None,
        ..*common
    };
    let left = super::fields::leftover(&rest);
    if !left.is_empty() {
        return Err((left.join(", "), "not supported by lateen-proxy".into()));
    }
    let optional = |field: &str, value: Option<&lateen_xds::pb::google::protobuf::Duration>| {
        value
            .map(duration)
            .transpose()
            .map_err(|reason| (field.to_string(), reason))
    };
    // Zero means "no limit" for all three, as in Envoy; an idle timeout of zero is kept, as
    // an unset one means Envoy's default of 1 h.
    let nonzero = |d: Option<std::time::Duration>| d.filter(|d| !d.is_zero());
    Ok(model::ConnectionLimits {
        idle_timeout: optional("idle_timeout", common.idle_timeout.as_ref())?,
        max_requests_per_connection: common
            .max_requests_per_connection
            .as_ref()
            .map(|max| max.value)
            .filter(|max| *max > 0),
        max_connection_duration: nonzero(optional(
            "max_connection_duration",
            common.max_connection_duration.as_ref(),
        )?),
    })
}

/// Istio's cluster metadata: `istio.services[0]` names the service behind the cluster.
fn destination_of(istio: &Struct) -> model::Destination {
    let text = |value: Option<&lateen_xds::pb::google::protobuf::Value>| match value
        .and_then(|v| v.kind.as_ref())
    {
        Some(Kind::StringValue(text)) => Some(text.clone()),
        _ => None,
    };
    let first_service = match istio.fields.get("services").and_then(|v| v.kind.as_ref()) {
        Some(Kind::ListValue(list)) => list.values.first().and_then(|v| match &v.kind {
            Some(Kind::StructValue(service)) => Some(service.clone()),
            _ => None,
        }),
        _ => None,
    };
    let Some(service) = first_service else {
        return model::Destination::default();
    };
    model::Destination {
        service: text(service.fields.get("host")),
        service_name: text(service.fields.get("name")),
        namespace: text(service.fields.get("namespace")),
        ..Default::default()
    }
}
