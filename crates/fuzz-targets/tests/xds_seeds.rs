//! Writes the seed inputs of the `xds_resources` target: what lateend really sends a sidecar
//! for a small mesh (every Listener, RouteConfiguration, Cluster and ClusterLoadAssignment,
//! each prefixed with the target's type selector). Run by hand when translation changes:
//! `cargo test -p lateen-fuzz-targets --test xds_seeds -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use lateen_discovery::translate::build_snapshot;
use lateen_discovery::{Config, Proxy, Registry};
use lateen_xds::ProxyNode;
use lateen_xds::types::{CLUSTER, ENDPOINT, LISTENER, ROUTE, short_name};
use std::path::Path;

const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9090, name: grpc, protocol: GRPC}, {number: 3306, name: tcp, protocol: TCP}]
  endpoints:
  - {address: 10.0.0.1, labels: {app: reviews, version: v1}, locality: r1/z1}
  - {address: 10.0.0.2, labels: {app: reviews, version: v2}, ports: {http: 19080}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
    connectionPool: {tcp: {maxConnections: 10}, http: {http1MaxPendingRequests: 5}}
    outlierDetection: {consecutive5xxErrors: 7, interval: 5s, baseEjectionTime: 1m}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}, uri: {regex: "/r.*"}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 12.5}}}
    retries: {attempts: 2, perTryTimeout: 1s, retryOn: "5xx,reset"}
    corsPolicy: {allowOrigins: [{exact: "https://a"}], allowMethods: [GET]}
    mirror: {host: reviews, subset: v2}
    route: [{destination: {host: reviews, subset: v1}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10, headers: {response: {set: {x-canary: "yes"}}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  rules: [{from: [{source: {namespaces: [default]}}], to: [{operation: {methods: [GET]}}]}]
"#;

#[test]
#[ignore = "writes fuzz/corpus/xds_resources; run by hand"]
fn write_xds_seeds() {
    let loaded = lateen_api::load(MESH, "mesh.yaml").unwrap_or_else(|e| panic!("{e}"));
    let config = Config {
        resources: loaded.resources().cloned().collect(),
        ..Config::default()
    };
    let registry = Registry::build(&config, &[]);
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/xds_resources");
    std::fs::create_dir_all(&out).unwrap();
    for (node_id, labels) in [
        (
            "sidecar~10.0.0.1~reviews-v1.default~default.svc.cluster.local",
            serde_json::json!({"app": "reviews", "version": "v1"}),
        ),
        (
            "sidecar~10.0.9.9~productpage-1.default~default.svc.cluster.local",
            serde_json::json!({"app": "productpage"}),
        ),
    ] {
        let proxy = Proxy::from_node(&ProxyNode {
            id: node_id.to_string(),
            cluster: String::new(),
            metadata: serde_json::json!({"NAMESPACE": "default", "LABELS": labels}),
            user_agent: "envoy".to_string(),
        });
        let snapshot = build_snapshot(&config, &registry, &proxy);
        // The selector byte of each type, as `xds_resources` reads it.
        for (selector, type_url) in [LISTENER, ROUTE, CLUSTER, ENDPOINT].iter().enumerate() {
            for (name, resource) in snapshot.resources(type_url) {
                let mut bytes = vec![u8::try_from(selector).unwrap()];
                bytes.extend_from_slice(&resource.resource.value);
                let file: String = format!("{}-{name}", short_name(type_url))
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                std::fs::write(out.join(file), bytes).unwrap();
            }
        }
    }
}
