//! Tracing through two lateen-proxy hops (productpage's sidecar outbound → reviews' sidecar
//! inbound → the app), exporting to a real OTLP/gRPC receiver (a tonic TraceService server
//! from lateen-test-support): one trace, one span per proxy, parent links, Envoy's span
//! names/kinds/tags, trace context continued from W3C and B3 headers, sampling at 100 %, 0 %
//! and 50 % decided as Envoy decides (the `x-request-id` mark and the parent's flag).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use lateen_otlp::SpanKind;
use lateen_test_support::otlp_receiver::{OtlpReceiver, ReceivedSpan};
use support::upstream::Upstream;
use support::{Ports, ProxyProcess, free_port};

const OPERATION: &str = "reviews.default.svc.cluster.local:9080/*";
/// An `x-request-id` carrying Envoy's "sampled" mark (`9` at character 14).
const SAMPLED_ID: &str = "0f3c39a2-5b1e-9c7d-8a1b-2c3d4e5f6a7b";

struct Chain {
    receiver: OtlpReceiver,
    _app: Upstream,
    /// productpage's outbound listener, where the test sends requests.
    entry: SocketAddr,
    _proxies: [ProxyProcess; 2],
}

fn tracing_yaml(service: &str, sampling: f64) -> String {
    format!(
        r#"    tracing:
      cluster: otel
      authority: otel-collector.observability.svc.cluster.local
      service_name: {service}.default
      random_sampling: {sampling}
      custom_tags:
        - tag: istio.canonical_service
          literal: {service}
        - tag: test.header
          request_header: {{ name: x-test, default_value: none }}
"#
    )
}

/// One sidecar's listener: support's one-cluster config with a node id, a direction,
/// tracing, the route's decorator and the receiver's cluster.
fn proxy_config(
    ports: &Ports,
    node: &str,
    direction: &str,
    listen: u16,
    upstream: SocketAddr,
    receiver: SocketAddr,
    sampling: f64,
) -> String {
    let listener_extra = format!(
        "    direction: {direction}\n{}",
        tracing_yaml(node, sampling)
    );
    let route_extra = format!("            decorator: \"{OPERATION}\"\n");
    let config = support::simple_config(ports, listen, &[upstream], &route_extra, &listener_extra);
    let node_id = format!("sidecar~127.0.0.1~{node}-v1.default~default.svc.cluster.local");
    format!(
        "{}  - name: otel\n    protocol: http2\n    endpoints:\n      - address: {receiver}\n",
        config.replacen("node:\n", &format!("node:\n  id: {node_id}\n"), 1)
    )
}

async fn chain(sampling: f64) -> Chain {
    let receiver = OtlpReceiver::start().await.expect("start OTLP receiver");
    let app = Upstream::start("reviews").await;
    let (entry_port, reviews_port) = (free_port(), free_port());
    let reviews_ports = Ports::new();
    let reviews = ProxyProcess::start(
        &proxy_config(
            &reviews_ports,
            "reviews",
            "inbound",
            reviews_port,
            app.address,
            receiver.address,
            sampling,
        ),
        &reviews_ports,
    )
    .await;
    let productpage_ports = Ports::new();
    let productpage = ProxyProcess::start(
        &proxy_config(
            &productpage_ports,
            "productpage",
            "outbound",
            entry_port,
            ([127, 0, 0, 1], reviews_port).into(),
            receiver.address,
            sampling,
        ),
        &productpage_ports,
    )
    .await;
    Chain {
        receiver,
        _app: app,
        entry: ([127, 0, 0, 1], entry_port).into(),
        _proxies: [productpage, reviews],
    }
}

/// [`call`], then the spans received once there are `spans` of them (or after 10 s).
async fn call_and_collect(
    chain: &Chain,
    headers: &[(&str, &str)],
    spans: usize,
) -> (serde_json::Value, Vec<ReceivedSpan>) {
    let echo = call(chain.entry, headers).await;
    let received = chain
        .receiver
        .wait_for_spans(spans, Duration::from_secs(10))
        .await;
    assert_eq!(received.len(), spans, "{received:#?}");
    (echo, received)
}

