//! Istio traffic policies through the built proxy with real upstreams: fault injection,
//! mirroring, CORS, load balancing (least request, consistent hash), circuit breaking and
//! outlier detection, each configured in the static YAML bootstrap.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use bytes::Bytes;
use http_body_util::Full;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::upstream::Upstream;
use support::*;

/// One listener with one route (`route_yaml` is the route's body below `match`) and the
/// given clusters (`name`, endpoints, extra cluster YAML).
fn config(
    ports: &Ports,
    listen: u16,
    route_yaml: &str,
    clusters: &[(&str, Vec<SocketAddr>, &str)],
) -> String {
    let mut clusters_yaml = String::new();
    for (name, endpoints, extra) in clusters {
        clusters_yaml.push_str(&format!("  - name: {name}\n    endpoints:\n"));
        for endpoint in endpoints {
            clusters_yaml.push_str(&format!("      - address: {endpoint}\n"));
        }
        for line in extra.lines() {
            clusters_yaml.push_str(&format!("    {line}\n"));
        }
    }
    let route: String = route_yaml
        .lines()
        .map(|line| format!("            {line}\n"))
        .collect();
    format!(
        "{admin}listeners:\n  - name: http\n    address: 127.0.0.1:{listen}\n    route_config: main\nroute_configs:\n  - name: main\n    virtual_hosts:\n      - name: all\n        domains: [\"*\"]\n        routes:\n          - match: {{ path: {{ prefix: / }} }}\n{route}clusters:\n{clusters_yaml}",
        admin = ports.admin_yaml()
    )
}

async fn start(
    route_yaml: &str,
    clusters: &[(&str, Vec<SocketAddr>, &str)],
) -> (ProxyProcess, SocketAddr) {
    let ports = Ports::new();
    let listen = free_port();
    let proxy = ProxyProcess::start(&config(&ports, listen, route_yaml, clusters), &ports).await;
    (proxy, ([127, 0, 0, 1], listen).into())
}

fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static [u8],
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "backend.default:8080");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder
        .body(Full::new(Bytes::from_static(body)))
        .expect("request")
}

