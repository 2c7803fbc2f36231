//! What a hostile or careless client finds (issue #16), each through the built proxy with raw
//! sockets so the bytes are exactly the attacker's: protocol upgrades limited to the
//! configured types (WebSocket by default, as Istio) with `h2c` stripped and a 101 checked;
//! client faults (bad chunk sizes, aborted uploads) answered as the client's, never blamed on
//! the upstream; abandoned requests counted once and released; protocol sniffing of any
//! token method; `/stats/prometheus` content negotiation; a bound on metric series; a
//! bare-LF trailer line refused rather than read on into the next pipelined request.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use std::time::Duration;

use support::upstream::{RawUpstream, Upstream};
use support::*;

const QUIET: Duration = Duration::from_millis(700);

/// `istio_requests_total` with `response_code` and `response_flags` as given.
fn requests_with(metrics: &str, code: u16, flags: &str) -> Option<f64> {
    let code = format!("response_code=\"{code}\"");
    let flags = format!("response_flags=\"{flags}\"");
    sample(metrics, "istio_requests_total", &[&code, &flags])
}

/// A plain GET after the attack is still served: nothing was ejected or left broken.
async fn still_served(address: std::net::SocketAddr) {
    let good = raw_exchange(
        address,
        b"GET /echo HTTP/1.1\r\nHost: backend\r\n\r\n",
        QUIET,
    )
    .await;
    assert_eq!(statuses(&good), [200], "{good}");
}

