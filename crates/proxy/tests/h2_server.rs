//! The downstream HTTP/2 server (issue #16 item 9): `Expect: 100-continue` answered with a 100
//! by the proxy itself, as Envoy does, with the `expect` header not forwarded; and the h2
//! properties the server must keep from hyper's: a DATA length that disagrees with
//! `content-length` is a PROTOCOL_ERROR reset, and bodies larger than the flow-control
//! windows pass through.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use bytes::Bytes;
use std::time::{Duration, Instant};

use support::upstream::Upstream;
use support::*;

/// An echo upstream behind a proxy, and a raw h2 (prior knowledge) client connection to the
/// proxy, for what hyper's client hides: interim responses, resets and flow control.
struct Through {
    _upstream: Upstream,
    _proxy: ProxyProcess,
    client: h2::client::SendRequest<Bytes>,
}

impl Through {
    async fn start() -> Through {
        let upstream = Upstream::start("backend").await;
        let (proxy, address) = proxy_to(upstream.address).await;
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let (client, connection) = h2::client::handshake(stream).await.expect("h2 handshake");
        tokio::spawn(connection);
        Through {
            _upstream: upstream,
            _proxy: proxy,
            client,
        }
    }

    /// Sends the head of a POST to `path` with `headers`; the body is the caller's to send.
    fn post(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (h2::client::ResponseFuture, h2::SendStream<Bytes>) {
        let mut request = http::Request::post(format!("http://backend{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(()).expect("request");
        self.client
            .send_request(request, false)
            .expect("send request head")
    }
}

/// Reads a whole h2 response body, releasing flow-control capacity as it goes.
async fn read_body(mut body: h2::RecvStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("response body");
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

/// curl waits up to `--expect100-timeout` for the 100 before it sends the body: the proxy
/// must answer well before that (before the fix curl waited the full 30 s).
#[tokio::test]
async fn curl_h2c_with_expect_100_continue_is_answered_at_once() {
    let Some(curl) =
        lateen_test_support::tools::tool_or_skip("curl", "curl_h2c_with_expect_100_continue")
    else {
        return;
    };
    let upstream = Upstream::start("backend").await;
    let (_proxy, address) = proxy_to(upstream.address).await;
    let body = "x".repeat(5000);
    let started = Instant::now();
    let output = tokio::process::Command::new(curl)
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "--expect100-timeout",
            "30",
            "--max-time",
            "60",
            "-H",
            "Expect: 100-continue",
            "-H",
            "Host: backend",
            "--data-binary",
            &body,
            &format!("http://{address}/sink"),
        ])
        .output()
        .await
        .expect("run curl");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout, "backend got 5000");
    assert!(
        took < Duration::from_secs(10),
        "curl waited {took:?} for a 100 Continue"
    );
}

/// A strict client sends nothing of the body until it has the 100; the upstream then gets the
/// whole body and no `expect` header (the proxy answered it, as Envoy does).
#[tokio::test]
async fn an_h2_client_that_waits_for_100_gets_it_and_the_expect_header_is_not_forwarded() {
    let mut through = Through::start().await;
    let (mut response, mut send) = through.post(
        "/echo",
        &[("expect", "100-continue"), ("content-length", "3000")],
    );
    let interim = tokio::time::timeout(
        Duration::from_secs(10),
        std::future::poll_fn(|cx| response.poll_informational(cx)),
    )
    .await
    .expect("no 100 Continue within 10 s")
    .expect("an interim response")
    .expect("interim response");
    assert_eq!(interim.status(), 100);
    send.send_data(Bytes::from(vec![b'y'; 3000]), true)
        .expect("send body");
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("response within 10 s")
        .expect("response");
    assert_eq!(response.status(), 200);
    let echo: serde_json::Value =
        serde_json::from_slice(&read_body(response.into_body()).await).expect("echo JSON");
    assert_eq!(echo["body_len"], 3000, "{echo}");
    assert!(echo["headers"].get("expect").is_none(), "{echo}");
}

/// A request without `expect` gets no interim response, only its answer.
#[tokio::test]
async fn a_request_without_expect_gets_no_100() {
    let mut through = Through::start().await;
    let (mut response, mut send) = through.post("/sink", &[]);
    send.send_data(Bytes::from_static(b"abc"), true)
        .expect("send body");
    let final_response = tokio::time::timeout(Duration::from_secs(10), &mut response)
        .await
        .expect("response within 10 s")
        .expect("response");
    assert_eq!(final_response.status(), 200);
    let interim = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match response.poll_informational(cx) {
            std::task::Poll::Ready(Some(Ok(interim))) => Some(interim.status()),
            _ => None,
        })
    })
    .await;
    assert_eq!(interim, None);
    assert_eq!(
        read_body(final_response.into_body()).await,
        b"backend got 3"
    );
}

/// DATA longer than the request's `content-length` is malformed (RFC 9113 §8.1.1): the stream
/// is reset with PROTOCOL_ERROR and the connection goes on serving.
#[tokio::test]
async fn data_that_disagrees_with_content_length_is_a_protocol_error_reset() {
    let mut through = Through::start().await;
    let (response, mut send) = through.post("/sink", &[("content-length", "4")]);
    send.send_data(Bytes::from_static(b"too long"), true)
        .expect("send body");
    let err = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("an answer within 10 s")
        .expect_err("a reset, not a response");
    assert_eq!(err.reason(), Some(h2::Reason::PROTOCOL_ERROR), "{err}");
    // The connection is still good.
    let mut client = through
        .client
        .clone()
        .ready()
        .await
        .expect("connection still open");
    let request = http::Request::get("http://backend/echo")
        .body(())
        .expect("request");
    let (response, _) = client.send_request(request, true).expect("send");
    let response = response.await.expect("response");
    assert_eq!(response.status(), 200);
}

/// A request body several times the stream and connection windows (1 MiB and 4 MiB) reaches
/// the upstream whole: the server gives capacity back as the body is forwarded.
#[tokio::test]
async fn a_request_body_larger_than_the_windows_is_forwarded_whole() {
    let mut through = Through::start().await;
    let (response, mut send) = through.post("/sink", &[]);
    let total = 10 << 20;
    let chunk = Bytes::from(vec![b'z'; 64 << 10]);
    let sender = tokio::spawn(async move {
        let mut sent = 0;
        while sent < total {
            send.reserve_capacity(chunk.len());
            let granted = std::future::poll_fn(|cx| send.poll_capacity(cx))
                .await
                .expect("capacity")
                .expect("capacity");
            let piece = chunk.slice(..granted.min(total - sent));
            sent += piece.len();
            send.send_data(piece, sent == total).expect("send data");
        }
    });
    let response = tokio::time::timeout(Duration::from_secs(30), response)
        .await
        .expect("response within 30 s")
        .expect("response");
    sender.await.expect("sender");
    assert_eq!(response.status(), 200);
    assert_eq!(
        read_body(response.into_body()).await,
        format!("backend got {total}").as_bytes()
    );
}
