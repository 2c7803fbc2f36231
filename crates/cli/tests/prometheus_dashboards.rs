//! Istio's dashboards on a real Prometheus: `lateen demo` (loopback mode, canary scenario so
//! every reviews version serves) is scraped every second by Debian's `prometheus` (each
//! sidecar's merged metrics on its status port, 15020 `/stats/prometheus`, and lateend's
//! 15014 `/metrics`) while the test sends productpage traffic with and without `end-user:
//! jason` (which reviews v2 serves). Then a representative query of each panel group of
//! Istio's mesh, service, workload and control plane dashboards (the table [`QUERIES`], with
//! the dashboard and panel each comes from) must return data, and a Kiali-style graph query
//! must name every edge of the demo. Skips with a NOTICE without `prometheus` unless
//! `LATEEN_REQUIRE_TOOLS` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lateen_test_support::demo::RunningDemo;
use lateen_test_support::probe;
use lateen_test_support::prometheus::{Job, Prometheus, prometheus_or_skip};

/// Istio's dashboard queries with the demo's service and workload in place of the
/// dashboards' variables (`$service` = reviews, `$workload` = reviews-v2, `$namespace` =
/// default, `$qrep` = source or destination, `$__rate_interval` = 1m).
/// Columns: dashboard, panel (group / panel), PromQL.
const QUERIES: &[(&str, &str, &str)] = &[
    // Istio Mesh Dashboard (istio-mesh-dashboard.json).
    (
        "mesh",
        "Global Traffic / Traffic Volume",
        r#"round(sum(rate(istio_requests_total{reporter=~"source|waypoint"}[1m])), 0.001)"#,
    ),
    (
        "mesh",
        "Global Traffic / Success Rate",
        r#"sum(rate(istio_requests_total{reporter=~"source|waypoint",response_code!~"5.."}[1m])) / sum(rate(istio_requests_total{reporter=~"source|waypoint"}[1m]))"#,
    ),
    (
        "mesh",
        "Global Traffic / 4xxs",
        r#"round(sum(rate(istio_requests_total{reporter=~"source|waypoint",response_code=~"4.."}[1m])), 0.001) or vector(0)"#,
    ),
    (
        "mesh",
        "HTTP/gRPC Workloads / requests",
        r#"label_join(sum(rate(istio_requests_total{reporter=~"source|waypoint"}[1m])) by (destination_workload, destination_workload_namespace, destination_service), "destination_workload_var", ".", "destination_workload", "destination_workload_namespace")"#,
    ),
    (
        "mesh",
        "HTTP/gRPC Workloads / P90",
        r#"label_join(histogram_quantile(0.9, sum(rate(istio_request_duration_milliseconds_bucket{reporter=~"source|waypoint"}[1m])) by (le, destination_workload, destination_workload_namespace)), "destination_workload_var", ".", "destination_workload", "destination_workload_namespace")"#,
    ),
    (
        "mesh",
        "Istio Component Versions",
        r#"sum(istio_build) by (component, tag)"#,
    ),
    // Istio Service Dashboard (istio-service-dashboard.json), $service = reviews.
    (
        "service",
        "General / Client Request Volume",
        r#"round(sum(irate(istio_requests_total{reporter=~"source",destination_service="reviews.default.svc.cluster.local"}[1m])), 0.001)"#,
    ),
    (
        "service",
        "General / Client Success Rate (non-5xx responses)",
        r#"sum(irate(istio_requests_total{reporter=~"source",destination_service="reviews.default.svc.cluster.local",response_code!~"5.*"}[1m])) / (sum(irate(istio_requests_total{reporter=~"source",destination_service="reviews.default.svc.cluster.local"}[1m])) or on () vector(1))"#,
    ),
    (
        "service",
        "General / Client Request Duration (P50)",
        r#"(histogram_quantile(0.50, sum(irate(istio_request_duration_milliseconds_bucket{reporter=~"source",destination_service="reviews.default.svc.cluster.local"}[1m])) by (le)) / 1000)"#,
    ),
    (
        "service",
        "General / Server Request Volume",
        r#"round(sum(irate(istio_requests_total{reporter="destination",destination_service="reviews.default.svc.cluster.local"}[1m])), 0.001)"#,
    ),
    (
        "service",
        "General / Server Success Rate (non-5xx responses)",
        r#"sum(irate(istio_requests_total{reporter="destination",destination_service="reviews.default.svc.cluster.local",response_code!~"5.*"}[1m])) / (sum(irate(istio_requests_total{reporter="destination",destination_service="reviews.default.svc.cluster.local"}[1m])) or on () vector(1))"#,
    ),
    (
        "service",
        "Client Workloads / Incoming Requests By Source And Response Code (mTLS target: the demo runs auto mTLS)",
        r#"round(sum(irate(istio_requests_total{connection_security_policy="mutual_tls",destination_service=~"reviews.default.svc.cluster.local",reporter=~"destination",source_workload=~".*",source_workload_namespace=~".*"}[1m])) by (source_workload, source_workload_namespace, response_code), 0.001)"#,
    ),
    (
        "service",
        "Service Workloads / Incoming Request Duration By Service Workload (P90)",
        r#"(histogram_quantile(0.90, sum(irate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_service=~"reviews.default.svc.cluster.local",destination_workload=~".*",destination_workload_namespace=~".*"}[1m])) by (destination_workload, destination_workload_namespace, le)) / 1000)"#,
    ),
    (
        "service",
        "Service Workloads / Incoming Request Size By Service Workload (P50)",
        r#"histogram_quantile(0.50, sum(irate(istio_request_bytes_bucket{reporter="destination",destination_service=~"reviews.default.svc.cluster.local",destination_workload=~".*",destination_workload_namespace=~".*"}[1m])) by (destination_workload, destination_workload_namespace, le))"#,
    ),
    (
        "service",
        "Service Workloads / Response Size By Service Workload (P50)",
        r#"histogram_quantile(0.50, sum(irate(istio_response_bytes_bucket{reporter="destination",destination_service=~"reviews.default.svc.cluster.local",destination_workload=~".*",destination_workload_namespace=~".*"}[1m])) by (destination_workload, destination_workload_namespace, le))"#,
    ),
    // Istio Workload Dashboard (istio-workload-dashboard.json), $workload = reviews-v2.
    (
        "workload",
        "General / Incoming Request Volume",
        r#"round(sum(irate(istio_requests_total{reporter=~"destination",destination_workload_namespace=~"default",destination_workload=~"reviews-v2"}[1m])), 0.001)"#,
    ),
    (
        "workload",
        "General / Incoming Success Rate (non-5xx responses)",
        r#"sum(irate(istio_requests_total{reporter=~"destination",destination_workload_namespace=~"default",destination_workload=~"reviews-v2",response_code!~"5.*"}[1m])) / (sum(irate(istio_requests_total{reporter=~"destination",destination_workload_namespace=~"default",destination_workload=~"reviews-v2"}[1m])) or on () vector(1))"#,
    ),
    (
        "workload",
        "General / Request Duration (P99)",
        r#"(histogram_quantile(0.99, sum(irate(istio_request_duration_milliseconds_bucket{reporter=~"destination",destination_workload=~"reviews-v2",destination_workload_namespace=~"default"}[1m])) by (le)) / 1000)"#,
    ),
    (
        "workload",
        "Inbound Workloads / Incoming Requests By Source And Response Code (mTLS target)",
        r#"round(sum(irate(istio_requests_total{connection_security_policy="mutual_tls",destination_workload=~"reviews-v2",destination_workload_namespace=~"default",reporter=~"destination",source_workload=~".*",source_workload_namespace=~".*"}[1m])) by (source_workload, source_workload_namespace, response_code), 0.001)"#,
    ),
    (
        "workload",
        "Outbound Services / Outgoing Requests By Destination And Response Code",
        r#"round(sum(irate(istio_requests_total{connection_security_policy!="mutual_tls",source_workload=~"reviews-v2",source_workload_namespace=~"default",reporter=~"source",destination_service=~".*"}[1m])) by (destination_service, response_code), 0.001)"#,
    ),
    (
        "workload",
        "Outbound Services / Outgoing Request Duration By Destination (P50)",
        r#"(histogram_quantile(0.50, sum(irate(istio_request_duration_milliseconds_bucket{reporter=~"source",source_workload=~"reviews-v2",source_workload_namespace=~"default",destination_service=~".*"}[1m])) by (destination_service, le)) / 1000)"#,
    ),
    // Istio Control Plane Dashboard (pilot-dashboard.json).
    (
        "control plane",
        "Deployed Versions / Pilot Versions",
        r#"sum(istio_build{component="pilot"}) by (tag)"#,
    ),
    (
        "control plane",
        "Push Information / XDS Pushes",
        r#"sum(irate(pilot_xds_pushes[1m])) by (type)"#,
    ),
    (
        "control plane",
        "Push Information / Events (push triggers)",
        r#"sum(rate(pilot_push_triggers[1m])) by (type)"#,
    ),
    (
        "control plane",
        "Push Information / Connections (server reported)",
        r#"sum(pilot_xds)"#,
    ),
    (
        "control plane",
        "Push Information / Push Errors (rejected config)",
        r#"sum(pilot_total_xds_rejects) by (type)"#,
    ),
    (
        "control plane",
        "Push Information / Push Time",
        r#"sum(rate(pilot_xds_push_time_bucket{}[1m])) by (le)"#,
    ),
    (
        "control plane",
        "Push Information / Push Size",
        r#"sum(rate(pilot_xds_config_size_bytes_bucket{}[1m])) by (le)"#,
    ),
    (
        "control plane",
        "Webhooks / Validation (success)",
        r#"sum(rate(galley_validation_passed[1m]))"#,
    ),
    (
        "control plane",
        "Webhooks / Injection (success)",
        r#"sum(rate(sidecar_injection_success_total[1m]))"#,
    ),
];

