//! Translation of Istio resources into Envoy resources, checked on the decoded protos: what a
//! real Envoy accepts is covered by envoy_acceptance.rs; this checks the mapping in detail.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use lateen_discovery::translate::build_snapshot;
use lateen_discovery::{Config, Proxy, Registry};
use lateen_test_support::mesh_fixtures::{ROUTES, SERVICES};
use lateen_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use lateen_xds::pb::envoy::config::core::v3::{address, grpc_service};
use lateen_xds::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use lateen_xds::pb::envoy::config::listener::v3::{Listener, filter};
use lateen_xds::pb::envoy::config::route::v3::{
    Route, RouteConfiguration, route, route_action, route_match,
};
use lateen_xds::pb::envoy::config::trace;
use lateen_xds::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use lateen_xds::prost::Message;
use lateen_xds::{ProxyNode, Snapshot, types};

#[path = "common/snapshot.rs"]
mod snapshot;
use snapshot::{decode, names};

fn config(yaml: &str) -> Config {
    let loaded = lateen_api::load(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
    Config {
        resources: loaded.resources().cloned().collect(),
        ..Config::default()
    }
}

fn proxy(id: &str, metadata: serde_json::Value) -> Proxy {
    Proxy::from_node(&ProxyNode {
        id: id.to_string(),
        cluster: String::new(),
        metadata,
        user_agent: "envoy".to_string(),
    })
}

fn sidecar_in_default() -> Proxy {
    proxy(
        "sidecar~10.0.9.9~productpage-1.default~default.svc.cluster.local",
        serde_json::json!({"NAMESPACE": "default", "LABELS": {"app": "productpage"}}),
    )
}

fn snapshot(yaml: &str, p: &Proxy) -> Snapshot {
    let cfg = config(yaml);
    let registry = Registry::build(&cfg, &[]);
    build_snapshot(&cfg, &registry, p)
}

fn route_named<'a>(rc: &'a RouteConfiguration, name: &str) -> &'a Route {
    rc.virtual_hosts
        .iter()
        .flat_map(|v| &v.routes)
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no route {name}"))
}

fn action(r: &Route) -> &lateen_xds::pb::envoy::config::route::v3::RouteAction {
    match &r.action {
        Some(route::Action::Route(a)) => a,
        other => panic!("route {} is not a RouteAction: {other:?}", r.name),
    }
}

