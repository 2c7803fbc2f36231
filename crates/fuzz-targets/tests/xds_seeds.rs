//! Writes the seed inputs of the `xds_resources` target: what lateend really sends a sidecar
//! for a small mesh (every Listener, RouteConfiguration, Cluster and ClusterLoadAssignment,
//! each prefixed with the target's type selector). Run by hand when translation changes:
//! `cargo test -p lateen-fuzz-targets --test xds_seeds -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use lateen_discovery::translate::build_snapshot;
use lateen_discovery::{Config, Proxy, Registry};
use lateen_test_support::mesh_fixtures::{ROUTES, SERVICES};
use lateen_xds::ProxyNode;
use lateen_xds::types::{CLUSTER, ENDPOINT, LISTENER, ROUTE, short_name};
use std::path::Path;

/// What the seeds add to the shared mesh (`mesh_fixtures`): gRPC and TCP ports, a locality,
/// hashing on a header and an AuthorizationPolicy.
const EXTRAS: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec: {hosts: [db.default.svc.cluster.local], location: MESH_INTERNAL, resolution: STATIC,
  ports: [{number: 9090, name: grpc, protocol: GRPC}, {number: 3306, name: tcp, protocol: TCP}],
  endpoints: [{address: 10.0.2.1, labels: {app: db}, locality: r1/z1}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: default}
spec: {host: db, trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}}
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
    let mesh = format!("{SERVICES}---\n{ROUTES}---\n{EXTRAS}");
    let loaded = lateen_api::load(&mesh, "mesh.yaml").unwrap_or_else(|e| panic!("{e}"));
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
