//! Telemetry `metrics` overrides: lateend resolves them per sidecar (mesh → namespace →
//! workload, client and server sides apart) into Istio's `istio.stats` HTTP filter with
//! `stats.PluginConfig`, before the router and optional, and lateen-proxy's xDS translation
//! reads that filter back into the listener's overrides.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use lateen_proxy::stats_overrides::{MetricOverrideConfig, StatsConfig};
use lateen_xds::istio_stats::PluginConfig;
use lateen_xds::pb::envoy::config::listener::v3::{Listener, filter};
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_filter,
};
use lateen_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use lateen_xds::prost::{Message, Name};
use lateen_xds::types;

#[path = "common/snapshot.rs"]
mod snapshot;
use snapshot::{decode, sidecar_snapshot, sidecar_snapshot_of};

const SERVICE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1, labels: {app: reviews}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: productpage, namespace: default}
spec:
  hosts: [productpage.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.9.9, labels: {app: productpage}}]
"#;

/// Mesh level removes `request_protocol` everywhere; the namespace level drops
/// `request_bytes` on the client side; the workload level (app: productpage) adds `user`
/// from a header to `requests_total`.
const TELEMETRY: &str = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - tagOverrides:
        request_protocol: {operation: REMOVE}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: ns, namespace: default}
spec:
  metrics:
  - overrides:
    - match: {metric: REQUEST_SIZE, mode: CLIENT}
      disabled: true
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: page, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  metrics:
  - overrides:
    - match: {metric: REQUEST_COUNT}
      tagOverrides:
        user: {value: "request.headers['x-user']"}
"#;

fn http_filters(listener: &Listener) -> Vec<HttpFilter> {
    let chains = listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.as_ref());
    let mut out = Vec::new();
    for f in chains.flat_map(|c| &c.filters) {
        if let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type
            && any.type_url == HttpConnectionManager::type_url()
        {
            let manager = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
            out.extend(manager.http_filters);
        }
    }
    out
}

/// The `istio.stats` configs of the listener's connection managers, checking each sits
/// right before the router and is optional.
fn stats_configs(listener: &Listener) -> Vec<PluginConfig> {
    let filters = http_filters(listener);
    let mut out = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        if f.name != "istio.stats" {
            continue;
        }
        assert!(f.is_optional, "upstream Envoy must be able to skip it");
        assert_eq!(filters[i + 1].name, "envoy.filters.http.router");
        let Some(http_filter::ConfigType::TypedConfig(any)) = &f.config_type else {
            panic!("no typed_config");
        };
        assert_eq!(any.type_url, "type.googleapis.com/stats.PluginConfig");
        out.push(PluginConfig::decode(any.value.as_slice()).unwrap());
    }
    out
}

fn listeners(yaml: &str, app: &str) -> (Listener, Listener) {
    let s = sidecar_snapshot(
        yaml,
        &format!("sidecar~10.0.9.9~{app}-1.default~default.svc.cluster.local"),
        app,
        false,
    );
    (
        decode::<Listener>(&s, types::LISTENER, "0.0.0.0_9080"),
        decode::<Listener>(&s, types::LISTENER, "virtualInbound"),
    )
}

