//! What a hostile or careless client finds (issue #16), each through the built proxy with raw
//! sockets so the bytes are exactly the attacker's: protocol upgrades limited to the
//! configured types (WebSocket by default, as Istio) with `h2c` stripped and a 101 checked;
//! client faults (bad chunk sizes, aborted uploads) answered as the client's, never blamed on
//! the upstream; abandoned requests counted once and released; protocol sniffing of any
//! token method; `/stats/prometheus` content negotiation.

mod support;

use std::time::Duration;

use support::upstream::{RawUpstream, Upstream};
use support::*;

const QUIET: Duration = Duration::from_millis(700);

async fn proxy_to(upstream: std::net::SocketAddr) -> (ProxyProcess, std::net::SocketAddr) {
    let ports = Ports::new();
    let listen = free_port();
    let config = simple_config(&ports, listen, &[upstream], "", "");
    let proxy = ProxyProcess::start(&config, &ports).await;
    (proxy, ([127, 0, 0, 1], listen).into())
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
    let upe = sample(
        &metrics,
        "istio_requests_total",
        &["response_code=\"502\"", "response_flags=\"UPE\""],
    );
    assert_eq!(upe, Some(2.0), "{metrics}");
}