async fn call(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, String) {
    let (status, headers, body) = send(address, request(method, path, headers, b""))
        .await
        .expect("proxied request");
    (
        status.as_u16(),
        headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The upstream name of an echo answer.
fn answered_by(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|echo| echo["upstream"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string())
}

#[tokio::test]
async fn fault_abort_answers_the_configured_status() {
    let upstream = Upstream::start("backend").await;
    let route =
        "route:\n  cluster: backend\nfault:\n  abort:\n    http_status: 418\n    percentage: 100";
    let (proxy, address) = start(route, &[("backend", vec![upstream.address], "")]).await;
    for _ in 0..5 {
        let (status, _, body) = call(address, "GET", "/echo", &[]).await;
        assert_eq!(status, 418);
        assert_eq!(body, "fault filter abort");
    }
    assert_eq!(
        upstream.hits.load(Ordering::SeqCst),
        0,
        "aborted requests never reach the upstream"
    );
    let metrics = proxy.prometheus().await;
    assert_eq!(
        sample(
            &metrics,
            "istio_requests_total",
            &["response_code=\"418\"", "response_flags=\"FI\""]
        ),
        Some(5.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn fault_abort_at_a_percentage_and_grpc_status() {
    let upstream = Upstream::start("backend").await;
    let route =
        "route:\n  cluster: backend\nfault:\n  abort:\n    http_status: 503\n    percentage: 50";
    let (_proxy, address) = start(route, &[("backend", vec![upstream.address], "")]).await;
    let mut aborted = 0;
    for _ in 0..200 {
        if call(address, "GET", "/echo", &[]).await.0 == 503 {
            aborted += 1;
        }
    }
    assert!(
        (60..=140).contains(&aborted),
        "about half aborted, got {aborted} of 200"
    );

    let route = "route:\n  cluster: backend\nfault:\n  abort:\n    grpc_status: 14";
    let (_proxy, address) = start(route, &[("backend", vec![upstream.address], "")]).await;
    let (status, headers, _) = call(
        address,
        "POST",
        "/pkg.Svc/Call",
        &[("content-type", "application/grpc")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["grpc-status"], "14");
}

#[tokio::test]
async fn fault_delay_waits_then_forwards() {
    let upstream = Upstream::start("backend").await;
    let route =
        "route:\n  cluster: backend\nfault:\n  delay:\n    fixed_delay: 300ms\n    percentage: 100";
    let (proxy, address) = start(route, &[("backend", vec![upstream.address], "")]).await;
    let started = Instant::now();
    let (status, _, body) = call(address, "GET", "/echo", &[]).await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "delayed by {:?}",
        started.elapsed()
    );
    assert_eq!(status, 200);
    assert_eq!(answered_by(&body), "backend");
    let metrics = proxy.prometheus().await;
    assert_eq!(
        sample(
            &metrics,
            "istio_requests_total",
            &["response_code=\"200\"", "response_flags=\"DI\""]
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn mirror_copies_requests_to_the_shadow_cluster() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let route =
        "route:\n  cluster: primary\n  mirrors:\n    - cluster: shadow\n      percentage: 100";
    let (_proxy, address) = start(
        route,
        &[
            ("primary", vec![primary.address], ""),
            ("shadow", vec![shadow.address], ""),
        ],
    )
    .await;
    let (status, _, body) = call(address, "GET", "/echo", &[]).await;
    assert_eq!((status, answered_by(&body).as_str()), (200, "primary"));
    let (status, _, body) = send(address, request("POST", "/sink", &[], b"0123456789"))
        .await
        .expect("post");
    assert_eq!(
        (status.as_u16(), String::from_utf8_lossy(&body).into_owned()),
        (200, "primary got 10".to_string())
    );
    // The shadow failing changes nothing for the client.
    shadow.failing.store(true, Ordering::SeqCst);
    assert_eq!(call(address, "GET", "/echo", &[]).await.0, 200);
    assert!(
        eventually(Duration::from_secs(5), || async {
            shadow.seen.lock().expect("seen").len() == 3
        })
        .await,
        "three copies"
    );
    let seen = shadow.seen.lock().expect("seen").clone();
    assert_eq!(seen[0].host, "backend.default-shadow:8080");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("GET", "/echo")
    );
    assert_eq!(
        (seen[1].method.as_str(), seen[1].body_len),
        ("POST", 10),
        "buffered bodies are mirrored"
    );
    assert_eq!(
        primary.seen.lock().expect("seen")[0].host,
        "backend.default:8080"
    );
}

#[tokio::test]
async fn mirror_percentage_zero_sends_nothing() {
    let primary = Upstream::start("primary").await;
    let shadow = Upstream::start("shadow").await;
    let route =
        "route:\n  cluster: primary\n  mirrors:\n    - cluster: shadow\n      percentage: 0";
    let (_proxy, address) = start(
        route,
        &[
            ("primary", vec![primary.address], ""),
            ("shadow", vec![shadow.address], ""),
        ],
    )
    .await;
    for _ in 0..10 {
        assert_eq!(call(address, "GET", "/echo", &[]).await.0, 200);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(shadow.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn cors_preflight_and_response_headers() {
    let upstream = Upstream::start("backend").await;
    let route = "route:\n  cluster: backend\ncors:\n  allow_origins:\n    - exact: https://app.example\n    - regex: 'https://.*\\.trusted\\.example'\n  allow_methods: [GET, POST]\n  allow_headers: [x-token]\n  expose_headers: [x-trace]\n  max_age: 600\n  allow_credentials: true";
    let (_proxy, address) = start(route, &[("backend", vec![upstream.address], "")]).await;

    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "POST"),
    ];
    let (status, headers, _) = call(address, "OPTIONS", "/api", &preflight).await;
    assert_eq!(status, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(headers["access-control-allow-methods"], "GET,POST");
    assert_eq!(headers["access-control-allow-headers"], "x-token");
    assert_eq!(headers["access-control-max-age"], "600");
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert_eq!(
        upstream.hits.load(Ordering::SeqCst),
        0,
        "the proxy answers preflights itself"
    );

    let (status, headers, body) = call(
        address,
        "GET",
        "/echo",
        &[("origin", "https://a.trusted.example")],
    )
    .await;
    assert_eq!((status, answered_by(&body).as_str()), (200, "backend"));
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://a.trusted.example"
    );
    assert_eq!(headers["access-control-expose-headers"], "x-trace");

    let (status, headers, _) = call(
        address,
        "GET",
        "/echo",
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.get("access-control-allow-origin").is_none());
    // A preflight from an origin not allowed goes on to the upstream (Envoy's default).
    let (status, headers, _) = call(
        address,
        "OPTIONS",
        "/api",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.get("access-control-allow-origin").is_none());
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn ring_hash_keeps_a_key_on_one_host() {
    let upstreams = [
        Upstream::start("a").await,
        Upstream::start("b").await,
        Upstream::start("c").await,
    ];
    let endpoints = upstreams.iter().map(|upstream| upstream.address).collect();
    let route = "route:\n  cluster: backend\n  hash_policy:\n    - header: x-user";
    let (_proxy, address) = start(route, &[("backend", endpoints, "lb_policy: ring_hash")]).await;
    let mut owners = std::collections::HashSet::new();
    for user in 0..12 {
        let user = format!("user-{user}");
        let first = answered_by(&call(address, "GET", "/echo", &[("x-user", &user)]).await.2);
        for _ in 0..5 {
            assert_eq!(
                answered_by(&call(address, "GET", "/echo", &[("x-user", &user)]).await.2),
                first,
                "{user} moved"
            );
        }
        owners.insert(first);
    }
    assert!(owners.len() >= 2, "keys spread over hosts: {owners:?}");

    let route = "route:\n  cluster: backend\n  hash_policy:\n    - cookie: session\n    - query_parameter: tenant";
    let endpoints = upstreams.iter().map(|upstream| upstream.address).collect();
    let (_proxy, address) = start(route, &[("backend", endpoints, "lb_policy: maglev")]).await;
    let first = answered_by(
        &call(
            address,
            "GET",
            "/echo?tenant=t1",
            &[("cookie", "a=1; session=s1")],
        )
        .await
        .2,
    );
    for _ in 0..5 {
        assert_eq!(
            answered_by(
                &call(
                    address,
                    "GET",
                    "/echo?tenant=t1",
                    &[("cookie", "session=s1; b=2")]
                )
                .await
                .2
            ),
            first
        );
    }
}

#[tokio::test]
async fn least_request_avoids_the_busy_host() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let route = "route:\n  cluster: backend";
    let (_proxy, address) = start(
        route,
        &[(
            "backend",
            vec![a.address, b.address],
            "lb_policy: least_request",
        )],
    )
    .await;
    let slow = tokio::spawn(async move { call(address, "GET", "/delay/1500", &[]).await });
    assert!(
        eventually(Duration::from_secs(2), || async {
            a.hits.load(Ordering::SeqCst) + b.hits.load(Ordering::SeqCst) == 1
        })
        .await
    );
    let busy = if a.hits.load(Ordering::SeqCst) == 1 {
        "a"
    } else {
        "b"
    };
    for _ in 0..10 {
        let owner = answered_by(&call(address, "GET", "/echo", &[]).await.2);
        assert_ne!(
            owner, busy,
            "the host with a request in flight is not chosen"
        );
    }
    let (status, _, body) = slow.await.expect("slow request");
    assert_eq!(status, 200);
    assert!(body.starts_with(busy), "{body}");
}

#[tokio::test]
async fn circuit_breaker_overflows_with_uo() {
    let upstream = Upstream::start("backend").await;
    let route = "route:\n  cluster: backend";
    let breakers = "circuit_breakers:\n  max_connections: 1\n  max_pending_requests: 1";
    let (proxy, address) = start(route, &[("backend", vec![upstream.address], breakers)]).await;
    let calls: Vec<_> = (0..5)
        .map(|_| tokio::spawn(async move { call(address, "GET", "/delay/700", &[]).await }))
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.expect("call").0);
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        vec![200, 200, 503, 503, 503],
        "two in flight (one connected, one pending), the rest overflow"
    );
    let metrics = proxy.prometheus().await;
    assert_eq!(
        sample(
            &metrics,
            "istio_requests_total",
            &["response_code=\"503\"", "response_flags=\"UO\""]
        ),
        Some(3.0),
        "{metrics}"
    );
    // Capacity comes back when requests finish.
    assert_eq!(call(address, "GET", "/echo", &[]).await.0, 200);
}

#[tokio::test]
async fn streaming_responses_count_until_their_body_ends() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let route = "route:\n  cluster: backend";
    let extra = "lb_policy: least_request\ncircuit_breakers:\n  max_requests: 1";
    let (_proxy, address) = start(route, &[("backend", vec![a.address, b.address], extra)]).await;
    // Its head arrives at once; the body 1 s later.
    let slow = tokio::spawn(async move { call(address, "GET", "/stream/1000", &[]).await });
    assert!(
        eventually(Duration::from_secs(2), || async {
            a.hits.load(Ordering::SeqCst) + b.hits.load(Ordering::SeqCst) == 1
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        call(address, "GET", "/echo", &[]).await.0,
        503,
        "the streaming response still holds the only request slot"
    );
    let (status, _, body) = slow.await.expect("slow request");
    assert_eq!(status, 200);
    assert!(body.contains("streamed after 1000ms"), "{body}");
    assert_eq!(
        call(address, "GET", "/echo", &[]).await.0,
        200,
        "the slot is free once the body ended"
    );
}

#[tokio::test]
async fn outlier_detection_ejects_and_returns_a_host() {
    let (good, bad) = (Upstream::start("good").await, Upstream::start("bad").await);
    let route = "route:\n  cluster: backend";
    let outlier = "outlier_detection:\n  consecutive_5xx: 3\n  interval: 100ms\n  base_ejection_time: 1s\n  max_ejection_percent: 50";
    let (_proxy, address) = start(
        route,
        &[("backend", vec![good.address, bad.address], outlier)],
    )
    .await;
    bad.failing.store(true, Ordering::SeqCst);
    let mut failures = 0;
    for _ in 0..20 {
        if call(address, "GET", "/echo", &[]).await.0 == 503 {
            failures += 1;
        }
    }
    assert_eq!(failures, 3, "ejected after three consecutive 5xx");
    assert_eq!(bad.hits.load(Ordering::SeqCst), 3);
    bad.failing.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..6 {
        assert_eq!(call(address, "GET", "/echo", &[]).await.0, 200);
    }
    assert!(
        bad.hits.load(Ordering::SeqCst) > 3,
        "the host is back after the ejection time"
    );
}

/// Istio's `connectionPool.http.maxRequestsPerConnection` (Envoy's
/// `common_http_protocol_options.max_requests_per_connection`): with 1, every request gets
/// an upstream connection of its own, which closes after it; without it, the proxy's two
/// workers keep reusing at most one connection each.
#[tokio::test]
async fn max_requests_per_connection_one_gives_each_request_its_own_upstream_connection() {
    let limited = Upstream::start("limited").await;
    let pooled = Upstream::start("pooled").await;
    let route = "route:\n  cluster: limited";
    let limits = "connection_limits:\n  max_requests_per_connection: 1\n  idle_timeout: 30s";
    let (_proxy, address) = start(
        route,
        &[
            ("limited", vec![limited.address], limits),
            ("pooled", vec![pooled.address], ""),
        ],
    )
    .await;
    for _ in 0..6 {
        assert_eq!(call(address, "GET", "/echo", &[]).await.0, 200);
    }
    assert_eq!(limited.hits.load(Ordering::SeqCst), 6);
    assert_eq!(
        limited.connections.total.load(Ordering::SeqCst),
        6,
        "one upstream connection per request"
    );
    // Each closes after its response: none stays open for long.
    lateen_test_support::wait::eventually(
        "the limited upstream connections to close",
        Duration::from_secs(5),
        || async { (limited.connections.open.load(Ordering::SeqCst) == 0).then_some(()) },
    )
    .await;

    let (_proxy, address) = start(
        "route:\n  cluster: pooled",
        &[("pooled", vec![pooled.address], "")],
    )
    .await;
    for _ in 0..6 {
        assert_eq!(call(address, "GET", "/echo", &[]).await.0, 200);
    }
    assert!(
        pooled.connections.total.load(Ordering::SeqCst) <= 2,
        "pooled connections are reused"
    );
}
