//! `lateen demo` traced as a user would set it up: `--set meshConfig.extensionProviders=...`
//! names an `opentelemetry` provider, and the demo's config folder holds the collector's
//! ServiceEntry (in `default`, which the demo's Sidecars import) and a mesh-level Telemetry
//! `tracing` resource at 100 %. The collector is a
//! real OTLP/gRPC receiver started by the test. One request to productpage gives one trace
//! with a span per hop per proxy: productpage's inbound SERVER span as the root, its two
//! outbound CLIENT spans (details, reviews) as its children, and each callee's inbound
//! SERVER span as the child of the call that reached it. Loopback mode, no root needed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lateen_test_support::demo::RunningDemo;
use lateen_test_support::otlp_receiver::{
    COLLECTOR_HOST, OtlpReceiver, ReceivedSpan, SpanKind, mesh_tracing_yaml,
};
use lateen_test_support::probe;

/// The request's id; the first proxy marks it sampled (character 14 becomes `9`).
const REQUEST_ID: &str = "5d0c7a8e-1f2b-4c3d-9e4f-a0b1c2d3e4f5";
const MARKED_ID: &str = "5d0c7a8e-1f2b-9c3d-9e4f-a0b1c2d3e4f5";

fn service(span: &ReceivedSpan) -> &str {
    span.resource_attribute("service.name").unwrap_or("?")
}

fn summary(spans: &[&ReceivedSpan]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "{} kind {} {} span {} parent {}\n",
                service(s),
                s.span.kind,
                s.span.name,
                s.span_id_hex(),
                s.parent_span_id_hex()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_to_productpage_gives_one_trace_with_a_span_per_hop() {
    let receiver = OtlpReceiver::start()
        .await
        .expect("start the OTLP receiver");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(
        config.join("tracing.yaml"),
        mesh_tracing_yaml(receiver.address, "default", 100.0, ""),
    )
    .expect("write tracing.yaml");
    let provider = format!(
        r#"meshConfig.extensionProviders=[{{"name":"otel","opentelemetry":{{"service":"{COLLECTOR_HOST}","port":4317}}}}]"#
    );
    let lateen = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lateen"));
    let args = [
        "--mode",
        "loopback",
        "--duration",
        "300",
        "--set",
        &provider,
    ];
    let mut demo = tokio::task::block_in_place(|| {
        let mut demo = RunningDemo::start(&lateen, &args, dir.path());
        demo.wait_for_output(
            "http://127.0.10.1:9080/productpage",
            Duration::from_secs(120),
        );
        demo
    });

    // The request, once productpage answers with its callees.
    let productpage: SocketAddr = ([127, 0, 10, 1], 9080).into();
    let headers = [("host", "productpage:9080"), ("x-request-id", REQUEST_ID)];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = tokio::task::block_in_place(|| {
            probe::http_get(
                productpage,
                "/productpage",
                &headers,
                Duration::from_secs(5),
            )
        });
        if reply.as_ref().is_some_and(|(status, _)| *status == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "productpage did not answer 200: {reply:?}\n{}",
            lateen_test_support::demo::logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every span of the 200's trace: the one whose productpage SERVER span carries the id.
    let spans = receiver
        .settled(Duration::from_millis(1500), Duration::from_secs(20))
        .await;
    let root = spans
        .iter()
        .rev()
        .find(|s| {
            s.span.kind == SpanKind::Server as i32
                && service(s) == "productpage.default"
                && s.attribute("guid:x-request-id") == Some(MARKED_ID)
                && s.attribute("http.status_code") == Some("200")
        })
        .unwrap_or_else(|| {
            panic!(
                "no productpage SERVER span with the request's id:\n{}\n{}",
                summary(&spans.iter().collect::<Vec<_>>()),
                lateen_test_support::demo::logs(dir.path())
            )
        });
    let trace: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.trace_id_hex() == root.trace_id_hex())
        .collect();
    let tree = summary(&trace);
    assert!(root.span.parent_span_id.is_empty(), "{tree}");
    let by_id: BTreeMap<String, &ReceivedSpan> =
        trace.iter().map(|s| (s.span_id_hex(), *s)).collect();
    // productpage → details and productpage → reviews (the VirtualService sends all of
    // reviews to v1, which calls nobody): five spans.
    assert_eq!(trace.len(), 5, "{tree}");
    for callee in ["details", "reviews"] {
        let server = trace
            .iter()
            .find(|s| {
                s.span.kind == SpanKind::Server as i32 && service(s) == format!("{callee}.default")
            })
            .unwrap_or_else(|| panic!("no SERVER span of {callee}:\n{tree}"));
        let client = by_id.get(&server.parent_span_id_hex()).unwrap_or_else(|| {
            panic!("{callee}'s SERVER span has no parent in the trace:\n{tree}")
        });
        assert_eq!(client.span.kind, SpanKind::Client as i32, "{tree}");
        assert_eq!(service(client), "productpage.default", "{tree}");
        assert_eq!(
            client.span.name,
            format!("{callee}.default.svc.cluster.local:9080/*"),
            "{tree}"
        );
        assert_eq!(client.parent_span_id_hex(), root.span_id_hex(), "{tree}");
        assert_eq!(server.attribute("guid:x-request-id"), Some(MARKED_ID));
    }
    assert!(
        tokio::task::block_in_place(|| demo.stop()),
        "demo did not stop cleanly: {}",
        demo.stdout()
    );
}