#[test]
fn destination_rule_policies_merge_per_port_and_subset() {
    let s = snapshot(SERVICES, &sidecar_in_default());
    let base: Cluster = decode(
        &s,
        types::CLUSTER,
        "outbound|9080||reviews.default.svc.cluster.local",
    );
    // portLevelSettings (ROUND_ROBIN) overrides the top level (RANDOM).
    assert_eq!(base.lb_policy, cluster::LbPolicy::RoundRobin as i32);
    assert_eq!(base.connect_timeout.map(|d| d.seconds), Some(2));
    let t = &base
        .circuit_breakers
        .as_ref()
        .expect("circuit breakers")
        .thresholds[0];
    assert_eq!(t.max_connections.map(|v| v.value), Some(10));
    assert_eq!(t.max_pending_requests.map(|v| v.value), Some(5));
    assert_eq!(t.max_requests.map(|v| v.value), Some(20));
    assert_eq!(t.max_retries.map(|v| v.value), Some(3));
    let od = base.outlier_detection.as_ref().expect("outlier detection");
    assert_eq!(od.consecutive_5xx.map(|v| v.value), Some(7));
    assert_eq!(od.base_ejection_time.map(|d| d.seconds), Some(60));
    assert_eq!(od.max_ejection_percent.map(|v| v.value), Some(50));
    assert!(matches!(
        base.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(t)) if t == cluster::DiscoveryType::Eds as i32
    ));

    // The subset's consistent hash wins for v1: RING_HASH, and its routes carry the cookie.
    let v1: Cluster = decode(
        &s,
        types::CLUSTER,
        "outbound|9080|v1|reviews.default.svc.cluster.local",
    );
    assert_eq!(v1.lb_policy, cluster::LbPolicy::RingHash as i32);
    let v2: Cluster = decode(
        &s,
        types::CLUSTER,
        "outbound|9080|v2|reviews.default.svc.cluster.local",
    );
    assert_eq!(v2.lb_policy, cluster::LbPolicy::RoundRobin as i32);

    // Subset endpoints by label, at the named workload port.
    let cla: ClusterLoadAssignment = decode(
        &s,
        types::ENDPOINT,
        "outbound|9080|v2|reviews.default.svc.cluster.local",
    );
    let addrs: Vec<(String, u32)> = cla.endpoints[0]
        .lb_endpoints
        .iter()
        .filter_map(|e| match &e.host_identifier {
            Some(lb_endpoint::HostIdentifier::Endpoint(ep)) => match ep.address.as_ref()?.address.as_ref()? {
                address::Address::SocketAddress(sa) => match sa.port_specifier {
                    Some(lateen_xds::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p)) => {
                        Some((sa.address.clone(), p))
                    }
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(addrs, [("10.0.0.2".to_string(), 19080)]);

    // DNS services are STRICT_DNS with the host itself as the endpoint; the well-known
    // clusters exist.
    let dns: Cluster = decode(&s, types::CLUSTER, "outbound|80||httpbin.org");
    assert!(matches!(
        dns.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(t)) if t == cluster::DiscoveryType::StrictDns as i32
    ));
    for name in [
        "BlackHoleCluster",
        "PassthroughCluster",
        "InboundPassthroughCluster",
    ] {
        assert!(s.get(types::CLUSTER, name).is_some(), "{name}");
    }
}

#[test]
fn virtual_service_http_rules() {
    let s = snapshot(&format!("{SERVICES}---\n{ROUTES}"), &sidecar_in_default());
    let rc: RouteConfiguration = decode(&s, types::ROUTE, "9080");
    let vh = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name == "reviews.default.svc.cluster.local:9080")
        .expect("reviews virtual host");
    for d in [
        "reviews",
        "reviews:9080",
        "reviews.default",
        "reviews.default.svc.cluster.local:9080",
    ] {
        assert!(
            vh.domains.iter().any(|x| x == d),
            "domain {d} in {:?}",
            vh.domains
        );
    }
    assert_eq!(
        rc.virtual_hosts.last().map(|v| v.name.as_str()),
        Some("allow_any")
    );

    let r = route_named(&rc, "regex-and-method");
    let m = r.r#match.as_ref().expect("match");
    assert!(
        matches!(&m.path_specifier, Some(route_match::PathSpecifier::SafeRegex(re)) if re.regex == "/api/v[0-9]+/.*")
    );
    assert!(m.headers.iter().any(|h| h.name == ":method"));
    assert!(
        m.headers
            .iter()
            .any(|h| h.name == "x-skip" && h.invert_match)
    );
    assert_eq!(m.query_parameters.len(), 2);
    let a = action(r);
    assert!(
        matches!(&a.cluster_specifier, Some(route_action::ClusterSpecifier::Cluster(c)) if c == "outbound|9080|v1|reviews.default.svc.cluster.local")
    );
    assert_eq!(a.timeout.map(|d| d.seconds), Some(7));
    let retry = a.retry_policy.as_ref().expect("retry policy");
    assert_eq!(retry.num_retries.map(|v| v.value), Some(4));
    assert_eq!(retry.retry_on, "connect-failure,retriable-status-codes");
    assert_eq!(retry.retriable_status_codes, [503]);
    assert_eq!(retry.per_try_timeout.map(|d| d.seconds), Some(2));
    assert_eq!(
        a.request_mirror_policies[0].cluster,
        "outbound|9080||ratings.default.svc.cluster.local"
    );
    assert_eq!(
        a.request_mirror_policies[0]
            .runtime_fraction
            .as_ref()
            .and_then(|f| f.default_value)
            .map(|v| v.numerator),
        Some(500_000)
    );
    assert_eq!(a.prefix_rewrite, "/v1/");
    assert!(
        matches!(&a.host_rewrite_specifier, Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(h)) if h == "reviews.internal")
    );
    // The v1 subset's consistent hash becomes a cookie hash policy on the route.
    assert!(
        !a.hash_policy.is_empty(),
        "hash policy for the RING_HASH subset"
    );
    assert_eq!(r.request_headers_to_add.len(), 2);
    assert_eq!(r.request_headers_to_remove, ["x-gone"]);
    assert!(
        r.typed_per_filter_config
            .contains_key("envoy.filters.http.cors")
    );

    match &route_named(&rc, "moved").action {
        Some(route::Action::Redirect(redirect)) => {
            assert_eq!(redirect.host_redirect, "example.com");
            assert_eq!(redirect.response_code, 1); // FOUND
        }
        other => panic!("redirect expected: {other:?}"),
    }
    let teapot = route_named(&rc, "teapot");
    assert!(matches!(&teapot.action, Some(route::Action::DirectResponse(d)) if d.status == 418));
    assert_eq!(
        teapot
            .r#match
            .as_ref()
            .and_then(|m| m.case_sensitive)
            .map(|b| b.value),
        Some(false)
    );

    let slow = route_named(&rc, "slow");
    let fault = slow
        .typed_per_filter_config
        .get("envoy.filters.http.fault")
        .expect("fault config");
    assert_eq!(
        fault.type_url,
        "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
    );
    let fault = HttpFault::decode(fault.value.as_slice()).expect("decode fault");
    assert_eq!(
        fault
            .delay
            .as_ref()
            .and_then(|d| d.percentage)
            .map(|p| p.numerator),
        Some(125_000)
    );
    assert!(fault.abort.is_some());

    match &action(route_named(&rc, "split")).cluster_specifier {
        Some(route_action::ClusterSpecifier::WeightedClusters(w)) => {
            let weights: Vec<(String, u32)> = w
                .clusters
                .iter()
                .map(|c| (c.name.clone(), c.weight.map_or(0, |v| v.value)))
                .collect();
            assert_eq!(
                weights[0],
                (
                    "outbound|9080|v1|reviews.default.svc.cluster.local".to_string(),
                    90
                )
            );
            assert_eq!(weights[1].1, 10);
            assert_eq!(w.clusters[1].response_headers_to_add.len(), 1);
        }
        other => panic!("weighted clusters expected: {other:?}"),
    }

    // Without a VirtualService a service gets one default route; Istio's default retry
    // policy is the virtual host's, which the route inherits.
    let ratings = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name == "ratings.default.svc.cluster.local:9080")
        .expect("ratings host");
    let default = action(&ratings.routes[0]);
    assert!(default.retry_policy.is_none());
    assert_eq!(
        ratings
            .retry_policy
            .as_ref()
            .and_then(|r| r.num_retries)
            .map(|v| v.value),
        Some(2)
    );
}

