//! HTTP/1.1, h2c, gRPC and WebSocket through the built proxy, with real clients and servers.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use support::upstream::{EchoMessage, Upstream};
use support::*;

async fn echo_proxy(route_extra: &str) -> (ProxyProcess, std::net::SocketAddr, Upstream) {
    let upstream = Upstream::start("backend").await;
    let ports = Ports::new();
    let listen = free_port();
    let config = simple_config(&ports, listen, &[upstream.address], route_extra, "");
    let proxy = ProxyProcess::start(&config, &ports).await;
    (proxy, ([127, 0, 0, 1], listen).into(), upstream)
}

#[tokio::test]
async fn http1_request_reaches_upstream_with_forwarding_headers() {
    let (_proxy, address, _upstream) = echo_proxy("").await;
    let request = http::Request::post("/echo?x=1")
        .header("host", "backend.default")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .header("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7")
        .body(Full::new(Bytes::from_static(b"hello")))
        .expect("request");
    let (status, _, body) = send(address, request).await.expect("proxied request");
    assert_eq!(status, 200);
    let echo: serde_json::Value = serde_json::from_slice(&body).expect("echo json");
    let headers = &echo["headers"];
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["uri"], "/echo?x=1");
    assert_eq!(echo["body_len"], 5);
    assert_eq!(headers["host"], "backend.default");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-request-id"].as_str().map(str::len), Some(36));
    assert_eq!(
        headers["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert_eq!(headers["x-b3-traceid"], "80f198ee56343ba864fe8b2a57d3eff7");
    assert!(
        headers.get("x-hop").is_none(),
        "header named by Connection must be dropped: {headers}"
    );
    assert!(headers.get("connection").is_none() || headers["connection"] == "keep-alive");
}

#[tokio::test]
async fn http1_keep_alive_reuses_connections_both_sides() {
    let (proxy, address, upstream) = echo_proxy("").await;
    let mut client = h1_connection(address).await;
    for index in 0..20 {
        let request = http::Request::get(format!("/echo/{index}"))
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = client
            .send_request(request)
            .await
            .expect("response on kept-alive connection");
        assert_eq!(response.status(), 200);
        let _ = response.into_body().collect().await;
    }
    assert_eq!(upstream.hits.load(std::sync::atomic::Ordering::SeqCst), 20);
    let (_, stats) = get(proxy.admin, "/stats").await.expect("stats");
    assert!(stats.contains("lateen.downstream_cx_total: 1\n"), "{stats}");
    assert!(
        stats.contains("lateen.upstream_cx_total: 1\n"),
        "upstream connection reused: {stats}"
    );
}

#[tokio::test]
async fn h2c_multiplexes_concurrent_streams() {
    let (_proxy, address, upstream) = echo_proxy("").await;
    let client = h2_connection(address).await;
    let mut requests = Vec::new();
    for index in 0..50 {
        let mut client = client.clone();
        requests.push(tokio::spawn(async move {
            let request = http::Request::get(format!("http://backend.default/echo/{index}"))
                .body(Full::new(Bytes::new()))
                .expect("request");
            let response = client.send_request(request).await.expect("h2 response");
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (status, body)
        }));
    }
    for request in requests {
        let (status, body) = request.await.expect("task");
        assert_eq!(status, 200);
        let echo: serde_json::Value = serde_json::from_slice(&body).expect("json");
        // The upstream speaks the client's protocol, and sees the original authority.
        assert_eq!(echo["version"], "HTTP/2.0");
        assert!(
            echo["uri"]
                .as_str()
                .unwrap_or_default()
                .starts_with("http://backend.default/echo/"),
            "{echo}"
        );
    }
    assert_eq!(upstream.hits.load(std::sync::atomic::Ordering::SeqCst), 50);
}

#[tokio::test]
async fn grpc_unary_and_bidirectional_stream() {
    let (proxy, address, _upstream) = echo_proxy("").await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("grpc connect");
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.expect("ready");
    let codec = tonic_prost::ProstCodec::<EchoMessage, EchoMessage>::default();
    let reply = client
        .unary(
            tonic::Request::new(EchoMessage { text: "hi".into() }),
            http::uri::PathAndQuery::from_static("/test.Echo/Unary"),
            codec,
        )
        .await
        .expect("unary call");
    assert_eq!(reply.into_inner().text, "echo: hi");

    client.ready().await.expect("ready");
    let codec = tonic_prost::ProstCodec::<EchoMessage, EchoMessage>::default();
    let failed = client
        .unary(
            tonic::Request::new(EchoMessage {
                text: "fail".into(),
            }),
            http::uri::PathAndQuery::from_static("/test.Echo/Unary"),
            codec,
        )
        .await
        .expect_err("status from upstream");
    assert_eq!(failed.code(), tonic::Code::PermissionDenied);

    let (sender, receiver) = tokio::sync::mpsc::channel::<EchoMessage>(4);
    client.ready().await.expect("ready");
    let codec = tonic_prost::ProstCodec::<EchoMessage, EchoMessage>::default();
    let outbound = tokio_stream::wrappers::ReceiverStream::new(receiver);
    let mut inbound = client
        .streaming(
            tonic::Request::new(outbound),
            http::uri::PathAndQuery::from_static("/test.Echo/Bidi"),
            codec,
        )
        .await
        .expect("bidi call")
        .into_inner();
    // Each message is answered before the next is sent: streaming both ways, interleaved.
    for index in 0..5 {
        sender
            .send(EchoMessage {
                text: format!("m{index}"),
            })
            .await
            .expect("send");
        let message = inbound
            .message()
            .await
            .expect("stream message")
            .expect("not ended");
        assert_eq!(message.text, format!("echo: m{index}"));
    }
    drop(sender);
    assert!(inbound.message().await.expect("clean end").is_none());

    let metrics = proxy.prometheus().await;
    assert_eq!(
        sample(
            &metrics,
            "istio_requests_total",
            &["request_protocol=\"grpc\"", "grpc_response_status=\"0\""]
        ),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "istio_requests_total",
            &["request_protocol=\"grpc\"", "grpc_response_status=\"7\""]
        ),
        Some(1.0),
        "{metrics}"
    );
    // Istio's gRPC message counts: the unary call and the five-message stream each way; the
    // refused call sent one message and got none.
    for (name, ok, refused) in [
        ("istio_request_messages_total", 6.0, 1.0),
        ("istio_response_messages_total", 6.0, 0.0),
    ] {
        assert_eq!(
            sample(&metrics, name, &["grpc_response_status=\"0\""]),
            Some(ok),
            "{name}: {metrics}"
        );
        assert_eq!(
            sample(&metrics, name, &["grpc_response_status=\"7\""]),
            Some(refused),
            "{name}: {metrics}"
        );
    }
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    let (_proxy, address, _upstream) = echo_proxy("").await;
    let (mut socket, response) = tokio_tungstenite::connect_async(format!("ws://{address}/ws"))
        .await
        .expect("websocket handshake through proxy");
    assert_eq!(response.status(), 101);
    for text in ["one", "two", "three"] {
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .expect("send");
        let echoed = socket.next().await.expect("message").expect("ok");
        assert_eq!(echoed.into_text().expect("text").as_str(), text);
    }
    socket.close(None).await.expect("close");
}

