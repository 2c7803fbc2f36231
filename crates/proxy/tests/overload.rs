//! Overload protection (issue #16 item 3), through the built proxy under a low open-file limit
//! (`prlimit`): 3000 streams on one h2c connection open at most the worker's upstream cap
//! (HTTP/1.1 upstream) or one shared connection (HTTP/2 upstream), the streams beyond are
//! queued or refused with 503 `UO`, and other clients are still answered; the global
//! downstream cap from Envoy's runtime key closes connections beyond it; accepts that fail
//! for want of descriptors (EMFILE) back off, without spinning, until descriptors free up.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::upstream::Upstream;
use support::*;

/// The proxy's open-file limit in these tests: low enough that 3000 upstream connections
/// would run it out of descriptors.
const OPEN_FILES: u64 = 256;
/// What the proxy makes of it with `--concurrency 2`: a quarter, shared by two workers.
const UPSTREAM_PER_WORKER: usize = (OPEN_FILES / 4 / 2) as usize;
const STREAMS: usize = 3000;
/// Requests one worker lets wait for an upstream connection (Envoy's default
/// `max_pending_requests`), as `lateen_proxy`'s connection budget has it.
const MAX_WAITING: usize = 1024;

/// `protocol: http1` on the one cluster of [`simple_config`].
fn with_cluster_protocol(config: String, protocol: &str) -> String {
    config.replace(
        "  - name: backend\n",
        &format!("  - name: backend\n    protocol: {protocol}\n"),
    )
}

/// Sends [`STREAMS`] concurrent requests on one h2c connection while another client makes
/// requests on new HTTP/1.1 connections; returns the streams' statuses (0: no response) and
/// how long the other client waited for each answer.
async fn storm(proxy: std::net::SocketAddr) -> (Vec<u16>, Vec<Duration>) {
    let sender = h2_connection(proxy).await;
    let streams: Vec<_> = (0..STREAMS)
        .map(|_| {
            let mut sender = sender.clone();
            tokio::spawn(async move {
                let request = http::Request::get(format!("http://backend/delay/{}", 100))
                    .body(Full::new(Bytes::new()))
                    .expect("request");
                let sent = tokio::time::timeout(Duration::from_secs(30), async {
                    let response = sender.send_request(request).await.ok()?;
                    let status = response.status().as_u16();
                    response.into_body().collect().await.ok()?;
                    Some(status)
                })
                .await;
                sent.ok().flatten().unwrap_or(0)
            })
        })
        .collect();
    // Let the storm start before the other client comes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut waits = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let answered = tokio::time::timeout(Duration::from_secs(20), get(proxy, "/echo")).await;
        assert!(
            matches!(answered, Ok(Ok(_))),
            "another client got no answer during the storm: {answered:?}"
        );
        waits.push(started.elapsed());
    }
    let mut statuses = Vec::new();
    for stream in streams {
        statuses.push(stream.await.unwrap_or(0));
    }
    (statuses, waits)
}

async fn limited_proxy(
    upstream: &Upstream,
    protocol: &str,
    test: &str,
) -> Option<(ProxyProcess, std::net::SocketAddr)> {
    let ports = Ports::new();
    let listen = free_port();
    let config = with_cluster_protocol(
        simple_config(&ports, listen, &[upstream.address], "", ""),
        protocol,
    );
    let proxy =
        ProxyProcess::start_with_open_files_limit(&config, &ports, &[], OPEN_FILES, test).await?;
    Some((proxy, ([127, 0, 0, 1], listen).into()))
}