#[test]
fn redirect_mode_listeners_and_sidecar_scoping() {
    let scoped = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{hosts: ["./reviews.default.svc.cluster.local"]}]
"#;
    let s = snapshot(&format!("{SERVICES}---\n{scoped}"), &sidecar_in_default());
    let listeners = names(&s, types::LISTENER);
    assert_eq!(
        listeners,
        ["0.0.0.0_9080", "virtualInbound", "virtualOutbound"]
    );
    let outbound: Listener = decode(&s, types::LISTENER, "virtualOutbound");
    assert_eq!(outbound.use_original_dst.map(|b| b.value), Some(true));
    let port: Listener = decode(&s, types::LISTENER, "0.0.0.0_9080");
    assert_eq!(port.bind_to_port.map(|b| b.value), Some(false));
    // Egress hosts limit what the proxy receives.
    let clusters = names(&s, types::CLUSTER);
    assert!(
        clusters
            .iter()
            .any(|c| c.ends_with("|reviews.default.svc.cluster.local"))
    );
    assert!(
        !clusters
            .iter()
            .any(|c| c.contains("ratings") || c.contains("httpbin")),
        "{clusters:?}"
    );

    // A proxy in another namespace does not get the short name.
    let other = proxy(
        "sidecar~10.0.9.8~x-1.prod~prod.svc.cluster.local",
        serde_json::json!({"NAMESPACE": "prod"}),
    );
    let s = snapshot(SERVICES, &other);
    let rc: RouteConfiguration = decode(&s, types::ROUTE, "9080");
    assert!(
        rc.virtual_hosts
            .iter()
            .all(|v| !v.domains.iter().any(|d| d == "reviews"))
    );
}

#[test]
fn none_mode_uses_sidecar_listeners() {
    let sidecar = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  ingress: [{port: {number: 9090, protocol: HTTP, name: http}, defaultEndpoint: "127.0.0.1:8080"}]
  egress: [{port: {number: 9080, protocol: HTTP, name: http}, hosts: ["./*"]}]
"#;
    let p = proxy(
        "sidecar~10.0.9.9~productpage-1.default~default.svc.cluster.local",
        serde_json::json!({"NAMESPACE": "default", "INTERCEPTION_MODE": "NONE"}),
    );
    let s = snapshot(&format!("{SERVICES}---\n{sidecar}"), &p);
    assert_eq!(
        names(&s, types::LISTENER),
        ["0.0.0.0_9090", "127.0.0.1_9080"]
    );
    let inbound: Cluster = decode(&s, types::CLUSTER, "inbound|9090||");
    let cla = inbound.load_assignment.expect("static endpoints");
    let ep = format!("{:?}", cla.endpoints[0].lb_endpoints[0]);
    assert!(ep.contains("127.0.0.1") && ep.contains("8080"), "{ep}");
}