/// GET through the chain with `headers`; the app's echo of the headers it got.
async fn call(entry: SocketAddr, headers: &[(&str, &str)]) -> serde_json::Value {
    let mut request = http::Request::get("/reviews/1").header("host", "reviews:9080");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let (status, _, body) = support::send(entry, request)
        .await
        .expect("request through chain");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("echo JSON")
}

fn header<'a>(echo: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    echo["headers"][name].as_str()
}

fn by_kind(spans: &[ReceivedSpan], kind: SpanKind) -> Vec<&ReceivedSpan> {
    spans
        .iter()
        .filter(|span| span.span.kind == kind as i32)
        .collect()
}

#[tokio::test]
async fn one_request_gives_one_trace_with_a_span_per_proxy() {
    let chain = chain(100.0).await;
    let (echo, spans) = call_and_collect(
        &chain,
        &[("x-test", "hello"), ("user-agent", "tracing-test")],
        2,
    )
    .await;
    let client = by_kind(&spans, SpanKind::Client);
    let server = by_kind(&spans, SpanKind::Server);
    let ([client], [server]) = (client.as_slice(), server.as_slice()) else {
        panic!("want one CLIENT span (outbound) and one SERVER span (inbound): {spans:#?}");
    };
    // One trace; the outbound span is the root, the inbound span its child, and the app
    // sees the inbound span as its parent.
    assert_eq!(client.trace_id_hex(), server.trace_id_hex());
    assert!(client.span.parent_span_id.is_empty(), "{client:#?}");
    assert_eq!(server.parent_span_id_hex(), client.span_id_hex());
    let traceparent = header(&echo, "traceparent").expect("traceparent reaches the app");
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", server.trace_id_hex(), server.span_id_hex())
    );
    // Envoy's names and tags.
    for (span, service, cluster) in [
        (client, "productpage", "backend"),
        (server, "reviews", "backend"),
    ] {
        assert_eq!(span.span.name, OPERATION);
        assert_eq!(
            span.resource_attribute("service.name"),
            Some(&*format!("{service}.default"))
        );
        assert_eq!(span.attribute("component"), Some("proxy"));
        assert_eq!(span.attribute("http.method"), Some("GET"));
        assert_eq!(span.attribute("http.status_code"), Some("200"));
        assert_eq!(
            span.attribute("http.url"),
            Some("http://reviews:9080/reviews/1")
        );
        assert_eq!(span.attribute("http.protocol"), Some("HTTP/1.1"));
        assert_eq!(span.attribute("user_agent"), Some("tracing-test"));
        assert_eq!(span.attribute("upstream_cluster"), Some(cluster));
        assert_eq!(span.attribute("response_flags"), Some("-"));
        assert_eq!(span.attribute("peer.address"), Some("127.0.0.1"));
        assert_eq!(span.attribute("istio.canonical_service"), Some(service));
        assert_eq!(span.attribute("test.header"), Some("hello"));
        assert_eq!(
            span.attribute("node_id"),
            Some(&*format!(
                "sidecar~127.0.0.1~{service}-v1.default~default.svc.cluster.local"
            ))
        );
        assert_eq!(
            span.attribute("guid:x-request-id"),
            header(&echo, "x-request-id"),
            "both spans carry the request id the app got"
        );
        assert!(span.span.end_time_unix_nano >= span.span.start_time_unix_nano);
        assert_eq!(span.span.flags & 1, 1);
    }
}

