//! Acceptance of lateend against a real Envoy 1.40, for what only Envoy is checked with
//! here: the built `lateend` serves a Bookinfo-shaped registry (ServiceEntries +
//! WorkloadEntries for reviews v1/v2/v3, ratings, details, pointing at HTTP servers this test
//! runs on 127.0.0.1) to Envoys started with Istio-like bootstraps (ADS, node id and metadata
//! like istio-agent's). Rows: the Sidecar ingress listener (NONE mode), a REDIRECT-mode
//! sidecar that a WorkloadGroup admits registering as an endpoint and leaving after the grace
//! period, a gateway
//! (router) over TLS xDS, no NACK from any of the three, lateend's push metrics, Envoy's own
//! config_dump, and the injection webhook. The routing and traffic-policy rows run against
//! Envoy and lateen-proxy alike in `dataplane_matrix.rs`. Every wait has a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;
#[path = "common/matrix_config.rs"]
mod matrix_config;

use std::path::{Path, PathBuf};

use common::lateend::{Lateend, all_synced, start_lateend};
use common::*;
use matrix_config::Workload;

const NODE_ID: &str = "sidecar~127.0.0.1~productpage-v1-7f9b.default~default.svc.cluster.local";

const DESTINATION_RULES: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 100, maxConnectionDuration: 1h}
      http: {http1MaxPendingRequests: 100, idleTimeout: 60s, maxRequestsPerConnection: 1000}
    outlierDetection: {consecutive5xxErrors: 50, interval: 10s, baseEjectionTime: 30s}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: default}
spec:
  host: details
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
"#;

/// The client's Sidecar: an egress listener on 127.0.0.1:`port` for the namespace's services
/// and an ingress listener on 127.0.0.1:`inbound` forwarding to the app at `app_port`.
fn sidecar_yaml(port: u16, inbound: u16, app_port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: productpage, namespace: default}}
spec:
  workloadSelector: {{labels: {{app: productpage}}}}
  ingress:
  - port: {{number: {inbound}, protocol: HTTP, name: http}}
    bind: 127.0.0.1
    defaultEndpoint: 127.0.0.1:{app_port}
  egress:
  - port: {{number: {port}, protocol: HTTP, name: http}}
    bind: 127.0.0.1
    hosts: ["./*"]
"#
    )
}

fn client_identity() -> Identity {
    Identity {
        id: NODE_ID,
        cluster: "productpage.default",
        metadata: r#"    NAMESPACE: default
    LABELS: {app: productpage, version: v1}
    INTERCEPTION_MODE: NONE
    SERVICE_ACCOUNT: bookinfo-productpage
    INSTANCE_IPS: 127.0.0.1
    WORKLOAD_NAME: productpage-v1
    CLUSTER_ID: Kubernetes
    MESH_ID: cluster.local
    ISTIO_VERSION: 1.28.0
    POD_PORTS: '[{"name":"http","containerPort":9080,"protocol":"TCP"}]'
"#
        .to_string(),
        xds_tls_ca: None,
    }
}

fn gateway_yaml(port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: bookinfo-gateway, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    bind: 127.0.0.1
    hosts: [bookinfo.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bookinfo, namespace: default}}
spec:
  hosts: [bookinfo.example.com]
  gateways: [bookinfo-gateway]
  http:
  - match: [{{uri: {{prefix: /reviews}}}}]
    rewrite: {{uri: /}}
    route: [{{destination: {{host: reviews.default.svc.cluster.local, subset: v2}}}}]
"#
    )
}

/// A REDIRECT-mode sidecar of a reviews workload at 127.0.0.2: the `reviews` WorkloadGroup it
/// names admits it, so it becomes an endpoint of `reviews` (its labels match the
/// ServiceEntry's workloadSelector).
fn redirect_identity() -> Identity {
    Identity {
        id: "sidecar~127.0.0.2~reviews-v9-6c4d.default~default.svc.cluster.local",
        cluster: "reviews.default",
        metadata: r#"    NAMESPACE: default
    LABELS: {app: reviews, version: v9}
    INTERCEPTION_MODE: REDIRECT
    LATEEN_CAPTURE_BIND: 127.0.0.1
    SERVICE_ACCOUNT: bookinfo-reviews
    INSTANCE_IPS: 127.0.0.2
    POD_PORTS: '[{"name":"http","containerPort":9080,"protocol":"TCP"}]'
    AUTO_REGISTER_GROUP: reviews
"#
        .to_string(),
        xds_tls_ca: None,
    }
}

