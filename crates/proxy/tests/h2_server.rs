//! The downstream HTTP/2 server (issue #16 item 9): `Expect: 100-continue` answered with a 100
//! by the proxy itself, as Envoy does, with the `expect` header not forwarded; and the h2
//! properties the server must keep from hyper's: a DATA length that disagrees with
//! `content-length` is a PROTOCOL_ERROR reset, request trailers and bodies larger than the
//! flow-control windows pass through, a body the proxy will not read is stopped with
//! RST_STREAM(NO_ERROR) after the answer, a response the client does not read is held back (not
//! buffered), a rapid-reset flood ends the connection with GOAWAY, and the idle timeout closes
//! a connection only when no stream is in flight, and reaches it once the streams in flight
//! were all cancelled (issue #16 item 8).
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
    proxy: ProxyProcess,
    address: std::net::SocketAddr,
    client: h2::client::SendRequest<Bytes>,
}

impl Through {
    async fn start() -> Through {
        Through::start_with_listener("").await
    }

    /// With `listener_extra` in the proxy listener's YAML.
    async fn start_with_listener(listener_extra: &str) -> Through {
        let upstream = Upstream::start("backend").await;
        let (proxy, address) = proxy_with_listener(upstream.address, listener_extra).await;
        Through {
            _upstream: upstream,
            proxy,
            address,
            client: Through::connect(address).await,
        }
    }

    async fn connect(address: std::net::SocketAddr) -> h2::client::SendRequest<Bytes> {
        Through::connect_watched(address).await.0
    }

