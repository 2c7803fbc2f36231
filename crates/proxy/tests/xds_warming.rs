//! Warming and the state-of-the-world protocol: a route to a new cluster waits for the
//! cluster's endpoints before it takes traffic, and everything works over SotW ADS too.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;
mod xds_support;

use lateen_xds::{Snapshot, XdsServer};
use std::net::SocketAddr;
use std::time::Duration;
use support::upstream::Upstream;
use support::{eventually, get};
use xds_support::*;

async fn answer(address: SocketAddr) -> Option<String> {
    match get(address, "/").await {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

fn base(listen: SocketAddr, route_cluster: &str, upstream: SocketAddr) -> Snapshot {
    Snapshot::new()
        .with(&http_listener("http", listen, "main"))
        .with(&route_to("main", route_cluster))
        .with(&eds_cluster("a"))
        .with(&endpoints("a", &[upstream]))
}

#[tokio::test]
async fn a_route_to_a_new_cluster_waits_for_its_endpoints() {
    let server = XdsServer::default();
    let xds = server
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .expect("bind xDS server");
    let (alpha, beta) = (
        Upstream::start("alpha").await,
        Upstream::start("beta").await,
    );
    let listen: SocketAddr = ([127, 0, 0, 1], unique_port()).into();
    server.set_snapshot(NODE_ID, base(listen, "a", alpha.address));
    let mut sidecar = SidecarProcess::start(xds);
    sidecar.wait_ready().await;

    // The route moves to cluster b, whose endpoints are not published yet.
    server.set_snapshot(
        NODE_ID,
        base(listen, "b", alpha.address).with(&eds_cluster("b")),
    );
    for _ in 0..20 {
        let body = answer(listen).await.unwrap_or_default();
        assert!(
            body.contains("alpha"),
            "a cluster without endpoints took traffic: {body:?}; log:\n{}",
            sidecar.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dump = sidecar.config_dump().await;
    assert!(
        dump["config"]["xds"]["resources"]["CDS"]["b"].is_null(),
        "the held update is not live yet: {}",
        dump["config"]["xds"]
    );

    server.set_snapshot(
        NODE_ID,
        base(listen, "b", alpha.address)
            .with(&eds_cluster("b"))
            .with(&endpoints("b", &[beta.address])),
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            answer(listen)
                .await
                .is_some_and(|body| body.contains("beta"))
        })
        .await,
        "route never moved to the warmed cluster; log:\n{}",
        sidecar.log_text()
    );
}

#[tokio::test]
async fn endpoints_that_never_come_count_as_empty_after_the_warm_timeout() {
    let server = XdsServer::default();
    let xds = server
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .expect("bind xDS server");
    let alpha = Upstream::start("alpha").await;
    let listen: SocketAddr = ([127, 0, 0, 1], unique_port()).into();
    // Cluster b never gets a ClusterLoadAssignment.
    server.set_snapshot(
        NODE_ID,
        base(listen, "b", alpha.address).with(&eds_cluster("b")),
    );
    let mut sidecar = SidecarProcess::start_with(xds, &["--warm-timeout", "2"]);
    sidecar.wait_ready().await;
    let (status, _) = get(listen, "/")
        .await
        .expect("the listener is bound once the timeout passed");
    assert_eq!(status, 503, "a cluster without endpoints answers 503");
    let dump = sidecar.config_dump().await;
    assert_eq!(dump["config"]["xds"]["warming"][0], "EDS b");

    // Later updates do not wait for the missing endpoints again.
    server.set_snapshot(
        NODE_ID,
        base(listen, "b", alpha.address)
            .with(&eds_cluster("b"))
            .with(&direct_response("main", "no wait")),
    );
    let started = std::time::Instant::now();
    assert!(
        eventually(Duration::from_secs(10), || async {
            answer(listen).await.is_some_and(|body| body == "no wait")
        })
        .await
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the update waited {:?} for resources already given up",
        started.elapsed()
    );
}

/// Two listeners on one address: the compile problem names the xDS resource.
#[tokio::test]
async fn conflicting_listeners_are_nacked_naming_the_listener() {
    let server = XdsServer::default();
    let xds = server
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .expect("bind xDS server");
    let alpha = Upstream::start("alpha").await;
    let listen: SocketAddr = ([127, 0, 0, 1], unique_port()).into();
    server.set_snapshot(NODE_ID, base(listen, "a", alpha.address));
    let mut sidecar = SidecarProcess::start(xds);
    sidecar.wait_ready().await;
    server.set_snapshot(
        NODE_ID,
        base(listen, "a", alpha.address).with(&http_listener("twin", listen, "main")),
    );
    let mut detail = String::new();
    let nacked = eventually(Duration::from_secs(10), || {
        let found = server.sync_status().into_iter().find_map(|row| {
            row.types
                .get(lateen_xds::types::LISTENER)?
                .last_nack
                .clone()
        });
        detail = found.map(|nack| nack.error_detail).unwrap_or_default();
        let done = !detail.is_empty();
        async move { done }
    })
    .await;
    assert!(
        nacked,
        "no LDS NACK: {:?}; log:\n{}",
        server
            .sync_status()
            .first()
            .map(|row| (row.lds, row.types.get(lateen_xds::types::LISTENER).cloned())),
        sidecar.log_text()
    );
    assert!(
        detail.contains("Listener \"twin\"")
            && detail.contains("is already used by listener \"http\""),
        "{detail}"
    );
    assert!(
        answer(listen)
            .await
            .is_some_and(|body| body.contains("alpha"))
    );
}

#[tokio::test]
async fn state_of_the_world_ads_carries_traffic_and_updates() {
    let server = XdsServer::default();
    let xds = server
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .expect("bind xDS server");
    let alpha = Upstream::start("alpha").await;
    let listen: SocketAddr = ([127, 0, 0, 1], unique_port()).into();
    server.set_snapshot(NODE_ID, base(listen, "a", alpha.address));
    let mut sidecar = SidecarProcess::start_with(xds, &["--sotw"]);
    sidecar.wait_ready().await;
    assert!(
        answer(listen)
            .await
            .is_some_and(|body| body.contains("alpha"))
    );
    let status = server.sync_status();
    assert_eq!(
        status.first().map(|row| row.mode),
        Some(lateen_xds::StreamMode::Sotw)
    );

    server.set_snapshot(
        NODE_ID,
        base(listen, "a", alpha.address).with(&direct_response("main", "sotw update")),
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            answer(listen)
                .await
                .is_some_and(|body| body == "sotw update")
        })
        .await
    );
}
