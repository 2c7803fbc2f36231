//! Opaque TCP, protocol detection, malformed and oversized requests, config errors, drain,
//! and the exact Istio metrics after a known mix of requests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::time::Duration;
use support::upstream::Upstream;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP server that, per connection, reads until EOF, then writes back what it read in
/// upper case and closes: it can only answer if the proxy passes the client's half-close on.
async fn half_close_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut received = Vec::new();
                if stream.read_to_end(&mut received).await.is_ok() {
                    let _ = stream.write_all(&received.to_ascii_uppercase()).await;
                    let _ = stream.shutdown().await;
                }
            });
        }
    });
    address
}

/// A server-speaks-first TCP server (like SMTP or MySQL): greets, then echoes one line.
async fn greeting_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.write_all(b"220 hello\r\n").await;
                let mut buffer = [0u8; 64];
                if let Ok(read) = stream.read(&mut buffer).await {
                    let _ = stream.write_all(&buffer[..read]).await;
                }
            });
        }
    });
    address
}

fn tcp_config(ports: &Ports, listeners: &[(u16, &str, &str)], upstream: SocketAddr) -> String {
    let listeners: String = listeners
        .iter()
        .map(|(port, name, protocol)| format!("  - name: {name}\n    address: 127.0.0.1:{port}\n    protocol: {protocol}\n    detect_timeout: 200ms\n    tcp_cluster: tcp-backend\n"))
        .collect();
    format!(
        "node: {{ workload: client-v1, namespace: default }}\n{admin}listeners:\n{listeners}clusters:\n  - name: tcp-backend\n    endpoints: [{{ address: {upstream} }}]\n    destination: {{ service: db.default.svc.cluster.local, workload: db-v1, namespace: default, version: v1 }}\n",
        admin = ports.admin_yaml()
    )
}