    /// A client connection and the task driving it, which ends when the connection closes.
    async fn connect_watched(
        address: std::net::SocketAddr,
    ) -> (
        h2::client::SendRequest<Bytes>,
        tokio::task::JoinHandle<Result<(), h2::Error>>,
    ) {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let (client, connection) = h2::client::handshake(stream).await.expect("h2 handshake");
        (client, tokio::spawn(connection))
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

/// The final response to a request, within 10 s.
async fn answer(
    response: impl std::future::Future<Output = Result<http::Response<h2::RecvStream>, h2::Error>>,
) -> http::Response<h2::RecvStream> {
    tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("response within 10 s")
        .expect("response")
}

/// The echo upstream's JSON account of a request, from its 200 response.
async fn echo_of(response: h2::client::ResponseFuture) -> serde_json::Value {
    let response = answer(response).await;
    assert_eq!(response.status(), 200);
    serde_json::from_slice(&read_body(response.into_body()).await).expect("echo JSON")
}

/// The status of a GET of `/echo` on `client`'s connection.
async fn get_echo(client: h2::client::SendRequest<Bytes>) -> u16 {
    let mut client = client.ready().await.expect("connection open");
    let request = http::Request::get("http://backend/echo")
        .body(())
        .expect("request");
    let (response, _) = client.send_request(request, true).expect("send");
    answer(response).await.status().as_u16()
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
    let echo = echo_of(response).await;
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
    let final_response = answer(&mut response).await;
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

/// Request trailers reach the upstream after the body (gRPC's response trailers are covered
/// by the gRPC tests of `http_proxy.rs`).
#[tokio::test]
async fn request_trailers_reach_the_upstream() {
    let mut through = Through::start().await;
    let (response, mut send) = through.post("/echo", &[("te", "trailers")]);
    send.send_data(Bytes::from_static(b"payload"), false)
        .expect("send body");
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-checksum", http::HeaderValue::from_static("abc123"));
    send.send_trailers(trailers).expect("send trailers");
    let echo = echo_of(response).await;
    assert_eq!(echo["body_len"], 7, "{echo}");
    assert_eq!(echo["trailers"]["x-checksum"], "abc123", "{echo}");
}

/// A request the proxy answers without reading its body (here 431, too many headers) gets its
/// answer, then RST_STREAM(NO_ERROR) telling the client to stop sending (RFC 9113 §8.1); the
/// connection goes on serving.
#[tokio::test]
async fn a_body_the_proxy_will_not_read_is_stopped_after_the_answer() {
    let mut through = Through::start().await;
    let names: Vec<String> = (0..150).map(|index| format!("x-h{index}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|name| (name.as_str(), "v")).collect();
    let (response, mut send) = through.post("/sink", &headers);
    send.send_data(Bytes::from_static(b"the first part"), false)
        .expect("send body");
    let response = answer(response).await;
    assert_eq!(response.status(), 431);
    read_body(response.into_body()).await;
    let reset = tokio::time::timeout(
        Duration::from_secs(10),
        std::future::poll_fn(|cx| send.poll_reset(cx)),
    )
    .await
    .expect("a reset within 10 s")
    .expect("reset reason");
    assert_eq!(reset, h2::Reason::NO_ERROR);
    assert_eq!(get_echo(through.client.clone()).await, 200);
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
    assert_eq!(get_echo(through.client.clone()).await, 200);
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

/// A client that grants no flow-control capacity holds a large response back: the proxy sends
/// what the window allows and takes no more from the upstream, so its memory does not grow by
/// the body; once the client reads, the whole body arrives.
#[tokio::test]
async fn a_response_the_client_does_not_read_is_held_back_not_buffered() {
    let mut through = Through::start().await;
    let pid = through.proxy.pid() as u32;
    let before = lateen_test_support::proc_stats::usage(pid)
        .expect("proxy /proc entry")
        .rss;
    let total: usize = 32 << 20;
    let request = http::Request::get(format!("http://backend/bytes/{total}"))
        .body(())
        .expect("request");
    let (response, _) = through.client.send_request(request, true).expect("send");
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("response head within 10 s")
        .expect("response");
    assert_eq!(response.status(), 200);
    // The client's windows are h2's default 64 KiB and it releases nothing yet.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = lateen_test_support::proc_stats::usage(pid)
        .expect("proxy /proc entry")
        .rss;
    assert!(
        held.saturating_sub(before) < 16 << 20,
        "the proxy grew by {} MiB while the client read nothing",
        held.saturating_sub(before) >> 20
    );
    let body = tokio::time::timeout(Duration::from_secs(60), read_body(response.into_body()))
        .await
        .expect("body within 60 s");
    assert_eq!(body.len(), total);
}

/// HTTP/2 rapid reset (CVE-2023-44487): streams opened and cancelled at once, in bulk. `h2`'s
/// bound on streams reset before they are accepted (20) ends the connection with GOAWAY
/// ENHANCE_YOUR_CALM, as under hyper; the proxy keeps serving others.
#[tokio::test]
async fn a_rapid_reset_flood_ends_the_connection_and_the_proxy_keeps_serving() {
    let mut through = Through::start().await;
    let mut refused = None;
    for sent in 1..=2000 {
        let request = http::Request::get("http://backend/delay/2000")
            .body(())
            .expect("request");
        match through.client.send_request(request, false) {
            Ok((_, mut send)) => send.send_reset(h2::Reason::CANCEL),
            Err(err) => {
                refused = Some(err);
                break;
            }
        }
        // Let the connection write what is queued, in bursts.
        if sent % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let refused = match refused {
        Some(err) => err,
        None => tokio::time::timeout(Duration::from_secs(10), through.client.clone().ready())
            .await
            .expect("an answer within 10 s")
            .expect_err("the connection ended"),
    };
    // The GOAWAY, or the connection closed under the client's next writes (a broken pipe).
    assert!(
        refused.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || refused.is_io(),
        "{refused:?}"
    );
    // Other connections are served.
    assert_eq!(get_echo(Through::connect(through.address).await).await, 200);
}

/// The listener's idle timeout closes an HTTP/2 connection (GOAWAY) once no stream has been in
/// flight for that long, never while one is: a request longer than the timeout completes.
#[tokio::test]
async fn an_idle_connection_is_closed_but_not_while_a_stream_is_in_flight() {
    let through = Through::start_with_listener("    limits: { idle_timeout: 1s }").await;
    let (client, connection) = Through::connect_watched(through.address).await;
    let mut client = client.ready().await.expect("connection open");
    let request = http::Request::get("http://backend/delay/1500")
        .body(())
        .expect("request");
    let (response, _) = client.send_request(request, true).expect("send");
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("response within 10 s")
        .expect("the request outlived the idle timeout");
    assert_eq!(response.status(), 200);
    read_body(response.into_body()).await;
    closed_by_the_idle_timeout(connection, Duration::from_secs(5)).await;
}

/// Waits for the connection task to end, as a 1 s idle timeout counted from now ends it: not
/// before 700 ms, and within `within`. Ended cleanly (GOAWAY) or not: closing is what counts.
async fn closed_by_the_idle_timeout(
    connection: tokio::task::JoinHandle<Result<(), h2::Error>>,
    within: Duration,
) {
    let idle_from = Instant::now();
    let ended = tokio::time::timeout(within, connection).await;
    assert!(
        matches!(ended, Ok(Ok(_))),
        "not closed within {within:?} of going idle: {ended:?}"
    );
    assert!(
        idle_from.elapsed() >= Duration::from_millis(700),
        "closed {:?} after going idle, before the idle timeout",
        idle_from.elapsed()
    );
}

/// Streams the client cancels before the response (issue #16 item 8) release the connection:
/// it goes idle at the cancel and the idle timeout closes it about a second later, long
/// before the upstream would have answered (5 s), where a request still counted in flight
/// would hold it open for good.
#[tokio::test]
async fn a_connection_whose_streams_were_all_cancelled_reaches_its_idle_timeout() {
    let through = Through::start_with_listener("    limits: { idle_timeout: 1s }").await;
    let (client, connection) = Through::connect_watched(through.address).await;
    let mut client = client.ready().await.expect("connection open");
    let mut pending = Vec::new();
    for _ in 0..3 {
        let request = http::Request::get("http://backend/delay/5000")
            .body(())
            .expect("request");
        pending.push(client.send_request(request, true).expect("send"));
        client = client.ready().await.expect("connection open");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Dropping a stream's handles before its end resets it (RST_STREAM CANCEL).
    drop(pending);
    // Within 3 s of the cancels, while the upstream has not answered: released at the cancel.
    closed_by_the_idle_timeout(connection, Duration::from_secs(3)).await;
    drop(client);
}