/// The status codes of the responses in `raw`, in order.
fn statuses(raw: &str) -> Vec<u16> {
    raw.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| raw.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

#[tokio::test]
async fn h2c_upgrade_is_stripped_and_a_pipelined_request_is_parsed_and_routed() {
    let upstream = Upstream::start("backend").await;
    let (_proxy, address) = proxy_to(upstream.address).await;
    let raw = raw_exchange(
        address,
        b"GET /first HTTP/1.1\r\nHost: backend\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n\
          GET /admin HTTP/1.1\r\nHost: backend\r\n\r\n",
        QUIET,
    )
    .await;
    assert_eq!(statuses(&raw), [200, 200], "{raw}");
    let seen = upstream.seen.lock().expect("seen").clone();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/first", "/admin"], "both requests parsed: {raw}");
    // The echo upstream answers with the headers it got.
    assert!(
        !raw.contains("\"upgrade\"") && !raw.contains("http2-settings"),
        "the upstream saw the h2c upgrade: {raw}"
    );
}

#[tokio::test]
async fn an_upgrade_type_not_configured_gets_403_and_never_reaches_the_upstream() {
    let upstream = RawUpstream::start(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n",
    )
    .await;
    let (_proxy, address) = proxy_to(upstream.address).await;
    let raw = raw_exchange(
        address,
        b"GET / HTTP/1.1\r\nHost: backend\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n",
        QUIET,
    )
    .await;
    assert_eq!(statuses(&raw), [403], "{raw}");
    assert_eq!(upstream.received_text(), "", "forwarded: {raw}");
}

#[tokio::test]
async fn a_101_for_a_protocol_the_client_did_not_ask_for_gets_502() {
    let upstream = RawUpstream::start(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    )
    .await;
    let (proxy, address) = proxy_to(upstream.address).await;
    let websocket = raw_exchange(
        address,
        b"GET /ws HTTP/1.1\r\nHost: backend\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        QUIET,
    )
    .await;
    assert_eq!(statuses(&websocket), [502], "{websocket}");
    let plain = raw_exchange(address, b"GET / HTTP/1.1\r\nHost: backend\r\n\r\n", QUIET).await;
    assert_eq!(statuses(&plain), [502], "{plain}");
    let metrics = proxy.prometheus().await;
    assert_eq!(requests_with(&metrics, 502, "UPE"), Some(2.0), "{metrics}");
}

/// The proxy's metrics once `ready` holds of them (polled for up to 5 s); fails with the last
/// scrape otherwise.
async fn metrics_where(proxy: &ProxyProcess, ready: impl Fn(&str) -> bool) -> String {
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = proxy.prometheus().await;
        if ready(&metrics) {
            return metrics;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("metrics never became as expected:\n{metrics}");
}

/// A proxy to the echo upstream whose cluster ejects a host after three consecutive
/// failures, for 30 s: any client fault blamed on the upstream shows as a 503 after it.
async fn proxy_with_outlier_detection() -> (ProxyProcess, std::net::SocketAddr, Upstream) {
    let upstream = Upstream::start("backend").await;
    let ports = Ports::new();
    let listen = free_port();
    let config = simple_config(&ports, listen, &[upstream.address], "", "").replace(
        "    destination:\n",
        "    outlier_detection:\n      consecutive_5xx: 3\n      interval: 100ms\n      \
         base_ejection_time: 30s\n      max_ejection_percent: 100\n    destination:\n",
    );
    let proxy = ProxyProcess::start(&config, &ports).await;
    (proxy, ([127, 0, 0, 1], listen).into(), upstream)
}

#[tokio::test]
async fn malformed_chunk_sizes_are_the_clients_fault_400_dpe_and_eject_nothing() {
    let (proxy, address, _upstream) = proxy_with_outlier_detection().await;
    // A chunk extension of 100 KB, far past any head limit.
    let long_extension = format!("5;ext={}\r\nhello\r\n0\r\n\r\n", "z".repeat(100_000));
    let bad_sizes: [&[u8]; 6] = [
        long_extension.as_bytes(),
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\nqq\r\n\r\n",
    ];
    for body in bad_sizes {
        let mut request =
            b"POST /echo HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(body);
        let raw = raw_exchange(address, &request, QUIET).await;
        assert_eq!(
            statuses(&raw),
            [400],
            "{}: {raw}",
            String::from_utf8_lossy(&body[..body.len().min(20)])
        );
    }
    // The host was not ejected: the next good request is served.
    still_served(address).await;
    let metrics = proxy.prometheus().await;
    assert_eq!(requests_with(&metrics, 400, "DPE"), Some(6.0), "{metrics}");
    assert!(!metrics.contains("response_flags=\"UC\""), "{metrics}");
}

#[tokio::test]
async fn an_upload_the_client_aborts_is_dc_and_ejects_nothing() {
    use tokio::io::AsyncWriteExt;
    let (proxy, address, _upstream) = proxy_with_outlier_detection().await;
    for _ in 0..6 {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        stream
            .write_all(
                b"POST /echo HTTP/1.1\r\nHost: backend\r\nContent-Length: 100000\r\n\r\npartial...",
            )
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(stream);
    }
    still_served(address).await;
    let metrics = metrics_where(&proxy, |metrics| {
        sample(metrics, "istio_requests_total", &["response_flags=\"DC\""]) == Some(6.0)
    })
    .await;
    assert!(!metrics.contains("response_flags=\"UC\""), "{metrics}");
}

#[tokio::test]
async fn requests_abandoned_before_the_response_are_recorded_once_as_0_dc_and_released() {
    use tokio::io::AsyncWriteExt;
    let upstream = Upstream::start("backend").await;
    let (proxy, address) = proxy_to(upstream.address).await;
    // Five h2c streams cancelled on one connection that stays open, one HTTP/1.1 request whose
    // client hangs up; the upstream would answer after 3 s.
    let h2 = h2_connection(address).await;
    for _ in 0..5 {
        let mut h2 = h2.clone();
        let request = http::Request::get("http://backend/delay/3000")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let cancelled =
            tokio::time::timeout(Duration::from_millis(300), h2.send_request(request)).await;
        assert!(cancelled.is_err(), "answered before the cancel");
    }
    let mut h1 = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    h1.write_all(b"GET /delay/3000 HTTP/1.1\r\nHost: backend\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(h1);
    let metrics = metrics_where(&proxy, |metrics| {
        requests_with(metrics, 0, "DC") == Some(6.0)
    })
    .await;
    assert_eq!(
        sample(
            &metrics,
            "istio_requests_total",
            &["destination_service=\"backend.default.svc.cluster.local\""]
        ),
        Some(6.0),
        "{metrics}"
    );
    let (_, stats) = get(proxy.admin, "/stats").await.expect("stats");
    assert!(
        stats.contains("lateen.downstream_rq_active: 0\n"),
        "{stats}"
    );
    // Recorded once: after the upstream would have answered, still six.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let metrics = proxy.prometheus().await;
    assert_eq!(
        sample(&metrics, "istio_requests_total", &["response_flags=\"DC\""]),
        Some(6.0),
        "{metrics}"
    );
    drop(h2);
}

#[tokio::test]
async fn any_token_method_and_a_slow_first_packet_are_sniffed_as_http() {
    use tokio::io::AsyncWriteExt;
    let upstream = Upstream::start("backend").await;
    let (_proxy, address) = proxy_to(upstream.address).await;
    for method in ["PROPFIND", "PURGE", "get"] {
        let request = format!("{method} /echo HTTP/1.1\r\nHost: backend\r\n\r\n");
        let raw = raw_exchange(address, request.as_bytes(), QUIET).await;
        assert_eq!(statuses(&raw), [200], "{method}: {raw}");
        assert!(raw.contains(&format!("\"method\":\"{method}\"")), "{raw}");
    }
    // The first bytes a second after connecting, the request line in two packets.
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stream.write_all(b"PROPF").await.expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream
        .write_all(b"IND /echo HTTP/1.1\r\nHost: backend\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut raw = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut raw),
    )
    .await;
    let raw = String::from_utf8_lossy(&raw);
    assert!(read.is_ok(), "no answer: {raw}");
    assert_eq!(statuses(&raw), [200], "{raw}");
}

#[tokio::test]
async fn stats_prometheus_answers_the_format_the_scraper_accepts() {
    let upstream = Upstream::start("backend").await;
    let (proxy, address) = proxy_to(upstream.address).await;
    still_served(address).await;
    let scrape = |accept: Option<&'static str>| async move {
        let mut request = http::Request::get("/stats/prometheus").header("host", "metrics");
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let (status, headers, body) = send(proxy.metrics, request).await.expect("scrape");
        assert_eq!(status, 200);
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (content_type, String::from_utf8_lossy(&body).into_owned())
    };
    // Prometheus with OpenMetrics off, curl, and none at all: the text format, as Envoy.
    for accept in [
        Some("text/plain;version=0.0.4;q=1,*/*;q=0.1"),
        Some("*/*"),
        None,
    ] {
        let (content_type, body) = scrape(accept).await;
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{accept:?}: {content_type}"
        );
        assert!(!body.contains("# EOF"), "{body}");
        assert!(
            body.contains("# TYPE istio_requests_total counter"),
            "{body}"
        );
    }
    // Prometheus preferring OpenMetrics.
    let (content_type, body) = scrape(Some(
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    ))
    .await;
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("# TYPE istio_requests counter"), "{body}");
}