#[test]
fn tcp_rules_split_connections() {
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  endpoints:
  - {address: 10.0.2.1, labels: {version: a}}
  - {address: 10.0.2.2, labels: {version: b}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: default}
spec:
  host: db
  subsets: [{name: a, labels: {version: a}}, {name: b, labels: {version: b}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db]
  tcp:
  - match: [{port: 5432}]
    route:
    - {destination: {host: db, subset: a}, weight: 75}
    - {destination: {host: db, subset: b}, weight: 25}
"#;
    let s = snapshot(yaml, &sidecar_in_default());
    let l: Listener = decode(&s, types::LISTENER, "0.0.0.0_5432");
    let filter = &l.filter_chains[0].filters[0];
    assert_eq!(filter.name, "envoy.filters.network.tcp_proxy");
    let Some(lateen_xds::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(any)) =
        &filter.config_type
    else {
        panic!("typed config");
    };
    let proxy =
        lateen_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy::decode(
            any.value.as_slice(),
        )
        .expect("decode tcp proxy");
    let dump = format!("{:?}", proxy.cluster_specifier);
    assert!(
        dump.contains("outbound|5432|a|db.default.svc.cluster.local")
            && dump.contains("weight: 75"),
        "{dump}"
    );
}

#[test]
fn maglev_and_locality_distribute_reach_the_cluster() {
    let yaml = format!(
        "{SERVICES}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: ratings, namespace: default}}\nspec:\n  host: ratings\n  trafficPolicy:\n    loadBalancer:\n      consistentHash: {{httpHeaderName: x-user, maglev: {{tableSize: 65537}}}}\n      localityLbSetting:\n        distribute: [{{from: \"*\", to: {{\"us-east/*\": 20, \"us-west/*\": 80}}}}]\n"
    );
    let s = snapshot(&yaml, &sidecar_in_default());
    let c: Cluster = decode(
        &s,
        types::CLUSTER,
        "outbound|9080||ratings.default.svc.cluster.local",
    );
    assert_eq!(c.lb_policy, cluster::LbPolicy::Maglev as i32);
    match &c.lb_config {
        Some(cluster::LbConfig::MaglevLbConfig(m)) => {
            assert_eq!(m.table_size.as_ref().map(|v| v.value), Some(65537));
        }
        other => panic!("maglev config expected, got {other:?}"),
    }
    let specifier = c.common_lb_config.and_then(|l| l.locality_config_specifier);
    assert!(
        matches!(
            specifier,
            Some(cluster::common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(_))
        ),
        "locality-weighted balancing is on: {specifier:?}"
    );
}

#[test]
fn upstream_protocol_follows_the_port_protocol_like_istio() {
    use lateen_discovery::translate::clusters::AppProtocol;
    assert_eq!(AppProtocol::of("", "http-web"), AppProtocol::Http1);
    assert_eq!(AppProtocol::of("", "grpc"), AppProtocol::Http2);
    assert_eq!(AppProtocol::of("HTTP2", "anything"), AppProtocol::Http2);
    assert_eq!(AppProtocol::of("tcp", "http"), AppProtocol::Opaque);
    assert_eq!(AppProtocol::of("", "metrics"), AppProtocol::Unknown);
    // An HTTP port's cluster says nothing (HTTP/1.1 in Envoy and lateen-proxy alike).
    let s = snapshot(SERVICES, &sidecar_in_default());
    let c: Cluster = decode(
        &s,
        types::CLUSTER,
        "outbound|9080||ratings.default.svc.cluster.local",
    );
    assert!(c.typed_extension_protocol_options.is_empty());
}

/// The file access logs of every network filter of `listener`: (path, text format or the
/// JSON keys, has a filter).
fn access_logs(listener: &Listener) -> Vec<(String, Result<String, Vec<String>>, bool)> {
    use lateen_xds::pb::envoy::config::accesslog::v3::access_log;
    use lateen_xds::pb::envoy::config::core::v3::{data_source, substitution_format_string};
    use lateen_xds::pb::envoy::extensions::access_loggers::file::v3::{
        FileAccessLog, file_access_log,
    };
    use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    use lateen_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
    use lateen_xds::prost::Name;
    let mut out = Vec::new();
    let chains = listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.as_ref());
    for f in chains.flat_map(|c| &c.filters) {
        let Some(lateen_xds::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(any)) =
            &f.config_type
        else {
            continue;
        };
        let logs = if any.type_url == HttpConnectionManager::type_url() {
            HttpConnectionManager::decode(any.value.as_slice())
                .expect("hcm")
                .access_log
        } else if any.type_url == TcpProxy::type_url() {
            TcpProxy::decode(any.value.as_slice())
                .expect("tcp")
                .access_log
        } else {
            continue;
        };
        for log in logs {
            assert_eq!(log.name, "envoy.access_loggers.file");
            let Some(access_log::ConfigType::TypedConfig(any)) = &log.config_type else {
                panic!("no typed config");
            };
            let file = FileAccessLog::decode(any.value.as_slice()).expect("file log");
            let Some(file_access_log::AccessLogFormat::LogFormat(format)) = file.access_log_format
            else {
                panic!("no log_format");
            };
            let format = match format.format {
                Some(substitution_format_string::Format::TextFormatSource(s)) => {
                    match s.specifier {
                        Some(data_source::Specifier::InlineString(text)) => Ok(text),
                        other => panic!("{other:?}"),
                    }
                }
                Some(substitution_format_string::Format::JsonFormat(s)) => {
                    let mut keys: Vec<String> = s.fields.keys().cloned().collect();
                    keys.sort();
                    Err(keys)
                }
                other => panic!("{other:?}"),
            };
            out.push((file.path, format, log.filter.is_some()));
        }
    }
    out
}