fn metric(
    name: &str,
    drop: bool,
    remove: &[&str],
    upsert: &[(&str, &str)],
) -> MetricOverrideConfig {
    MetricOverrideConfig {
        name: name.into(),
        drop,
        tags_to_remove: remove.iter().map(|t| t.to_string()).collect(),
        dimensions: upsert
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Every metric name istiod writes, with `request_protocol` removed (the mesh level).
const ALL: [&str; 10] = [
    "request_bytes",
    "request_duration_milliseconds",
    "request_messages_total",
    "requests_total",
    "response_bytes",
    "response_messages_total",
    "tcp_connections_closed_total",
    "tcp_connections_opened_total",
    "tcp_received_bytes_total",
    "tcp_sent_bytes_total",
];

#[test]
fn levels_merge_per_side_into_istio_stats_and_lateen_proxy_reads_them() {
    let (outbound, inbound) = listeners(&format!("{SERVICE}---\n{TELEMETRY}"), "productpage");
    let out = stats_configs(&outbound);
    assert_eq!(out.len(), 1, "one connection manager on 0.0.0.0_9080");
    let client = &out[0];
    assert!(!client.disable_host_header_fallback);
    let names: Vec<&str> = client.metrics.iter().map(|m| m.name.as_str()).collect();
    let mut sorted = ALL.to_vec();
    sorted.sort();
    assert_eq!(names, sorted);
    for m in &client.metrics {
        assert_eq!(m.tags_to_remove, ["request_protocol"], "{}", m.name);
        assert_eq!(m.drop, m.name == "request_bytes", "{}", m.name);
        if m.name == "requests_total" {
            assert_eq!(
                m.dimensions.get("user").map(String::as_str),
                Some("request.headers['x-user']")
            );
        } else {
            assert!(m.dimensions.is_empty(), "{}", m.name);
        }
    }
    let server = stats_configs(&inbound);
    assert!(!server.is_empty());
    for config in &server {
        assert!(
            config.disable_host_header_fallback,
            "istiod sets it inbound"
        );
        assert!(
            config.metrics.iter().all(|m| !m.drop),
            "REQUEST_SIZE is dropped only for CLIENT"
        );
    }

    // lateen-proxy's translation of the same listener.
    let translated = lateen_proxy::xds::translate::listener::translate(&outbound)
        .unwrap_or_else(|e| panic!("lateen-proxy refuses lateend's listener: {e:?}"));
    let stats = translated.listeners[0].stats.clone().expect("overrides");
    let expected = sorted
        .iter()
        .map(|name| {
            let upsert: &[(&str, &str)] = if *name == "requests_total" {
                &[("user", "request.headers['x-user']")]
            } else {
                &[]
            };
            metric(
                name,
                *name == "request_bytes",
                &["request_protocol"],
                upsert,
            )
        })
        .collect();
    assert_eq!(stats, StatsConfig { metrics: expected });
}

#[test]
fn no_overrides_no_filter_and_all_metrics_disabled_drops_every_metric() {
    let (outbound, inbound) = listeners(SERVICE, "productpage");
    assert!(stats_configs(&outbound).is_empty());
    assert!(stats_configs(&inbound).is_empty());

    let off = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: all-off, namespace: default}
spec:
  metrics:
  - overrides:
    - match: {metric: ALL_METRICS}
      disabled: true
"#;
    let (outbound, _) = listeners(&format!("{SERVICE}---\n{off}"), "ratings");
    let configs = stats_configs(&outbound);
    assert_eq!(configs.len(), 1);
    assert_eq!(configs[0].metrics.len(), 10);
    assert!(configs[0].metrics.iter().all(|m| m.drop));

    // Another provider than prometheus: nothing for lateen-proxy's metrics.
    let other = off.replace(
        "  - overrides:",
        "  - providers: [{name: stackdriver}]\n    overrides:",
    );
    let (outbound, _) = listeners(&format!("{SERVICE}---\n{other}"), "ratings");
    assert!(stats_configs(&outbound).is_empty());
}

const TCP_SERVICE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 3306, name: tcp, protocol: TCP}]
  endpoints: [{address: 10.0.3.1, labels: {app: db}}]
"#;

/// The filter names of the first chain of `listener` holding a TCP proxy.
fn tcp_chain_filters(listener: &Listener) -> Vec<String> {
    let chain = listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.as_ref())
        .find(|c| {
            c.filters.iter().any(|f| {
                matches!(&f.config_type, Some(filter::ConfigType::TypedConfig(any)) if any.type_url == TcpProxy::type_url())
            })
        })
        .expect("a TCP proxy chain");
    chain.filters.iter().map(|f| f.name.clone()).collect()
}

#[test]
fn tcp_proxies_get_the_network_filter_on_lateen_proxy_only() {
    let yaml = format!("{TCP_SERVICE}---\n{TELEMETRY}");
    let node = "sidecar~10.0.9.9~productpage-1.default~default.svc.cluster.local";
    let listener = |agent: &str| {
        let s = sidecar_snapshot_of(&yaml, node, "productpage", false, agent);
        decode::<Listener>(&s, types::LISTENER, "0.0.0.0_3306")
    };
    let envoy = listener("envoy");
    assert_eq!(
        tcp_chain_filters(&envoy),
        ["envoy.filters.network.tcp_proxy"],
        "upstream Envoy refuses unknown network filters"
    );
    let lateen = listener("lateen-proxy");
    assert_eq!(
        tcp_chain_filters(&lateen),
        ["istio.stats", "envoy.filters.network.tcp_proxy"]
    );
    let translated = lateen_proxy::xds::translate::listener::translate(&lateen)
        .unwrap_or_else(|e| panic!("lateen-proxy refuses lateend's listener: {e:?}"));
    let stats = translated.listeners[0].stats.clone().expect("overrides");
    let opened = stats
        .metrics
        .iter()
        .find(|m| m.name == "tcp_connections_opened_total")
        .expect("the TCP metrics are listed");
    assert_eq!(opened.tags_to_remove, ["request_protocol"]);
}