/// The WorkloadGroup that admits [`redirect_identity`] as an endpoint.
const REVIEWS_GROUP: &str = "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: reviews, namespace: default}\nspec:\n  metadata: {labels: {app: reviews}}\n  template: {serviceAccount: bookinfo-reviews}\n";

fn router_identity() -> Identity {
    Identity {
        id: "router~127.0.0.1~istio-ingressgateway-5d8f.istio-system~istio-system.svc.cluster.local",
        cluster: "istio-ingressgateway.istio-system",
        metadata: r#"    NAMESPACE: istio-system
    LABELS: {app: istio-ingressgateway, istio: ingressgateway}
    SERVICE_ACCOUNT: istio-ingressgateway-service-account
    INSTANCE_IPS: 127.0.0.1
"#
        .to_string(),
        xds_tls_ca: None,
    }
}

struct Mesh {
    inbound: u16,
    envoy_bin: PathBuf,
    work: PathBuf,
    gateway_port: u16,
    listen: u16,
    admin: u16,
    lateend: Lateend,
    envoy: Process,
}

impl Mesh {
    fn diagnostics(&self) -> String {
        format!(
            "--- lateend log ---\n{}\n--- envoy log ---\n{}",
            self.lateend.process.log_tail(),
            self.envoy.log_tail()
        )
    }
}