#[test]
fn mesh_access_log_file_and_telemetry_give_istios_file_logs() {
    let with_mesh = |mesh: &str, extra: &str| {
        let mut cfg = config(&format!("{SERVICES}---\n{extra}"));
        cfg.mesh = lateen_api::load_mesh_config(mesh, "mesh.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
            .0;
        let registry = Registry::build(&cfg, &[]);
        build_snapshot(&cfg, &registry, &sidecar_in_default())
    };
    let listener = |s: &Snapshot, name: &str| decode::<Listener>(s, types::LISTENER, name);

    // No accessLogFile, no Telemetry: no logs.
    let s = with_mesh("{}", "");
    assert!(access_logs(&listener(&s, "virtualOutbound")).is_empty());

    // accessLogFile: Istio's default text format on outbound and inbound filters.
    let s = with_mesh("accessLogFile: /dev/stdout\n", "");
    for name in ["virtualOutbound", "virtualInbound", "0.0.0.0_9080"] {
        let logs = access_logs(&listener(&s, name));
        assert!(!logs.is_empty(), "{name}");
        for (path, format, filtered) in logs {
            assert_eq!(path, "/dev/stdout");
            assert_eq!(
                format.as_deref(),
                Ok(lateen_api::mesh_providers::ENVOY_TEXT_LOG_FORMAT)
            );
            assert!(!filtered);
        }
    }

    // JSON encoding: Istio's default labels.
    let s = with_mesh("accessLogFile: /tmp/a.log\naccessLogEncoding: JSON\n", "");
    let (_, format, _) = access_logs(&listener(&s, "0.0.0.0_9080")).remove(0);
    let keys = format.expect_err("JSON");
    assert_eq!(keys.len(), 24);
    assert!(keys.contains(&"upstream_cluster".to_string()));

    // Telemetry: a namespace-level entry turns the server side off; a workload-level one
    // with a filter names a provider for the client side.
    let telemetry = r#"apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: ns, namespace: default}
spec:
  accessLogging:
  - match: {mode: SERVER}
    disabled: true
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: page, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  accessLogging:
  - match: {mode: CLIENT}
    providers: [{name: errors}]
    filter: {expression: "response.code >= 400"}
"#;
    let mesh = "accessLogFile: /dev/stdout\nextensionProviders:\n- name: errors\n  envoyFileAccessLog: {path: /tmp/errors.log, logFormat: {text: \"%RESPONSE_CODE%\"}}\n";
    let s = with_mesh(mesh, telemetry);
    assert!(access_logs(&listener(&s, "virtualInbound")).is_empty());
    let outbound = access_logs(&listener(&s, "0.0.0.0_9080"));
    assert_eq!(
        outbound,
        vec![(
            "/tmp/errors.log".to_string(),
            Ok("%RESPONSE_CODE%\n".to_string()),
            true
        )]
    );
}

#[test]
fn inbound_clusters_name_their_service_for_the_destination_side_metrics() {
    // reviews v2 (10.0.0.2) serves reviews' port 9080 on 19080.
    let p = proxy(
        "sidecar~10.0.0.2~reviews-v2.default~default.svc.cluster.local",
        serde_json::json!({"NAMESPACE": "default"}),
    );
    let s = snapshot(SERVICES, &p);
    let inbound: Cluster = decode(&s, types::CLUSTER, "inbound|19080||");
    let metadata = format!("{:?}", inbound.metadata.expect("istio metadata"));
    assert!(
        metadata.contains("\"istio\"")
            && metadata.contains("services")
            && metadata.contains("reviews.default.svc.cluster.local"),
        "{metadata}"
    );
}

/// The `tracing` of the connection manager of `listener`'s chain `chain`.
fn hcm_tracing(
    s: &Snapshot,
    listener: &str,
    chain: usize,
) -> Option<http_connection_manager::Tracing> {
    let l: Listener = decode(s, types::LISTENER, listener);
    let filter = &l.filter_chains[chain].filters[0];
    let Some(filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
        panic!("{listener}: no typed config");
    };
    HttpConnectionManager::decode(any.value.as_slice())
        .expect("HCM")
        .tracing
}

#[test]
fn telemetry_tracing_becomes_the_connection_managers_opentelemetry_tracing() {
    let collector = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: otel, namespace: observability}
spec:
  hosts: [otel-collector.observability.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 4317, name: grpc, protocol: GRPC}]
  endpoints: [{address: 10.0.5.5}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: otel}]
    randomSamplingPercentage: 50
    customTags:
      team: {literal: {value: bookinfo}}
      user: {header: {name: x-user, defaultValue: anonymous}}