#[tokio::test]
async fn malformed_request_heads_get_400_or_501_and_never_reach_the_upstream() {
    let upstream = Upstream::start("backend").await;
    let (proxy, address) = proxy_to(upstream.address).await;
    let cases: [(&[u8], u16); 7] = [
        (b"GET /echo HTTP/1.1\r\n\r\n", 400),
        (b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /echo HTTP/1.1\r\nHost: a b/c@d\r\n\r\n", 400),
        (b"GET http://user:pw@backend/echo HTTP/1.1\r\nHost: backend\r\n\r\n", 400),
        (b"GET * HTTP/1.1\r\nHost: backend\r\n\r\n", 400),
        (b"GET x:80 HTTP/1.1\r\nHost: backend\r\n\r\n", 400),
        (
            b"POST /echo HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            501,
        ),
    ];
    for (request, expected) in cases {
        let raw = raw_exchange(address, request, QUIET).await;
        assert_eq!(
            statuses(&raw),
            [expected],
            "{}: {raw}",
            String::from_utf8_lossy(request)
        );
    }
    assert!(upstream.seen.lock().expect("seen").is_empty());
    let metrics = proxy.prometheus().await;
    assert_eq!(requests_with(&metrics, 400, "DPE"), Some(6.0), "{metrics}");
    assert_eq!(requests_with(&metrics, 501, "DPE"), Some(1.0), "{metrics}");
}

#[tokio::test]
async fn a_get_with_a_chunked_body_keeps_its_body() {
    let upstream = Upstream::start("backend").await;
    let (_proxy, address) = proxy_to(upstream.address).await;
    let raw = raw_exchange(
        address,
        b"GET /echo HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        QUIET,
    )
    .await;
    assert_eq!(statuses(&raw), [200], "{raw}");
    assert!(raw.contains("\"body_len\":5"), "{raw}");
}

#[tokio::test]
async fn max_headers_applies_to_http2_as_to_http1() {
    let upstream = Upstream::start("backend").await;
    let (_proxy, address) = proxy_to(upstream.address).await;
    let mut h2 = h2_connection(address).await;
    let mut request = http::Request::get("http://backend/echo");
    for index in 0..150 {
        request = request.header(format!("x-h{index}"), "v");
    }
    let request = request
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let response = h2.send_request(request).await.expect("h2 response");
    assert_eq!(response.status(), 431);
    assert!(upstream.seen.lock().expect("seen").is_empty());
}

#[tokio::test]
async fn metric_series_beyond_the_bound_are_dropped_counted_and_still_served() {
    let upstream = Upstream::start("backend").await;
    let ports = Ports::new();
    let listen = free_port();
    let config = simple_config(&ports, listen, &[upstream.address], "", "");
    let proxy = ProxyProcess::start_with_args(
        &config,
        &ports,
        &["--max-metric-series".as_ref(), "3".as_ref()],
    )
    .await;
    let address: std::net::SocketAddr = ([127, 0, 0, 1], listen).into();
    // Each status is a new label set: six series asked for, three kept.
    for code in 200..206u16 {
        let request = format!("GET /status/{code} HTTP/1.1\r\nHost: backend\r\n\r\n");
        let raw = raw_exchange(address, request.as_bytes(), QUIET).await;
        assert_eq!(statuses(&raw), [code], "{raw}");
    }
    let metrics = metrics_where(&proxy, |metrics| {
        requests_with(metrics, 202, "-") == Some(1.0)
    })
    .await;
    assert_eq!(
        metrics.matches("istio_requests_total{").count(),
        3,
        "{metrics}"
    );
    assert_eq!(requests_with(&metrics, 203, "-"), None, "{metrics}");
    let (_, stats) = get(proxy.admin, "/stats").await.expect("stats");
    assert!(
        stats.contains("lateen.metrics_series_dropped: 3\n"),
        "{stats}"
    );
}

/// A trailer line ended by a bare LF (issue #16 item 6). A parser that takes LF as a line end
/// sees the trailers end at the empty line and `GET /next` as a second request; hyper before
/// 1.13 read on to the next CRLF, took `GET /next` and its head into the trailers, and
/// answered 200 while the pipelined request silently vanished. Envoy refuses it: 400 `DPE`,
/// the connection closed, and the pipelined request is never merged into the trailers.
#[tokio::test]
async fn a_bare_lf_trailer_line_is_refused_and_never_swallows_a_pipelined_request() {
    let upstream = Upstream::start("backend").await;
    let (proxy, address) = proxy_to(upstream.address).await;
    let raw = raw_exchange(
        address,
        b"POST /echo HTTP/1.1\r\nHost: backend\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\nX: y\n\nGET /next HTTP/1.1\r\nHost: backend\r\n\r\n",
        QUIET,
    )
    .await;
    let answered = statuses(&raw);
    assert!(
        answered == [400] || answered.is_empty(),
        "refused (400) or closed, not merged into the trailers: {raw}"
    );
    let seen = upstream.seen.lock().expect("seen").clone();
    assert!(
        seen.iter().all(|request| request.path != "/next"),
        "the pipelined request reached the upstream: {raw}"
    );
    if answered == [400] {
        let metrics = proxy.prometheus().await;
        assert_eq!(requests_with(&metrics, 400, "DPE"), Some(1.0), "{metrics}");
    }
    still_served(address).await;
}

/// HTTP/1.1 has no way to cancel a request but closing: a client that half-closes while its
/// request waits for the upstream has cancelled it (Envoy resets the stream, `DC`). The proxy
/// closes the connection at once, not when the upstream would have answered (3 s), and the
/// request is recorded once as `0 DC`, with nothing left active.
#[tokio::test]
async fn an_http1_request_cancelled_by_a_half_close_releases_the_connection_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = Upstream::start("backend").await;
    let (proxy, address) = proxy_to(upstream.address).await;
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /delay/3000 HTTP/1.1\r\nHost: backend\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.shutdown().await.expect("half-close");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(_)) | Ok(Err(_))),
        "still open 1 s after the cancel: {closed:?}"
    );
    assert!(
        rest.is_empty(),
        "answered: {}",
        String::from_utf8_lossy(&rest)
    );
    let metrics = metrics_where(&proxy, |metrics| {
        requests_with(metrics, 0, "DC") == Some(1.0)
    })
    .await;
    let (_, stats) = get(proxy.admin, "/stats").await.expect("stats");
    assert!(
        stats.contains("lateen.downstream_rq_active: 0\n"),
        "{stats}\n{metrics}"
    );
}
