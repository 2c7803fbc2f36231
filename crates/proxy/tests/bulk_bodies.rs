//! Response bodies through the upstream read-ahead and the coalescing body (issue #16 item 10):
//! a bulk body read from an HTTP/1.1 upstream in large gulps and joined into large writes
//! arrives whole and in order over HTTP/1.1 and h2c, and a body that trickles (server-sent
//! events, gRPC streams) is never held back waiting for more. Their CPU cost is measured by
//! `bench/bulk.sh`, not here.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::time::{Duration, Instant};

use support::upstream::{Upstream, pattern_byte};
use support::*;

/// 48 MiB: enough for the read-ahead to reach its largest gulp many times over.
const BULK_BYTES: usize = 48 * 1024 * 1024;

fn get(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(path)
        .header(http::header::HOST, "backend")
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// Reads the whole body, checking every byte against the pattern as it arrives.
async fn check_pattern(response: http::Response<hyper::body::Incoming>) -> usize {
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut offset = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("body frame");
        if let Some(data) = frame.data_ref() {
            for (index, byte) in data.iter().enumerate() {
                assert_eq!(
                    *byte,
                    pattern_byte(offset + index),
                    "byte {}",
                    offset + index
                );
            }
            offset += data.len();
        }
    }
    offset
}

#[tokio::test]
async fn bulk_downloads_arrive_whole_and_in_order_over_h1_and_h2c() {
    let upstream = Upstream::start("backend").await;
    let (_proxy, address) = proxy_to(upstream.address).await;
    let path = format!("/pattern/{BULK_BYTES}");

    let mut h1 = h1_connection(address).await;
    let response = h1.send_request(get(&path)).await.expect("h1 response");
    assert_eq!(check_pattern(response).await, BULK_BYTES);
    // The connection (and the pooled upstream one) still works afterwards.
    let (times, text) = arrivals(h1.send_request(get("/bytes/10")).await.expect("h1 again")).await;
    assert_eq!((times.len(), text.as_str()), (1, "xxxxxxxxxx"));

    let mut h2 = h2_connection(address).await;
    let (first, second) = tokio::join!(h2.send_request(get(&path)), async {
        h2_connection(address).await.send_request(get(&path)).await
    });
    let (first, second) = tokio::join!(
        check_pattern(first.expect("h2 response")),
        check_pattern(second.expect("second h2 response"))
    );
    assert_eq!((first, second), (BULK_BYTES, BULK_BYTES));
}

/// When each chunk arrived, from the response head on.
async fn arrivals(response: http::Response<hyper::body::Incoming>) -> (Vec<Duration>, String) {
    assert_eq!(response.status(), 200);
    let start = Instant::now();
    let mut body = response.into_body();
    let mut times = Vec::new();
    let mut text = String::new();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("a chunk within 10 s")
    {
        if let Ok(data) = frame.expect("frame").into_data() {
            times.push(start.elapsed());
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    (times, text)
}

#[tokio::test]
async fn a_trickling_body_is_passed_on_chunk_by_chunk() {
    let upstream = Upstream::start("backend").await;
    let (_proxy, address) = proxy_to(upstream.address).await;
    // Four ticks 400 ms apart: held back, they would arrive together at the end.
    let path = "/ticks/4/400";
    let expected = "tick 0\ntick 1\ntick 2\ntick 3\n";

    let mut h1 = h1_connection(address).await;
    let h1_response = h1.send_request(get(path)).await.expect("h1");
    assert_ticked_apart("h1", arrivals(h1_response).await, expected);
    let mut h2 = h2_connection(address).await;
    let h2_response = h2.send_request(get(path)).await.expect("h2");
    assert_ticked_apart("h2", arrivals(h2_response).await, expected);
}

/// The ticks arrived one by one, spread over the time the upstream took to send them.
fn assert_ticked_apart(client: &str, (times, text): (Vec<Duration>, String), expected: &str) {
    assert_eq!(text, expected, "{client}");
    assert!(times.len() >= 4, "{client}: {times:?}");
    assert!(
        times[times.len() - 1] - times[0] >= Duration::from_millis(1000),
        "{client}: the ticks arrived together: {times:?}"
    );
}