"#;
    let mut cfg = config(&format!("{SERVICES}---\n{collector}"));
    cfg.mesh = serde_json::from_value(serde_json::json!({
        "extensionProviders": [{"name": "otel", "opentelemetry": {
            "service": "otel-collector.observability.svc.cluster.local", "port": 4317}}],
    }))
    .expect("mesh config");
    let reviews = proxy(
        "sidecar~10.0.0.1~reviews-1.default~default.svc.cluster.local",
        serde_json::json!({"NAMESPACE": "default", "LABELS": {
            "app": "reviews", "service.istio.io/canonical-name": "reviews",
            "service.istio.io/canonical-revision": "v1"}}),
    );
    let registry = Registry::build(&cfg, &[]);
    let s = build_snapshot(&cfg, &registry, &reviews);

    // Outbound (client side) and inbound (server side) trace alike.
    let outbound = hcm_tracing(&s, "0.0.0.0_9080", 0).expect("outbound tracing");
    let inbound_listener: Listener = decode(&s, types::LISTENER, "virtualInbound");
    let chain = inbound_listener
        .filter_chains
        .iter()
        .position(|c| c.name == "inbound|9080||")
        .expect("inbound chain for 9080");
    let inbound = hcm_tracing(&s, "virtualInbound", chain).expect("inbound tracing");
    for tracing in [&outbound, &inbound] {
        assert_eq!(
            tracing.random_sampling.as_ref().map(|p| p.value),
            Some(50.0)
        );
        assert_eq!(
            tracing.client_sampling.as_ref().map(|p| p.value),
            Some(100.0)
        );
        let provider = tracing.provider.as_ref().expect("provider");
        assert_eq!(provider.name, "envoy.tracers.opentelemetry");
        let Some(trace::v3::tracing::http::ConfigType::TypedConfig(any)) = &provider.config_type
        else {
            panic!("provider config");
        };
        let otel = trace::v3::OpenTelemetryConfig::decode(any.value.as_slice()).expect("otel");
        assert_eq!(otel.service_name, "reviews.default");
        let Some(grpc_service::TargetSpecifier::EnvoyGrpc(grpc)) =
            otel.grpc_service.and_then(|g| g.target_specifier)
        else {
            panic!("envoy_grpc");
        };
        assert_eq!(
            grpc.cluster_name,
            "outbound|4317||otel-collector.observability.svc.cluster.local"
        );
        assert_eq!(
            grpc.authority,
            "otel-collector.observability.svc.cluster.local"
        );
        let tags: Vec<String> = tracing
            .custom_tags
            .iter()
            .map(|t| format!("{}={:?}", t.tag, t.r#type))
            .collect();
        let names: Vec<&str> = tracing.custom_tags.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(
            names,
            [
                "istio.canonical_revision",
                "istio.canonical_service",
                "istio.cluster_id",
                "istio.mesh_id",
                "istio.namespace",
                "team",
                "user"
            ],
            "{tags:?}"
        );
        assert!(tags[1].contains("\"reviews\""), "{tags:?}");
        assert!(
            tags[6].contains("x-user") && tags[6].contains("anonymous"),
            "{tags:?}"
        );
    }
    // Spans are named as istiod names them.
    let rc: RouteConfiguration = decode(&s, types::ROUTE, "9080");
    let default = rc
        .virtual_hosts
        .iter()
        .find(|v| {
            v.domains
                .iter()
                .any(|d| d == "ratings.default.svc.cluster.local")
        })
        .map(|v| &v.routes[0])
        .expect("ratings route");
    assert_eq!(
        default.decorator.as_ref().map(|d| d.operation.as_str()),
        Some("ratings.default.svc.cluster.local:9080/*")
    );

    // A namespace-level Telemetry turns client spans off for its namespace only.
    let off = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: no-client-spans, namespace: default}
spec:
  tracing:
  - match: {mode: CLIENT}
    disableSpanReporting: true
"#;
    let mut cfg_off = config(&format!("{SERVICES}---\n{collector}---\n{off}"));
    cfg_off.mesh = cfg.mesh.clone();
    let registry = Registry::build(&cfg_off, &[]);
    let s = build_snapshot(&cfg_off, &registry, &reviews);
    assert_eq!(hcm_tracing(&s, "0.0.0.0_9080", 0), None);
    assert!(hcm_tracing(&s, "virtualInbound", chain).is_some());

    // Without a Telemetry or a default provider nothing is traced.
    let s = snapshot(SERVICES, &reviews);
    assert_eq!(hcm_tracing(&s, "0.0.0.0_9080", 0), None);
}

