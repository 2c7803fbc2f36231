//! Istio's naming conventions and small Envoy building blocks shared by the translators.

use std::collections::BTreeSet;

use lateen_xds::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress, address, config_source,
    socket_address,
};
use lateen_xds::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use lateen_xds::pb::google::protobuf;
use lateen_xds::prost::{Message, Name};

use crate::registry::Service;

/// Cluster that drops everything (REGISTRY_ONLY and unknown destinations).
pub const BLACKHOLE_CLUSTER: &str = "BlackHoleCluster";
/// ORIGINAL_DST cluster for outbound traffic to unknown destinations (ALLOW_ANY).
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
/// ORIGINAL_DST cluster for inbound traffic to ports without a listener of their own.
pub const INBOUND_PASSTHROUGH_CLUSTER: &str = "InboundPassthroughCluster";
/// Outbound capture listener (REDIRECT mode).
pub const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
/// Inbound capture listener (REDIRECT mode).
pub const VIRTUAL_INBOUND: &str = "virtualInbound";
pub const OUTBOUND_CAPTURE_PORT: u16 = 15001;
pub const INBOUND_CAPTURE_PORT: u16 = 15006;

pub const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";
pub const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
pub const CORS_FILTER: &str = "envoy.filters.http.cors";

/// `outbound|PORT|SUBSET|HOST`.
pub fn outbound_cluster(port: u32, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// `inbound|PORT||`.
pub fn inbound_cluster(port: u32) -> String {
    format!("inbound|{port}||")
}

/// Listener name `ADDRESS_PORT` (`0.0.0.0_9080`, `127.0.0.1_9080`).
pub fn listener_name(address: &str, port: u32) -> String {
    format!("{address}_{port}")
}

/// Packs a message into an `Any` with its type URL.
pub fn pack<M: Message + Name>(m: &M) -> protobuf::Any {
    protobuf::Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

pub fn duration(d: std::time::Duration) -> protobuf::Duration {
    protobuf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub fn uint32(v: u32) -> protobuf::UInt32Value {
    protobuf::UInt32Value { value: v }
}

pub fn boolean(v: bool) -> protobuf::BoolValue {
    protobuf::BoolValue { value: v }
}

/// A TCP socket address.
pub fn socket(ip: &str, port: u32) -> lateen_xds::pb::envoy::config::core::v3::Address {
    lateen_xds::pb::envoy::config::core::v3::Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

/// "Get it over ADS" config source.
pub fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

/// An Istio percentage (0..=100, fractions allowed) as Envoy's per-million fraction.
pub fn fraction(percent: f64) -> FractionalPercent {
    let per_million = (percent.clamp(0.0, 100.0) * 10_000.0).round();
    FractionalPercent {
        // Clamped above to 0..=1_000_000, so the cast cannot truncate.
        numerator: per_million as u32,
        denominator: fractional_percent::DenominatorType::Million as i32,
    }
}

/// Domains of a service's virtual host on `port`, like Istio: the host and `host:port`; for a
/// Kubernetes-style name `NAME.NS.svc.SUFFIX` also `NAME.NS`, `NAME.NS.svc` (and the bare
/// `NAME` for proxies in NS), each with and without `:port`; and the service's addresses.
/// Domains already in `used` are skipped (Envoy rejects a domain on two virtual hosts).
pub fn service_domains(
    service: &Service,
    port: u32,
    proxy_namespace: &str,
    suffix: &str,
    used: &mut BTreeSet<String>,
) -> Vec<String> {
    let host = service.hostname.as_str();
    let mut names = vec![host.to_string()];
    let k8s_tail = format!(".svc.{suffix}");
    if let Some(name_ns) = host.strip_suffix(&k8s_tail)
        && let Some((name, ns)) = name_ns.split_once('.')
        && !ns.contains('.')
    {
        names.push(format!("{name}.{ns}.svc"));
        names.push(name_ns.to_string());
        if ns == proxy_namespace {
            names.push(name.to_string());
        }
    }
    names.extend(
        service
            .addresses
            .iter()
            .filter(|a| !a.contains('/'))
            .cloned(),
    );
    let mut out = Vec::new();
    for n in names {
        for d in [n.clone(), format!("{n}:{port}")] {
            if used.insert(d.clone()) {
                out.push(d);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lateen_api::networking::Resolution;

    #[test]
    fn k8s_domains() {
        let svc = Service {
            hostname: "reviews.default.svc.cluster.local".into(),
            namespace: "default".into(),
            ports: vec![],
            resolution: Resolution::Static,
            addresses: vec!["240.0.0.1".into()],
            instances: vec![],
            export_to: vec![],
        };
        let mut used = BTreeSet::new();
        let d = service_domains(&svc, 9080, "default", "cluster.local", &mut used);
        for want in [
            "reviews",
            "reviews:9080",
            "reviews.default",
            "reviews.default.svc:9080",
            "240.0.0.1:9080",
        ] {
            assert!(d.contains(&want.to_string()), "{want} missing from {d:?}");
        }
        let other = service_domains(&svc, 9080, "prod", "cluster.local", &mut BTreeSet::new());
        assert!(!other.contains(&"reviews".to_string()));
        assert!(service_domains(&svc, 9080, "default", "cluster.local", &mut used).is_empty());
        assert_eq!(fraction(12.5).numerator, 125_000);
    }
}
