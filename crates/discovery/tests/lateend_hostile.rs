//! What a careless or hostile client finds at the built lateend (issue #16 item 7): a config
//! file that is not UTF-8 is reported once per change, not on every scan; a malformed ADS
//! request ends its stream with INVALID_ARGUMENT and one log line; an over-large node id is
//! refused; silent connections to the plaintext xDS and debug ports are closed; a proxy
//! becomes an endpoint only when a WorkloadGroup admits it (a client that merely connects,
//! names a missing group or one of another namespace, or holds a certificate or, on the TLS
//! port, a token of another namespace is no endpoint; a token lateend cannot verify refuses
//! the stream with UNAUTHENTICATED).
//!
//! About 12 s: the silent-connection checks wait for lateend's 10 s timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lateen_xds::pb::envoy::config::core::v3::Node;
use lateen_xds::pb::envoy::service::discovery::v3::DiscoveryRequest;
use lateen_xds::prost::Message;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

use common::lateend::start_lateend;

#[path = "lateend_hostile/auto_registration.rs"]
mod auto_registration;

const SOTW: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

/// `message` framed as one gRPC message.
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut framed = vec![0];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap_or(0).to_be_bytes());
    framed.extend_from_slice(message);
    framed.into()
}

/// Opens an ADS stream, sends `body` and ends it; the `grpc-status` lateend answers with.
async fn ads_status(port: u16, body: Bytes) -> Option<String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(connection);
    let request = http::Request::post(format!("http://127.0.0.1:{port}{SOTW}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(body))
        .ok()?;
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .ok()?
        .ok()?;
    if let Some(status) = response.headers().get("grpc-status") {
        return status.to_str().ok().map(str::to_string);
    }
    let collected = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect())
        .await
        .ok()?
        .ok()?;
    let trailers = collected.trailers()?;
    trailers
        .get("grpc-status")?
        .to_str()
        .ok()
        .map(str::to_string)
}

/// Connects to `port`, sends nothing, and returns how long until lateend closed the
/// connection (`None`: still open after `within`).
async fn closed_when_silent(port: u16, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let mut buffer = [0u8; 64];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            // An HTTP/2 server may write its SETTINGS first; keep waiting for the close.
            Ok(Ok(_)) if started.elapsed() < within => continue,
            _ => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lateend_bounds_what_careless_clients_cost_it() {
    let work = tempfile::tempdir().expect("work dir");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let lateend = start_lateend(&config, work.path(), &[]).await;

    // Silent connections, measured while the rest runs.
    let silent_xds = tokio::spawn(closed_when_silent(lateend.xds, Duration::from_secs(20)));
    let silent_debug = tokio::spawn(closed_when_silent(lateend.debug, Duration::from_secs(20)));

    // A file that is not UTF-8: one report, however many scans (100 ms apart) pass.
    std::fs::write(config.join("bad.yaml"), b"kind: \xff\xfe\n").expect("write bad file");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let log = lateend.process.log();
    let reports = log
        .matches("not UTF-8 text (invalid byte at offset 6)")
        .count();
    assert_eq!(reports, 1, "reported once per change:\n{log}");

    // A request that is not a DiscoveryRequest.
    let malformed = ads_status(lateend.xds, grpc_frame(&[0xff, 0xff, 0xff, 0xff])).await;
    assert_eq!(malformed.as_deref(), Some("3"), "INVALID_ARGUMENT");

    // A node id of 3.5 MiB.
    let huge = DiscoveryRequest {
        node: Some(Node {
            id: "x".repeat(3_500_000),
            ..Default::default()
        }),
        type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".into(),
        ..Default::default()
    };
    let refused = ads_status(lateend.xds, grpc_frame(&huge.encode_to_vec())).await;
    assert_eq!(refused.as_deref(), Some("3"), "INVALID_ARGUMENT");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = lateend.process.log();
    assert_eq!(
        log.matches("ADS request refused").count(),
        2,
        "each refusal logged once:\n{log}"
    );
    assert!(
        !log.contains(&"x".repeat(1000)),
        "the node id is shortened in the log"
    );
    assert!(
        log.contains("node.id of 3500000 bytes is over the limit"),
        "{log}"
    );

    for (what, silent) in [("xDS", silent_xds), ("debug", silent_debug)] {
        let closed = silent.await.ok().flatten();
        assert!(
            closed.is_some_and(|after| after < Duration::from_secs(15)),
            "a silent {what} connection is closed within 15 s: {closed:?}"
        );
    }
}
