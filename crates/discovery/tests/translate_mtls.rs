//! lateend's inbound mTLS: a sidecar that holds a certificate (`LATEEN_MTLS`) gets Istio's
//! PERMISSIVE chains by default, STRICT/DISABLE and port-level modes from PeerAuthentication;
//! a sidecar without one keeps its plaintext chains. Outbound: auto mTLS
//! `transport_socket_matches`, DestinationRule ISTIO_MUTUAL/DISABLE per subset and port, and
//! EDS endpoints marked `tlsMode: istio` when their workload has a sidecar.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use lateen_xds::pb::envoy::config::cluster::v3::Cluster;
use lateen_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use lateen_xds::pb::envoy::config::listener::v3::{FilterChain, Listener};
use lateen_xds::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
use lateen_xds::prost::Message;
use lateen_xds::{Snapshot, types};

#[path = "common/snapshot.rs"]
mod snapshot;
use snapshot::{decode, sidecar_snapshot};

const SERVICE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 3306, name: tcp-db, protocol: TCP}]
  endpoints:
  - {address: 10.0.0.1, labels: {app: reviews, security.istio.io/tlsMode: istio}, serviceAccount: bookinfo-reviews}
  - {address: 10.0.0.2, labels: {app: reviews, version: v2}, serviceAccount: bookinfo-reviews}
"#;

/// The virtualInbound listener of the reviews sidecar under `extra` configuration.
fn virtual_inbound(extra: &str, mtls: bool) -> Listener {
    decode(
        &reviews_snapshot(extra, mtls),
        types::LISTENER,
        "virtualInbound",
    )
}

/// The configuration of the reviews sidecar (10.0.0.1) under `extra` configuration.
fn reviews_snapshot(extra: &str, mtls: bool) -> Snapshot {
    sidecar_snapshot(
        &format!("{SERVICE}---\n{extra}"),
        "sidecar~10.0.0.1~reviews-1.default~default.svc.cluster.local",
        "reviews",
        mtls,
    )
}

/// Each chain of `port` as (transport_protocol, has a TLS transport socket, ALPN matches).
fn chains_of(listener: &Listener, port: u32) -> Vec<(String, bool, Vec<String>)> {
    listener
        .filter_chains
        .iter()
        .filter(|c| {
            c.filter_chain_match
                .as_ref()
                .and_then(|m| m.destination_port)
                .is_some_and(|p| p.value == port)
        })
        .map(|c: &FilterChain| {
            let m = c.filter_chain_match.clone().unwrap_or_default();
            (
                m.transport_protocol,
                c.transport_socket
                    .as_ref()
                    .is_some_and(|t| t.name == "envoy.transport_sockets.tls"),
                m.application_protocols,
            )
        })
        .collect()
}

fn has_tls_inspector(listener: &Listener) -> bool {
    listener
        .listener_filters
        .iter()
        .any(|f| f.name == "envoy.filters.listener.tls_inspector")
}

const PERMISSIVE_HTTP_ALPN: [&str; 5] = [
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
    "istio-peer-exchange",
    "istio",
];

#[test]
fn a_sidecar_with_a_certificate_is_permissive_by_default_and_one_without_stays_plaintext() {
    let plain = virtual_inbound("", false);
    assert!(!has_tls_inspector(&plain));
    assert_eq!(chains_of(&plain, 9080), [(String::new(), false, vec![])]);

    let mtls = virtual_inbound("", true);
    assert!(has_tls_inspector(&mtls));
    let alpn = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        chains_of(&mtls, 9080),
        [
            ("tls".to_string(), true, alpn(&PERMISSIVE_HTTP_ALPN)),
            ("raw_buffer".to_string(), false, vec![]),
        ]
    );
    assert_eq!(
        chains_of(&mtls, 3306),
        [
            (
                "tls".to_string(),
                true,
                alpn(&["istio-peer-exchange", "istio"])
            ),
            ("raw_buffer".to_string(), false, vec![]),
        ]
    );
}