async fn start() -> Option<Mesh> {
    let envoy_bin = envoy_or_skip()?;
    let dir = std::env::temp_dir().join(format!("lateend-acceptance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("config")).expect("create temp dir");
    let config = dir.join("config");

    let mut ports = Vec::new();
    for name in [
        "reviews-v1",
        "reviews-v2",
        "reviews-v3",
        "ratings-v1",
        "details-v1",
    ] {
        ports.push((name, upstream(name).await));
    }
    let workload = |i: usize, version| Workload {
        name: ports[i].0,
        version,
        port: ports[i].1,
        locality: None,
    };
    let services = [
        (
            "reviews",
            vec![workload(0, "v1"), workload(1, "v2"), workload(2, "v3")],
        ),
        ("ratings", vec![workload(3, "v1")]),
        ("details", vec![workload(4, "v1")]),
    ];
    let listen = free_port();
    let registry = matrix_config::registry_yaml(listen, &services);
    write_config(&config, "services.yaml", &registry);
    write_config(&config, "destination-rules.yaml", DESTINATION_RULES);
    write_config(&config, "workload-group.yaml", REVIEWS_GROUP);
    write_config(&config, "reviews.yaml", matrix_config::REVIEWS_SPLIT);
    write_config(&config, "ratings-details.yaml", matrix_config::POLICIES);
    let inbound = free_port();
    let app = upstream("productpage-v1").await;
    write_config(&config, "sidecar.yaml", &sidecar_yaml(listen, inbound, app));
    let gateway_port = free_port();
    write_config(&config, "gateway.yaml", &gateway_yaml(gateway_port));
    // Capture ports of REDIRECT-mode sidecars, moved off 15001/15006 so tests never collide.
    let mesh = format!(
        "proxyListenPort: {}\nproxyInboundListenPort: {}\n",
        free_port(),
        free_port()
    );
    write_config(&config, "mesh.yaml", &mesh);

    let ca = dir.join("webhook-ca.pem");
    let extra = [
        "--registration-grace".as_ref(),
        "1s".as_ref(),
        "--webhook-ca-out".as_ref(),
        ca.as_os_str(),
    ];
    let lateend = start_lateend(&config, &dir, &extra).await;
    let envoy = start_envoy(&envoy_bin, &dir, &client_identity(), lateend.xds);
    let admin = envoy
        .admin_port()
        .await
        .unwrap_or_else(|| panic!("no Envoy admin address\n{}", envoy.log_tail()));
    Some(Mesh {
        inbound,
        envoy_bin,
        work: dir,
        gateway_port,
        listen,
        admin,
        lateend,
        envoy,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookinfo_through_real_envoy() {
    let Some(mesh) = start().await else {
        return;
    };
    let debug = mesh.lateend.debug;

    // Config reaches Envoy: the header route answers.
    let ready = wait_until("a v2 answer for end-user: jason", || async {
        get(mesh.listen, "reviews", "/", &[("end-user", "jason")])
            .await
            .is_some_and(|(c, b)| c == 200 && b == "reviews-v2")
    })
    .await;
    if let Err(e) = ready {
        panic!("{e}\n{}", mesh.diagnostics());
    }

    // Row: the Sidecar ingress listener forwards inbound traffic to the app (NONE mode).
    let got = get(mesh.inbound, "productpage", "/", &[]).await;
    assert_eq!(
        got,
        Some((200, "productpage-v1".to_string())),
        "inbound via Sidecar ingress"
    );

    // A REDIRECT-mode sidecar (capture layout: virtualOutbound, virtualInbound, 0.0.0.0_PORT)
    // and a gateway join; the sidecar registers itself as a reviews endpoint.
    let redirect = start_envoy(
        &mesh.envoy_bin,
        &mesh.work,
        &redirect_identity(),
        mesh.lateend.xds,
    );
    // The gateway talks to lateend over TLS (15012-style), the others in plaintext.
    let mut router_id = router_identity();
    router_id.xds_tls_ca = Some(mesh.work.join("webhook-ca.pem"));
    let router = start_envoy(
        &mesh.envoy_bin,
        &mesh.work,
        &router_id,
        mesh.lateend.xds_tls,
    );
    let client_dump = format!("/debug/config_dump?proxyID={NODE_ID}");
    // Row: Gateway + bound VirtualService route through a router-mode Envoy.
    let via_gateway = wait_until("reviews-v2 through the gateway", || async {
        get(mesh.gateway_port, "bookinfo.example.com", "/reviews", &[]).await
            == Some((200, "reviews-v2".to_string()))
    })
    .await;
    if let Err(e) = via_gateway {
        panic!(
            "{e}\n{}\n--- router log ---\n{}",
            mesh.diagnostics(),
            router.log_tail()
        );
    }
    let unknown_host = get(mesh.gateway_port, "other.example.com", "/reviews", &[]).await;
    assert_eq!(
        unknown_host.map(|r| r.0),
        Some(404),
        "gateway serves only its hosts"
    );

    // Row: a connecting proxy its WorkloadGroup admits, whose labels match the
    // workloadSelector, becomes an endpoint.
    let registered = wait_until("127.0.0.2 as a reviews endpoint", || async {
        get(debug, "x", &client_dump, &[])
            .await
            .is_some_and(|(_, b)| b.contains("127.0.0.2"))
    })
    .await;
    if let Err(e) = registered {
        panic!(
            "{e}\n{}\n--- redirect log ---\n{}",
            mesh.diagnostics(),
            redirect.log_tail()
        );
    }

    // Row: Envoy ACKed every push (all three proxies): no NACK in /debug/syncz.
    let ids = [NODE_ID, redirect_identity().id, router_identity().id];
    if let Err(e) = wait_until("all types SYNCED in /debug/syncz", || {
        all_synced(debug, &ids)
    })
    .await
    {
        let syncz = get(debug, "x", "/debug/syncz", &[]).await;
        panic!(
            "{e}: {syncz:?}\n{}\n--- redirect log ---\n{}\n--- router log ---\n{}",
            mesh.diagnostics(),
            redirect.log_tail(),
            router.log_tail()
        );
    }
    let metrics = get(debug, "x", "/metrics", &[])
        .await
        .map(|m| m.1)
        .unwrap_or_default();
    for t in ["cds", "eds", "lds", "rds"] {
        let line = format!("pilot_total_xds_rejects{{type=\"{t}\"}} 0");
        assert!(
            metrics.contains(&line),
            "expected {line} in metrics: {metrics}"
        );
    }
    // istiod's `pilot_xds` is by the proxies' Istio version (Envoy sends none: `unknown`).
    let connected = lateen_test_support::metrics_text::sum(&metrics, "pilot_xds", &[]);
    assert_eq!(connected, 3.0, "three connected proxies: {metrics}");
    assert!(
        metrics.contains("pilot_proxy_convergence_time_count")
            && metrics.contains("pilot_xds_pushes{type=\"cds\"}"),
        "push metrics: {metrics}"
    );

    // Row: a registered proxy that disconnects leaves after the grace period (1 s here).
    drop(redirect);
    let left = wait_until("127.0.0.2 removed after the grace period", || async {
        get(debug, "x", &client_dump, &[])
            .await
            .is_some_and(|(_, b)| !b.contains("127.0.0.2"))
    })
    .await;
    assert!(left.is_ok(), "{left:?}\n{}", mesh.diagnostics());
    drop(router);

    // Row: Envoy's own /config_dump shows the expected clusters and routes.
    let dump = get(mesh.admin, "x", "/config_dump", &[])
        .await
        .map(|d| d.1)
        .unwrap_or_default();
    let port = mesh.listen;
    for want in [
        format!("outbound|{port}|v1|reviews.default.svc.cluster.local"),
        format!("outbound|{port}|v2|reviews.default.svc.cluster.local"),
        format!("outbound|{port}||details.default.svc.cluster.local"),
        "BlackHoleCluster".to_string(),
        "PassthroughCluster".to_string(),
        format!("\"route_config_name\": \"{port}\""),
        format!("\"name\": \"127.0.0.1_{port}\""),
        format!("\"name\": \"reviews.default.svc.cluster.local:{port}\""),
        "RING_HASH".to_string(),
        "envoy.filters.http.fault".to_string(),
    ] {
        assert!(dump.contains(&want), "Envoy config_dump lacks {want}");
    }

    // The injection webhook answers an AdmissionReview over HTTPS with a JSON patch.
    webhook_injects(&mesh).await;

    // lateend's own dump for the proxy.
    let own = get(
        debug,
        "x",
        &format!("/debug/config_dump?proxyID={NODE_ID}"),
        &[],
    )
    .await;
    assert!(
        own.as_ref()
            .is_some_and(|(c, b)| *c == 200 && b.contains("outbound|")),
        "{own:?}"
    );
    let _ = std::fs::remove_dir_all(&mesh.work);
}

/// POSTs an AdmissionReview for a pod that opts in (`sidecar.istio.io/inject: "true"`) to the
/// webhook with curl, trusting only the CA lateend wrote out.
async fn webhook_injects(mesh: &Mesh) {
    let Some(curl) = ["/usr/bin/curl", "/bin/curl"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        if std::env::var_os("LATEEN_REQUIRE_TOOLS").is_some_and(|v| !v.is_empty()) {
            panic!("curl is required (LATEEN_REQUIRE_TOOLS) but not found");
        }
        eprintln!("NOTICE: curl not found; skipping the webhook row");
        return;
    };
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "uid-lateend",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "default",
            "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "web", "labels": {"sidecar.istio.io/inject": "true"}},
                       "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        }
    });
    let host = "lateend.istio-system.svc";
    let out = tokio::process::Command::new(curl)
        .args(["--silent", "--show-error", "--max-time", "20", "--cacert"])
        .arg(mesh.work.join("webhook-ca.pem"))
        .arg("--resolve")
        .arg(format!("{host}:{}:127.0.0.1", mesh.lateend.webhook))
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(review.to_string())
        .arg(format!("https://{host}:{}/inject", mesh.lateend.webhook))
        .output()
        .await
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resp: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(resp["response"]["uid"], "uid-lateend", "{resp}");
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    assert_eq!(resp["response"]["patchType"], "JSONPatch", "{resp}");
    let metrics = get(mesh.lateend.debug, "x", "/metrics", &[])
        .await
        .map(|m| m.1)
        .unwrap_or_default();
    assert!(
        metrics.contains("sidecar_injection_requests_total 1"),
        "{metrics}"
    );
}