/// About 5 s: 3000 streams of 100 ms over 32 upstream connections, the queue draining at
/// ~300 requests a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_to_an_http1_upstream_open_at_most_the_worker_cap_and_others_are_answered() {
    let upstream = Upstream::start("backend").await;
    let Some((mut proxy, address)) = limited_proxy(
        &upstream,
        "http1",
        "streams_to_an_http1_upstream_open_at_most_the_worker_cap_and_others_are_answered",
    )
    .await
    else {
        return;
    };
    let (statuses, _) = storm(address).await;
    let ok = statuses.iter().filter(|&&status| status == 200).count();
    let overflow = statuses.iter().filter(|&&status| status == 503).count();
    assert_eq!(
        ok + overflow,
        STREAMS,
        "every stream is answered 200 or 503 (statuses other than these: {:?})",
        statuses
            .iter()
            .filter(|&&status| status != 200 && status != 503)
            .take(10)
            .collect::<Vec<_>>()
    );
    assert!(
        ok >= UPSTREAM_PER_WORKER,
        "the capped connections were used: {ok} answered 200"
    );
    let peak = upstream.connections.peak.load(Ordering::SeqCst);
    // One worker holds the h2c connection; the other client's connections may land on the
    // other worker, which has a cap of its own.
    assert!(
        peak <= 2 * UPSTREAM_PER_WORKER,
        "upstream saw {peak} connections at once; the cap is {UPSTREAM_PER_WORKER} per worker\n{}",
        proxy.log_text()
    );
    let log = proxy.log_text();
    assert!(
        log.contains(&format!(
            "max_upstream_connections_per_worker={UPSTREAM_PER_WORKER}"
        )),
        "{log}"
    );
    // 3000 streams at once against 32 connections, at most 1024 waiting per worker and
    // ~300 a second draining while they arrive: some are always refused.
    assert!(
        overflow > 0,
        "streams beyond {UPSTREAM_PER_WORKER} connections and {MAX_WAITING} waiting are refused"
    );
    let metrics = proxy.prometheus().await;
    assert!(
        metrics.contains("response_flags=\"UO\""),
        "refused streams are 503 UO: {metrics}"
    );
    assert!(proxy.try_wait_alive(), "the proxy survived:\n{log}");
    assert!(
        !log.contains("Too many open files"),
        "the proxy ran out of descriptors:\n{log}"
    );
}

/// About 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_to_an_http2_upstream_share_one_connection() {
    let upstream = Upstream::start("backend").await;
    let Some((mut proxy, address)) = limited_proxy(
        &upstream,
        "downstream",
        "streams_to_an_http2_upstream_share_one_connection",
    )
    .await
    else {
        return;
    };
    let (statuses, _) = storm(address).await;
    let ok = statuses.iter().filter(|&&status| status == 200).count();
    assert_eq!(ok, STREAMS, "every stream answered 200");
    let peak = upstream.connections.peak.load(Ordering::SeqCst);
    // The h2c streams share one connection; the other client's HTTP/1.1 requests use their
    // own (up to one per worker at a time, requests being sequential).
    assert!(
        peak <= 3,
        "upstream saw {peak} connections at once\n{}",
        proxy.log_text()
    );
    assert!(proxy.try_wait_alive(), "the proxy survived");
}

/// About 1 s.
#[tokio::test]
async fn the_runtime_key_caps_downstream_connections() {
    use tokio::io::AsyncReadExt;
    let upstream = Upstream::start("backend").await;
    let ports = Ports::new();
    let listen = free_port();
    let config = format!(
        "{}runtime:\n  overload.global_downstream_max_connections: 2\n",
        simple_config(&ports, listen, &[upstream.address], "", "")
    );
    let proxy = ProxyProcess::start(&config, &ports).await;
    let address: std::net::SocketAddr = ([127, 0, 0, 1], listen).into();
    let mut first = h1_connection(address).await;
    let mut second = h1_connection(address).await;
    for sender in [&mut first, &mut second] {
        let response = sender
            .send_request(
                http::Request::get("/echo")
                    .header("host", "backend")
                    .body(Full::new(Bytes::new()))
                    .expect("request"),
            )
            .await
            .expect("served under the cap");
        assert_eq!(response.status(), 200);
    }
    // The third is accepted and closed at once.
    let mut third = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let mut buffer = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buffer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a connection beyond the cap is closed: {read:?}"
    );
    let (_, stats) = get(proxy.admin, "/stats").await.expect("stats");
    assert!(
        stats.contains("lateen.downstream_global_cx_overflow: 1"),
        "{stats}"
    );
    // A slot freed is a slot again.
    drop(first);
    assert!(
        eventually(Duration::from_secs(5), || async {
            matches!(get(address, "/echo").await, Ok((200, _)))
        })
        .await,
        "served again once a connection closed"
    );
}