#[test]
fn peer_authentication_strict_disable_and_port_level_modes() {
    let strict = virtual_inbound(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: default}\nspec: {mtls: {mode: STRICT}}\n",
        true,
    );
    assert_eq!(
        chains_of(&strict, 9080),
        [("tls".to_string(), true, vec![])]
    );
    assert_eq!(
        chains_of(&strict, 3306),
        [("tls".to_string(), true, vec![])]
    );

    let port_level = virtual_inbound(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: reviews, namespace: default}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: STRICT}\n  portLevelMtls:\n    3306: {mode: DISABLE}\n",
        true,
    );
    assert_eq!(
        chains_of(&port_level, 9080),
        [("tls".to_string(), true, vec![])]
    );
    assert_eq!(
        chains_of(&port_level, 3306),
        [(String::new(), false, vec![])]
    );
}

const REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";

fn upstream_tls(
    socket: &lateen_xds::pb::envoy::config::core::v3::TransportSocket,
) -> UpstreamTlsContext {
    use lateen_xds::pb::envoy::config::core::v3::transport_socket::ConfigType;
    assert_eq!(socket.name, "envoy.transport_sockets.tls");
    match &socket.config_type {
        Some(ConfigType::TypedConfig(any)) => {
            UpstreamTlsContext::decode(any.value.as_slice()).unwrap_or_else(|e| panic!("{e}"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn auto_mtls_clusters_and_sidecar_endpoints_carry_tls_mode() {
    let plain: Cluster = decode(&reviews_snapshot("", false), types::CLUSTER, REVIEWS);
    assert!(plain.transport_socket_matches.is_empty() && plain.transport_socket.is_none());

    let snapshot = reviews_snapshot("", true);
    let auto: Cluster = decode(&snapshot, types::CLUSTER, REVIEWS);
    assert_eq!(auto.transport_socket_matches.len(), 2);
    let tls = upstream_tls(
        auto.transport_socket_matches[0]
            .transport_socket
            .as_ref()
            .unwrap_or_else(|| panic!("tls socket")),
    );
    assert_eq!(
        tls.sni,
        "outbound_.9080_._.reviews.default.svc.cluster.local"
    );
    let sans = format!("{:?}", tls.common_tls_context);
    assert!(
        sans.contains("spiffe://cluster.local/ns/default/sa/bookinfo-reviews")
            && sans.contains("ROOTCA")
            && sans.contains("sds-grpc"),
        "{sans}"
    );

    // Endpoints say which workloads have a sidecar.
    let eds: ClusterLoadAssignment = decode(&snapshot, types::ENDPOINT, REVIEWS);
    let marked: Vec<bool> = eds
        .endpoints
        .iter()
        .flat_map(|l| &l.lb_endpoints)
        .map(|e| {
            e.metadata.as_ref().is_some_and(|m| {
                m.filter_metadata
                    .contains_key("envoy.transport_socket_match")
            })
        })
        .collect();
    assert_eq!(marked, [true, false]);
}

#[test]
fn destination_rule_tls_per_subset_and_port() {
    let snapshot = reviews_snapshot(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: default}\nspec:\n  host: reviews\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n  subsets:\n  - name: v2\n    labels: {version: v2}\n    trafficPolicy:\n      portLevelSettings:\n      - port: {number: 9080}\n        tls: {mode: DISABLE}\n",
        true,
    );
    let mutual: Cluster = decode(&snapshot, types::CLUSTER, REVIEWS);
    assert!(mutual.transport_socket_matches.is_empty());
    let tls = upstream_tls(
        mutual
            .transport_socket
            .as_ref()
            .unwrap_or_else(|| panic!("ISTIO_MUTUAL socket")),
    );
    assert_eq!(
        tls.sni,
        "outbound_.9080_._.reviews.default.svc.cluster.local"
    );
    let v2: Cluster = decode(
        &snapshot,
        types::CLUSTER,
        "outbound|9080|v2|reviews.default.svc.cluster.local",
    );
    assert!(v2.transport_socket.is_none() && v2.transport_socket_matches.is_empty());
}