#[tokio::test]
async fn incoming_w3c_and_b3_contexts_are_continued() {
    let chain = chain(0.0).await;
    // The caller sampled (an Envoy upstream marks its decision in the `x-request-id` it
    // passes on): the decision is kept although the proxies sample 0 % themselves.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let (echo, spans) = call_and_collect(
        &chain,
        &[
            ("traceparent", &format!("00-{trace}-{caller}-01")),
            ("tracestate", "vendor=kept"),
            ("x-request-id", SAMPLED_ID),
        ],
        2,
    )
    .await;
    let client = by_kind(&spans, SpanKind::Client)[0];
    let server = by_kind(&spans, SpanKind::Server)[0];
    assert_eq!(client.trace_id_hex(), trace);
    assert_eq!(client.parent_span_id_hex(), caller);
    assert_eq!(client.span.trace_state, "vendor=kept");
    assert_eq!(server.parent_span_id_hex(), client.span_id_hex());
    assert_eq!(header(&echo, "tracestate"), Some("vendor=kept"));

    // B3 multi-header, 64-bit trace id: continued and answered in B3 too.
    let (echo, spans) = call_and_collect(
        &chain,
        &[
            ("x-b3-traceid", "a3ce929d0e0e4736"),
            ("x-b3-spanid", caller),
            ("x-b3-sampled", "1"),
            ("x-request-id", SAMPLED_ID),
        ],
        4,
    )
    .await;
    let b3: Vec<_> = spans
        .iter()
        .filter(|span| span.trace_id_hex() == "0000000000000000a3ce929d0e0e4736")
        .collect();
    assert_eq!(b3.len(), 2, "{spans:#?}");
    let server = b3
        .iter()
        .find(|span| span.span.kind == SpanKind::Server as i32)
        .expect("server span");
    assert_eq!(header(&echo, "x-b3-traceid"), Some("a3ce929d0e0e4736"));
    assert_eq!(header(&echo, "x-b3-spanid"), Some(&*server.span_id_hex()));
    assert_eq!(header(&echo, "x-b3-sampled"), Some("1"));

    // A caller that decided not to sample: nothing is exported, the decision goes on,
    // even under an id marked sampled.
    let before = chain.receiver.spans().len();
    let echo = call(
        chain.entry,
        &[
            ("traceparent", &format!("00-{trace}-{caller}-00")),
            ("x-request-id", SAMPLED_ID),
        ],
    )
    .await;
    let parent = header(&echo, "traceparent").expect("traceparent");
    assert!(
        parent.starts_with(&format!("00-{trace}-")) && parent.ends_with("-00"),
        "{parent}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(chain.receiver.spans().len(), before);

    // A sampled parent whose id carries no decision: the proxy's own 0 % decides, as Envoy.
    call(
        chain.entry,
        &[("traceparent", &format!("00-{trace}-{caller}-01"))],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(chain.receiver.spans().len(), before);
}

#[tokio::test]
async fn zero_percent_exports_nothing_and_still_propagates() {
    let chain = chain(0.0).await;
    for _ in 0..20 {
        let echo = call(chain.entry, &[]).await;
        let parent = header(&echo, "traceparent").expect("traceparent");
        assert!(parent.ends_with("-00"), "{parent}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(chain.receiver.spans().len(), 0);
    assert_eq!(chain.receiver.export_calls(), 0);
}

#[tokio::test]
async fn fifty_percent_samples_about_half_of_the_traces_whole() {
    let chain = chain(50.0).await;
    const REQUESTS: usize = 400;
    for _ in 0..REQUESTS {
        call(chain.entry, &[]).await;
    }
    // Wait for the exports to settle: no new span for longer than a flush interval.
    let spans = chain
        .receiver
        .settled(Duration::from_millis(1500), Duration::from_secs(20))
        .await;
    let mut traces = std::collections::BTreeMap::<String, usize>::new();
    for span in &spans {
        *traces.entry(span.trace_id_hex()).or_default() += 1;
    }
    // Only the first proxy decides; the second follows, so a sampled trace has both spans.
    assert!(traces.values().all(|count| *count == 2), "{traces:?}");
    // Binomial(400, 0.5): mean 200, sd 10; 140..=260 is six standard deviations.
    let sampled = traces.len();
    assert!(
        (140..=260).contains(&sampled),
        "{sampled} of {REQUESTS} traces sampled"
    );
}