#[tokio::test]
async fn tcp_passes_half_close_and_counts_bytes() {
    let upstream = half_close_server().await;
    let ports = Ports::new();
    let listen = free_port();
    let proxy = ProxyProcess::start(
        &tcp_config(&ports, &[(listen, "tcp", "tcp")], upstream),
        &ports,
    )
    .await;
    let mut stream = TcpStream::connect(("127.0.0.1", listen))
        .await
        .expect("connect");
    stream.write_all(b"half closed").await.expect("write");
    stream.shutdown().await.expect("half-close");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("answer in time")
        .expect("read");
    assert_eq!(answer, b"HALF CLOSED");
    drop(stream);
    let ok = eventually(Duration::from_secs(3), || async {
        let metrics = proxy.prometheus().await;
        sample(
            &metrics,
            "istio_tcp_connections_closed_total",
            &["destination_workload=\"db-v1\""],
        ) == Some(1.0)
    })
    .await;
    let metrics = proxy.prometheus().await;
    assert!(ok, "{metrics}");
    let labels = [
        "reporter=\"source\"",
        "source_workload=\"client-v1\"",
        "destination_service=\"db.default.svc.cluster.local\"",
        "request_protocol=\"tcp\"",
    ];
    assert_eq!(
        sample(&metrics, "istio_tcp_connections_opened_total", &labels),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "istio_tcp_received_bytes_total", &labels),
        Some(11.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "istio_tcp_sent_bytes_total", &labels),
        Some(11.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn detection_falls_back_to_tcp_for_server_first_protocols() {
    let upstream = greeting_server().await;
    let ports = Ports::new();
    let listen = free_port();
    let proxy = ProxyProcess::start(
        &tcp_config(&ports, &[(listen, "auto", "auto")], upstream),
        &ports,
    )
    .await;
    let mut stream = TcpStream::connect(("127.0.0.1", listen))
        .await
        .expect("connect");
    let mut greeting = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(3), stream.read_exact(&mut greeting))
        .await
        .expect("greeting after detect timeout")
        .expect("read");
    assert_eq!(&greeting, b"220 hello\r\n");
    stream.write_all(b"QUIT\r\n").await.expect("write");
    let mut echoed = [0u8; 6];
    stream.read_exact(&mut echoed).await.expect("echo");
    assert_eq!(&echoed, b"QUIT\r\n");
    let (_, stats) = get(proxy.admin, "/stats").await.expect("stats");
    assert!(
        stats.contains("lateen.protocol_detect_timeout: 1\n"),
        "{stats}"
    );
}

async fn raw_exchange(address: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .expect("connection closed in time");
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn malformed_and_oversized_requests_are_refused_alone() {
    let upstream = Upstream::start("backend").await;
    let ports = Ports::new();
    let listen = free_port();
    let limits = "    protocol: http1\n    limits: { max_header_bytes: 8192, max_headers: 20 }";
    let proxy = ProxyProcess::start(
        &simple_config(&ports, listen, &[upstream.address], "", limits),
        &ports,
    )
    .await;
    let address: SocketAddr = ([127, 0, 0, 1], listen).into();

    // A healthy keep-alive connection opened before the bad ones must be unaffected.
    let mut healthy = h1_connection(address).await;

    let response = raw_exchange(address, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    let response = raw_exchange(address, b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");

    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    let response = raw_exchange(address, big.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    let many: String = (0..30).map(|index| format!("X-H{index}: v\r\n")).collect();
    let response = raw_exchange(
        address,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");

    let request = http::Request::get("/still-fine")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = healthy
        .send_request(request)
        .await
        .expect("healthy connection still works");
    assert_eq!(response.status(), 200);
    let mut proxy = proxy;
    assert!(proxy.try_wait_alive(), "proxy must survive bad requests");
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let upstream = Upstream::start("backend").await;
    let ports = Ports::new();
    let listen = free_port();
    let _proxy = ProxyProcess::start(
        &simple_config(&ports, listen, &[upstream.address], "", ""),
        &ports,
    )
    .await;
    // Three requests in one write; the slow first one must still be answered first.
    let pipelined = b"GET /delay/200 HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/3 HTTP/1.1\r\nHost: x\r\n\r\nGET /status/202 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let response = raw_exchange(([127, 0, 0, 1], listen).into(), pipelined).await;
    let statuses: Vec<&str> = response
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| &response[at + 9..at + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "202"], "{response}");
    let slept = response.find("backend slept 200ms").expect("first answer");
    let bytes = response.find("\r\n\r\nxxx").expect("second answer");
    assert!(slept < bytes, "answers in request order: {response}");
}

#[tokio::test]
async fn invalid_config_names_file_line_and_field() {
    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        (
            "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    protocl: tcp\n",
            vec!["protocl", "line 4"],
        ),
        (
            "listeners:\n  - name: a\n    address: not-an-address\n",
            vec!["address", "line 3"],
        ),
        (
            "clusters:\n  - name: c\n    connect_timeout: 10\n",
            vec!["connect_timeout", "unit"],
        ),
        (
            "listeners:\n  - name: a\n    address: 127.0.0.1:1\n    route_config: missing\n",
            vec!["listeners[0].route_config", "\"missing\" is not defined"],
        ),
        (
            "route_configs:\n  - name: r\n    virtual_hosts:\n      - name: v\n        domains: ['*']\n        routes:\n          - match: { path: { regex: '(' } }\n            route: { cluster: nope }\n",
            vec![
                "route_configs[0].virtual_hosts[0].routes[0].match.path.regex",
                "routes[0].route.cluster",
            ],
        ),
    ];
    for (index, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad-{index}.yaml"));
        std::fs::write(&path, text).expect("write");
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_lateen-proxy"))
            .arg("--config")
            .arg(&path)
            .output()
            .expect("run proxy");
        assert!(!output.status.success(), "case {index} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&path.display().to_string()),
            "case {index} names the file: {stderr}"
        );
        for needle in expected {
            assert!(
                stderr.contains(needle),
                "case {index} should mention {needle:?}: {stderr}"
            );
        }
    }
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    let upstream = Upstream::start("backend").await;
    let ports = Ports::new();
    let listen = free_port();
    let mut proxy = ProxyProcess::start(
        &simple_config(&ports, listen, &[upstream.address], "", ""),
        &ports,
    )
    .await;
    let address: SocketAddr = ([127, 0, 0, 1], listen).into();

    let mut idle = h1_connection(address).await;
    let warmup = http::Request::get("/")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let _ = idle
        .send_request(warmup)
        .await
        .expect("warm-up")
        .into_body()
        .collect()
        .await;

    let slow = tokio::spawn(async move { get(address, "/delay/800").await });
    let h2 = h2_connection(address).await;
    let h2_slow = tokio::spawn(async move {
        let mut h2 = h2;
        let request = http::Request::get("http://x/delay/800")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = h2.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, body))
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let pid = proxy.pid();
    let terminate = std::thread::spawn(move || {
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
    });
    let _ = terminate.join();

    let (status, body) = slow
        .await
        .expect("task")
        .expect("in-flight HTTP/1.1 request finishes");
    assert_eq!((status, body.as_str()), (200, "backend slept 800ms"));
    let (status, body) = h2_slow
        .await
        .expect("task")
        .expect("in-flight HTTP/2 request finishes");
    assert_eq!(
        (status.as_u16(), &body[..]),
        (200, &b"backend slept 800ms"[..])
    );
    // The idle keep-alive connection was closed by the proxy.
    let ready = tokio::time::timeout(Duration::from_secs(3), idle.ready()).await;
    assert!(
        matches!(ready, Ok(Err(_))) || idle.is_closed(),
        "idle connection should be closed on drain"
    );
    let status = proxy.terminate();
    assert!(status.success(), "clean exit after drain: {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "exits once drained, before the 3s deadline"
    );
    assert!(
        TcpStream::connect(address).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn metrics_count_a_known_mix_of_requests() {
    let upstream = Upstream::start("backend").await;
    let ports = Ports::new();
    let listen = free_port();
    let proxy = ProxyProcess::start(
        &simple_config(&ports, listen, &[upstream.address], "", ""),
        &ports,
    )
    .await;
    let address: SocketAddr = ([127, 0, 0, 1], listen).into();
    let mut client = h1_connection(address).await;
    let send = |path: &str, body: &'static [u8]| {
        http::Request::post(path)
            .header("host", "backend")
            .body(Full::new(Bytes::from_static(body)))
            .expect("request")
    };
    for _ in 0..7 {
        let response = client
            .send_request(send("/bytes/100", b"0123456789"))
            .await
            .expect("ok");
        let _ = response.into_body().collect().await;
    }
    for _ in 0..3 {
        let response = client
            .send_request(send("/status/500", b""))
            .await
            .expect("500");
        let _ = response.into_body().collect().await;
    }
    let metrics = proxy.prometheus().await;
    let common = [
        "reporter=\"source\"",
        "source_workload=\"client-v1\"",
        "source_workload_namespace=\"default\"",
        "source_principal=\"unknown\"",
        "source_app=\"client\"",
        "source_version=\"v1\"",
        "destination_workload=\"backend-v1\"",
        "destination_workload_namespace=\"default\"",
        "destination_service=\"backend.default.svc.cluster.local\"",
        "destination_service_name=\"backend\"",
        "destination_version=\"v1\"",
        "request_protocol=\"http\"",
        "grpc_response_status=\"\"",
        "response_flags=\"-\"",
        "connection_security_policy=\"unknown\"",
    ];
    let with = |extra: &'static str| -> Vec<&'static str> {
        common.iter().copied().chain([extra]).collect()
    };
    assert_eq!(
        sample(
            &metrics,
            "istio_requests_total",
            &with("response_code=\"200\"")
        ),
        Some(7.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "istio_requests_total",
            &with("response_code=\"500\"")
        ),
        Some(3.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "istio_request_duration_milliseconds_count",
            &with("response_code=\"200\"")
        ),
        Some(7.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "istio_request_bytes_sum",
            &with("response_code=\"200\"")
        ),
        Some(70.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "istio_response_bytes_sum",
            &with("response_code=\"200\"")
        ),
        Some(700.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "istio_request_bytes_count",
            &with("response_code=\"500\"")
        ),
        Some(3.0),
        "{metrics}"
    );
    // Istio's duration buckets.
    for bucket in [
        "le=\"0.5\"",
        "le=\"25.0\"",
        "le=\"3600000.0\"",
        "le=\"+Inf\"",
    ] {
        assert!(
            metrics.lines().any(|line| line
                .starts_with("istio_request_duration_milliseconds_bucket")
                && line.contains(bucket)),
            "bucket {bucket}: {metrics}"
        );
    }
}