/// The open-file limit of the EMFILE test: enough for the proxy's own descriptors and a few
/// dozen connections, which the test then holds until accepting fails.
const EMFILE_OPEN_FILES: u64 = 96;
/// What the proxy logs, once, when accepting starts to fail with EMFILE.
const ACCEPT_FAILED: &str = "accept failed: Too many open files";

/// Sends a GET on a new connection and waits up to `wait` for the start of an answer; the
/// connection, and whether it was answered.
async fn connect_and_ask(
    address: std::net::SocketAddr,
    wait: Duration,
) -> (tokio::net::TcpStream, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The kernel completes the handshake into the listen backlog whether or not the proxy can
    // accept: only the answer tells.
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: backend\r\n\r\n")
        .await
        .expect("write");
    let mut head = [0u8; 12];
    let answered = matches!(
        tokio::time::timeout(wait, stream.read_exact(&mut head)).await,
        Ok(Ok(_)) if head.starts_with(b"HTTP/1.1 ")
    );
    (stream, answered)
}

/// About 6 s. Keep-alive connections are held until the proxy runs out of descriptors and
/// accepting fails with EMFILE; while connections wait in the backlog the proxy backs off
/// (little CPU, read from /proc, where a busy accept loop would take a core), and once the
/// held connections close, the waiting ones are accepted and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_failing_for_want_of_descriptors_back_off_and_resume_when_they_free_up() {
    use tokio::io::AsyncReadExt;
    let test = "accepts_failing_for_want_of_descriptors_back_off_and_resume_when_they_free_up";
    let upstream = Upstream::start("backend").await;
    let ports = Ports::new();
    let listen = free_port();
    let config = simple_config(&ports, listen, &[upstream.address], "", "");
    let Some(mut proxy) =
        ProxyProcess::start_with_open_files_limit(&config, &ports, &[], EMFILE_OPEN_FILES, test)
            .await
    else {
        return;
    };
    let address: std::net::SocketAddr = ([127, 0, 0, 1], listen).into();
    let mut held = Vec::new();
    let mut waiting = Vec::new();
    for _ in 0..2 * EMFILE_OPEN_FILES {
        let (stream, answered) = connect_and_ask(address, Duration::from_millis(500)).await;
        // Unanswered before any accept failed is only slow (a loaded machine): held as well.
        if answered || !proxy.log_text().contains(ACCEPT_FAILED) {
            held.push(stream);
        } else {
            waiting.push(stream);
            if waiting.len() == 2 {
                break;
            }
        }
    }
    assert_eq!(
        waiting.len(),
        2,
        "{} connections held and no accept failed for want of descriptors\n{}",
        held.len(),
        proxy.log_text()
    );
    // Backing off: both workers' accept loops see the waiting connections and fail to take
    // them. A loop retrying at once would use a core (2 s of CPU in these 2 s).
    let pid = proxy.pid() as u32;
    let before = lateen_test_support::proc_stats::cpu_time(pid).expect("proxy cpu time");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = lateen_test_support::proc_stats::cpu_time(pid).expect("proxy cpu time");
    let log = proxy.log_text();
    assert!(
        after - before < Duration::from_millis(300),
        "the proxy used {:?} of CPU in 2 s while out of descriptors: a busy accept loop\n{log}",
        after - before
    );
    // Descriptors free up: the waiting connections are accepted and answered.
    drop(held);
    for mut stream in waiting {
        let mut head = [0u8; 12];
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head)).await;
        assert!(
            matches!(read, Ok(Ok(_))) && head.starts_with(b"HTTP/1.1 200"),
            "a waiting connection answered once descriptors freed up: {read:?} {:?}\n{}",
            String::from_utf8_lossy(&head),
            proxy.log_text()
        );
    }
    assert!(matches!(get(address, "/echo").await, Ok((200, _))));
    assert!(
        proxy
            .log_text()
            .contains("accepting again after failed accepts"),
        "{}",
        proxy.log_text()
    );
    assert!(proxy.try_wait_alive(), "the proxy survived");
}