#[tokio::test]
async fn retries_turn_a_503_into_200_and_timeouts_give_504() {
    let extra =
        "              timeout: 500ms\n              retry: { num_retries: 2, retry_on: [5xx] }";
    let (proxy, address, upstream) = echo_proxy(extra).await;
    let (status, body) = get(address, "/flaky").await.expect("flaky");
    assert_eq!((status, body.as_str()), (200, "backend recovered"));
    assert_eq!(upstream.hits.load(std::sync::atomic::Ordering::SeqCst), 2);

    let (status, body) = get(address, "/delay/2000").await.expect("slow");
    assert_eq!(status, 504, "{body}");
    let metrics = proxy.prometheus().await;
    assert_eq!(
        sample(
            &metrics,
            "istio_requests_total",
            &["response_code=\"504\"", "response_flags=\"UT\""]
        ),
        Some(1.0),
        "{metrics}"
    );
    let (_, stats) = get(proxy.admin, "/stats").await.expect("stats");
    assert!(stats.contains("lateen.upstream_rq_retry: 1\n"), "{stats}");
}

#[tokio::test]
async fn upstream_down_gives_503_with_envoy_flags() {
    let dead: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let ports = Ports::new();
    let listen = free_port();
    let retry = "              retry: { num_retries: 2, retry_on: [connect-failure] }";
    let config = simple_config(&ports, listen, &[dead], retry, "");
    let proxy = ProxyProcess::start(&config, &ports).await;
    let address: std::net::SocketAddr = ([127, 0, 0, 1], listen).into();
    let (status, body) = get(address, "/").await.expect("response");
    assert_eq!(status, 503);
    assert!(body.contains("connection failure"), "{body}");
    let metrics = proxy.prometheus().await;
    assert_eq!(
        sample(
            &metrics,
            "istio_requests_total",
            &["response_code=\"503\"", "response_flags=\"UF,URX\""]
        ),
        Some(1.0),
        "{metrics}"
    );

    // Without retries the flag is UF alone.
    let ports = Ports::new();
    let listen = free_port();
    let proxy = ProxyProcess::start(&simple_config(&ports, listen, &[dead], "", ""), &ports).await;
    let (status, _) = get(([127, 0, 0, 1], listen).into(), "/")
        .await
        .expect("response");
    assert_eq!(status, 503);
    let metrics = proxy.prometheus().await;
    assert_eq!(
        sample(
            &metrics,
            "istio_requests_total",
            &["response_code=\"503\"", "response_flags=\"UF\""]
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn routing_by_header_path_and_weight() {
    let v1 = Upstream::start("v1").await;
    let v2 = Upstream::start("v2").await;
    let ports = Ports::new();
    let listen = free_port();
    let config = format!(
        r#"{admin}listeners:
  - name: http
    address: 127.0.0.1:{listen}
    route_config: main
route_configs:
  - name: main
    virtual_hosts:
      - name: reviews
        domains: ["reviews", "reviews:9080"]
        routes:
          - match: {{ path: {{ prefix: / }}, headers: [{{ name: end-user, exact: jason }}] }}
            route: {{ cluster: v2 }}
          - match: {{ path: {{ exact: /split }} }}
            route:
              weighted_clusters: [{{ name: v1, weight: 80 }}, {{ name: v2, weight: 20 }}]
          - match: {{ path: {{ regex: "/api/v[0-9]+/.*" }} }}
            route: {{ cluster: v2, prefix_rewrite: "/" }}
            response_headers: {{ set: {{ x-route: api }} }}
          - match: {{ path: {{ prefix: /old }} }}
            redirect: {{ path: /new, response_code: 302 }}
          - match: {{ path: {{ prefix: /teapot }} }}
            direct_response: {{ status: 418, body: "short and stout" }}
          - match: {{ path: {{ prefix: / }} }}
            route: {{ cluster: v1 }}
clusters:
  - name: v1
    endpoints: [{{ address: {v1} }}]
  - name: v2
    endpoints: [{{ address: {v2} }}]
"#,
        admin = ports.admin_yaml(),
        v1 = v1.address,
        v2 = v2.address,
    );
    let proxy = ProxyProcess::start(&config, &ports).await;
    let address: std::net::SocketAddr = ([127, 0, 0, 1], listen).into();
    let request = |path: &str, user: Option<&str>, host: &str| {
        let mut builder = http::Request::get(path).header("host", host);
        if let Some(user) = user {
            builder = builder.header("end-user", user);
        }
        builder.body(Full::new(Bytes::new())).expect("request")
    };
    let upstream_of = |body: &Bytes| {
        serde_json::from_slice::<serde_json::Value>(body)
            .map(|echo| echo["upstream"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };

    for _ in 0..10 {
        let (_, _, body) = send(address, request("/", Some("jason"), "reviews:9080"))
            .await
            .expect("jason");
        assert_eq!(upstream_of(&body), "v2");
    }
    let (_, _, body) = send(address, request("/", None, "reviews"))
        .await
        .expect("plain");
    assert_eq!(upstream_of(&body), "v1");
    let (_, headers, body) = send(address, request("/api/v1/items", None, "reviews"))
        .await
        .expect("api");
    assert_eq!(upstream_of(&body), "v2");
    assert_eq!(headers["x-route"], "api");
    let echo: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        echo["uri"], "/api/v1/items",
        "regex routes do not rewrite prefixes"
    );
    let (status, headers, _) = send(address, request("/old/page", None, "reviews"))
        .await
        .expect("redirect");
    assert_eq!(status, 302);
    assert_eq!(headers["location"], "http://reviews/new");
    let (status, _, body) = send(address, request("/teapot", None, "reviews"))
        .await
        .expect("direct");
    assert_eq!((status.as_u16(), &body[..]), (418, &b"short and stout"[..]));
    let (status, _, _) = send(address, request("/", None, "ratings"))
        .await
        .expect("no vhost");
    assert_eq!(status, 404);

    let mut client = h1_connection(address).await;
    let mut to_v1 = 0;
    let total = 1000;
    for _ in 0..total {
        let response = client
            .send_request(request("/split", None, "reviews"))
            .await
            .expect("split");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        if upstream_of(&body) == "v1" {
            to_v1 += 1;
        }
    }
    let share = to_v1 as f64 / total as f64;
    assert!((0.75..=0.85).contains(&share), "80/20 split gave {share}");
    let metrics = proxy.prometheus().await;
    assert_eq!(
        sample(
            &metrics,
            "istio_requests_total",
            &["response_code=\"404\"", "response_flags=\"NR\""]
        ),
        Some(1.0),
        "{metrics}"
    );
}