/// The Kiali graph's request-edge query, grouped as the versioned-app graph is.
const KIALI_GRAPH: &str = r#"sum(rate(istio_requests_total{reporter="destination"}[5m])) by (source_workload, destination_service_name, destination_workload, response_code) > 0"#;

/// Every edge of the demo: (source_workload, destination_service_name, destination_workload).
const EDGES: &[(&str, &str, &str)] = &[
    ("unknown", "productpage", "productpage-v1"),
    ("productpage-v1", "details", "details-v1"),
    ("productpage-v1", "reviews", "reviews-v1"),
    ("productpage-v1", "reviews", "reviews-v2"),
    ("productpage-v1", "reviews", "reviews-v3"),
    ("reviews-v2", "ratings", "ratings-v1"),
    ("reviews-v3", "ratings", "ratings-v1"),
];

fn start_demo(dir: &std::path::Path) -> RunningDemo {
    let lateen = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lateen"));
    let args = [
        "--mode",
        "loopback",
        "--scenario",
        "canary",
        "--duration",
        "600",
    ];
    RunningDemo::start(&lateen, &args, dir)
}

#[test]
fn istio_dashboards_and_the_kiali_graph_show_the_demo() {
    let Some(binary) = prometheus_or_skip("istio_dashboards_and_the_kiali_graph_show_the_demo")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut demo = start_demo(dir.path());
    // The sidecars' status ports, where Istio's injected prometheus.io annotations point
    // (merged metrics); lateend's 15014 as Istio's Prometheus scrapes istiod.
    let mut sidecars: Vec<String> = (1..=6).map(|i| format!("127.0.10.{i}:15020")).collect();
    sidecars.sort();
    let prometheus = Prometheus::start(
        &binary,
        &[
            Job {
                name: "envoy-stats".into(),
                path: "/stats/prometheus".into(),
                targets: sidecars,
            },
            Job {
                name: "pilot".into(),
                path: "/metrics".into(),
                targets: vec!["127.0.0.1:15014".into()],
            },
        ],
    )
    .expect("start prometheus");

    // The canary scenario ends with every reviews version having served.
    let deadline = Instant::now() + Duration::from_secs(180);
    while !demo.stdout().contains("v3 weight 100%") {
        if let Ok(Some(status)) = demo.child.try_wait() {
            panic!(
                "demo exited ({status}):\n{}\n{}",
                demo.stdout(),
                lateen_test_support::demo::logs(dir.path())
            );
        }
        assert!(
            Instant::now() < deadline,
            "canary scenario did not finish in 180 s:\n{}\n{}",
            demo.stdout(),
            lateen_test_support::demo::logs(dir.path())
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // Traffic while Prometheus scrapes: plain requests (reviews v3 now) and jason's (v2).
    let productpage: SocketAddr = "127.0.10.1:9080".parse().expect("address");
    let mut failed = 0;
    let traffic_until = Instant::now() + Duration::from_secs(8);
    let mut sent = 0u32;
    while Instant::now() < traffic_until && sent < 2000 {
        let mut headers = vec![("Host", "productpage")];
        if sent % 2 == 1 {
            headers.push(("end-user", "jason"));
        }
        match probe::http_get(
            productpage,
            "/productpage",
            &headers,
            Duration::from_secs(5),
        ) {
            Some((200, _)) => {}
            _ => failed += 1,
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(failed, 0, "{failed} of {sent} productpage requests failed");
    // Two more scrapes after the last request.
    std::thread::sleep(Duration::from_secs(3));

    let (up, down) = prometheus.targets().expect("targets");
    assert!(
        down.is_empty() && up == 7,
        "scrape targets: {up} up, {down:?}"
    );

    let mut failures = Vec::new();
    for (dashboard, panel, promql) in QUERIES {
        match prometheus.query(promql) {
            Ok(samples) if !samples.is_empty() => {}
            Ok(_) => failures.push(format!("{dashboard} / {panel}: no data for {promql}")),
            Err(err) => failures.push(format!("{dashboard} / {panel}: {err:#}")),
        }
    }
    println!(
        "{} of {} dashboard queries returned data",
        QUERIES.len() - failures.len(),
        QUERIES.len()
    );
    assert!(
        failures.is_empty(),
        "dashboard queries without data:\n{}",
        failures.join("\n")
    );

    // Both components report their build, as Istio's mesh dashboard lists them.
    let versions = QUERIES
        .iter()
        .find(|(_, panel, _)| *panel == "Istio Component Versions")
        .map(|(_, _, promql)| *promql)
        .unwrap_or_default();
    let builds: BTreeSet<String> = prometheus
        .query(versions)
        .expect("istio_build")
        .into_iter()
        .filter_map(|s| s.labels.get("component").cloned())
        .collect();
    assert!(
        builds.contains("pilot") && builds.contains("proxy"),
        "istio_build components: {builds:?}"
    );

    // istiod's registry gauges: the demo's four services and its one VirtualService.
    for (promql, expected) in [
        ("sum(pilot_services)", 4.0),
        ("sum(pilot_virt_services)", 1.0),
    ] {
        let value = prometheus
            .query(promql)
            .expect(promql)
            .first()
            .map(|s| s.value);
        assert_eq!(value, Some(expected), "{promql}");
    }

    let graph = prometheus.query(KIALI_GRAPH).expect("kiali graph query");
    let label = |s: &lateen_test_support::prometheus::Sample, key: &str| {
        s.labels.get(key).cloned().unwrap_or_default()
    };
    let edges: BTreeSet<(String, String, String)> = graph
        .iter()
        .filter(|s| label(s, "response_code") == "200")
        .map(|s| {
            (
                label(s, "source_workload"),
                label(s, "destination_service_name"),
                label(s, "destination_workload"),
            )
        })
        .collect();
    let missing: Vec<_> = EDGES
        .iter()
        .filter(|(src, svc, dst)| {
            !edges.contains(&(src.to_string(), svc.to_string(), dst.to_string()))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "Kiali graph edges missing: {missing:?}; the graph has {edges:?}"
    );
    println!("Kiali graph: {} of {} demo edges", EDGES.len(), EDGES.len());

    assert!(demo.stop(), "demo did not stop cleanly: {}", demo.stdout());
    assert!(demo.stdout().contains("demo stopped"), "{}", demo.stdout());
}