#[test]
fn authorization_policies_become_rbac_filters_on_inbound_chains() {
    use lateen_xds::pb::envoy::config::listener::v3::filter;
    use lateen_xds::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
    use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, http_filter,
    };
    use lateen_xds::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
    let policies = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  ingress:
  - {port: {number: 9090, protocol: HTTP, name: http}, defaultEndpoint: "127.0.0.1:8080"}
  - {port: {number: 9091, protocol: TCP, name: tcp}, defaultEndpoint: "127.0.0.1:8081"}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: default}
spec:
  action: CUSTOM
  provider: {name: nowhere}
  rules: [{to: [{operation: {paths: ["/ext/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: try, namespace: default, annotations: {istio.io/dry-run: "true"}}
spec:
  rules: [{to: [{operation: {paths: ["/try"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web, namespace: default}
spec:
  rules: [{to: [{operation: {paths: ["/web/*"]}}]}]
"#;
    let p = proxy(
        "sidecar~10.0.9.9~productpage-1.default~default.svc.cluster.local",
        serde_json::json!({"NAMESPACE": "default", "INTERCEPTION_MODE": "NONE"}),
    );
    let s = snapshot(policies, &p);
    let typed = |f: &lateen_xds::pb::envoy::config::listener::v3::Filter| match &f.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => any.value.clone(),
        _ => panic!("untyped filter {}", f.name),
    };
    let http: Listener = decode(&s, types::LISTENER, "0.0.0.0_9090");
    let hcm = HttpConnectionManager::decode(typed(&http.filter_chains[0].filters[0]).as_slice())
        .expect("HCM");
    let rbac: Vec<HttpRbac> = hcm
        .http_filters
        .iter()
        .filter(|f| f.name == "envoy.filters.http.rbac")
        .map(|f| match &f.config_type {
            Some(http_filter::ConfigType::TypedConfig(any)) => {
                HttpRbac::decode(any.value.as_slice()).expect("RBAC")
            }
            _ => panic!("untyped RBAC"),
        })
        .collect();
    // CUSTOM without a provider fails closed (DENY), then the ALLOW filter: enforced `web`,
    // shadow `try`.
    assert_eq!(rbac.len(), 2, "{:?}", hcm.http_filters);
    let deny = rbac[0].rules.as_ref().expect("enforced DENY");
    assert_eq!(deny.action, 1);
    assert!(
        deny.policies
            .contains_key("ns[default]-policy[ext]-rule[0]")
    );
    let allow = rbac[1].rules.as_ref().expect("enforced ALLOW");
    assert_eq!(allow.action, 0);
    assert!(
        allow
            .policies
            .contains_key("ns[default]-policy[web]-rule[0]")
    );
    let shadow = rbac[1].shadow_rules.as_ref().expect("dry run");
    assert!(
        shadow
            .policies
            .contains_key("ns[default]-policy[try]-rule[0]")
    );
    assert_eq!(rbac[1].shadow_rules_stat_prefix, "istio_dry_run_allow_");

    // TCP: the ALLOW rule with paths is dropped (allows nothing); DENY keeps its rule
    // without the HTTP-only path, so it denies every connection, as istiod.
    let tcp: Listener = decode(&s, types::LISTENER, "0.0.0.0_9091");
    let filters = &tcp.filter_chains[0].filters;
    assert_eq!(filters.len(), 3, "{filters:?}");
    let deny = NetworkRbac::decode(typed(&filters[0]).as_slice()).expect("network RBAC");
    assert_eq!(deny.stat_prefix, "tcp.");
    let deny_rules = deny.rules.expect("DENY");
    assert_eq!(deny_rules.action, 1);
    assert_eq!(deny_rules.policies.len(), 1);
    let allow = NetworkRbac::decode(typed(&filters[1]).as_slice()).expect("network RBAC");
    assert!(allow.rules.expect("ALLOW").policies.is_empty());
}

#[test]
fn connection_pool_limits_reach_outbound_and_inbound_clusters_like_istio() {
    use lateen_xds::pb::envoy::extensions::upstreams::http::v3::{
        HttpProtocolOptions, http_protocol_options,
    };
    let yaml = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: default}
spec:
  hosts: [web.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  - {number: 9090, name: grpc, protocol: GRPC}
  endpoints: [{address: 10.0.3.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec:
  host: web
  trafficPolicy:
    connectionPool:
      http: {idleTimeout: 30s, maxRequestsPerConnection: 1}
      tcp: {maxConnectionDuration: 10m}
    portLevelSettings:
    - port: {number: 9090}
      connectionPool: {tcp: {idleTimeout: 5s}}
"#;
    let options = |s: &Snapshot, name: &str| -> HttpProtocolOptions {
        let c: Cluster = decode(s, types::CLUSTER, name);
        let any = c
            .typed_extension_protocol_options
            .get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
            .unwrap_or_else(|| panic!("{name}: no HttpProtocolOptions"));
        HttpProtocolOptions::decode(any.value.as_slice()).expect("decode")
    };
    let s = snapshot(yaml, &sidecar_in_default());
    let http = options(&s, "outbound|8080||web.default.svc.cluster.local");
    let common = http.common_http_protocol_options.expect("common options");
    assert_eq!(common.idle_timeout.map(|d| d.seconds), Some(30));
    assert_eq!(common.max_requests_per_connection.map(|v| v.value), Some(1));
    assert_eq!(common.max_connection_duration.map(|d| d.seconds), Some(600));
    // Envoy requires an upstream protocol beside them: HTTP/1.1, named (as istiod does).
    assert!(matches!(
        http.upstream_protocol_options,
        Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(_))
    ));

    // Port-level settings replace the pool: only the TCP idle timeout, beside HTTP/2.
    let grpc = options(&s, "outbound|9090||web.default.svc.cluster.local");
    assert!(matches!(
        grpc.upstream_protocol_options,
        Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(_))
    ));
    let common = grpc.common_http_protocol_options.expect("common options");
    assert_eq!(common.idle_timeout.map(|d| d.seconds), Some(5));
    assert!(common.max_requests_per_connection.is_none());
    assert!(common.max_connection_duration.is_none());

    // The workload's own sidecar applies its service's pool to the inbound cluster.
    let web = proxy(
        "sidecar~10.0.3.1~web-1.default~default.svc.cluster.local",
        serde_json::json!({"NAMESPACE": "default"}),
    );
    let s = snapshot(yaml, &web);
    let inbound = options(&s, "inbound|8080||");
    let common = inbound
        .common_http_protocol_options
        .expect("common options");
    assert_eq!(common.max_requests_per_connection.map(|v| v.value), Some(1));
}
