//! The ADS client against the ADS server on 127.0.0.1: ACK/NACK, resubscription, reconnect
//! with backoff, and delta -> SotW fallback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use lateen_xds::pb::envoy::config::cluster::v3::Cluster;
use lateen_xds::prost::Message;
use lateen_xds::types::{CLUSTER, ENDPOINT};
use lateen_xds::{
    AdsClient, AdsClientConfig, AdsResponse, Backoff, ClientMode, Snapshot, SyncState, XdsServer,
};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// Cluster names in a response (SotW bodies or delta resources).
fn cluster_names(r: &AdsResponse) -> Vec<String> {
    let bodies: Vec<Vec<u8>> = match r {
        AdsResponse::Sotw(s) => s.resources.iter().map(|a| a.value.clone()).collect(),
        AdsResponse::Delta(d) => d
            .resources
            .iter()
            .filter_map(|r| r.resource.as_ref().map(|a| a.value.clone()))
            .collect(),
    };
    bodies
        .iter()
        .filter_map(|b| Cluster::decode(b.as_slice()).ok())
        .map(|c| c.name)
        .collect()
}

/// A client whose handler forwards every response and rejects clusters named "bad".
fn client(addr: SocketAddr, mode: ClientMode) -> (AdsClient, mpsc::UnboundedReceiver<AdsResponse>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut config = AdsClientConfig::new(addr.to_string(), node("n3")).subscribe(CLUSTER, &[]);
    config.mode = mode;
    config.backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(400));
    let handler = move |r: &AdsResponse| {
        let _ = tx.send(r.clone());
        if r.type_url() == CLUSTER && cluster_names(r).iter().any(|n| n == "bad") {
            return Err("cluster bad: rejected by test".to_string());
        }
        Ok(())
    };
    (AdsClient::spawn(config, handler), rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<AdsResponse>) -> AdsResponse {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("response within deadline")
        .expect("client running")
}

async fn spawn_server() -> (XdsServer, SocketAddr) {
    let server = XdsServer::default();
    let addr = server
        .spawn("127.0.0.1:0".parse().expect("literal address"))
        .await
        .expect("bind");
    (server, addr)
}

#[tokio::test]
async fn delta_client_acks_resubscribes_and_nacks() {
    let (server, addr) = spawn_server().await;
    server.set_snapshot(
        "n3",
        Snapshot::new()
            .with(&eds_cluster("c1"))
            .with(&endpoints("c1", 9)),
    );
    let (client, mut rx) = client(addr, ClientMode::Delta);
    let cds = next(&mut rx).await;
    assert!(matches!(cds, AdsResponse::Delta(_)));
    assert_eq!(cluster_names(&cds), ["c1"]);

    client.subscribe(ENDPOINT, ["c1".to_string()]);
    let eds = next(&mut rx).await;
    assert_eq!(eds.type_url(), ENDPOINT);
    let synced = wait_for(WAIT, || {
        let rows = server.sync_status();
        let row = rows.first()?;
        (row.cds == SyncState::Synced && row.eds == SyncState::Synced).then_some(())
    })
    .await;
    assert!(synced.is_some(), "{:?}", server.sync_status());

    server.cache().update("n3", |s| {
        s.add(&eds_cluster("bad"));
    });
    let rejected = next(&mut rx).await;
    assert_eq!(cluster_names(&rejected), ["bad"]);
    let nack = wait_for(WAIT, || {
        let rows = server.sync_status();
        let row = rows.first()?;
        (row.cds == SyncState::Nack).then(|| row.types.get(CLUSTER)?.last_nack.clone())?
    })
    .await
    .expect("NACK recorded");
    assert_eq!(nack.error_detail, "cluster bad: rejected by test");
}

#[tokio::test]
async fn client_reconnects_until_the_server_appears() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("reserve port");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let (_client, mut rx) = client(addr, ClientMode::Sotw);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let server = XdsServer::default();
    server.set_snapshot("n3", Snapshot::new().with(&eds_cluster("late")));
    server.spawn(addr).await.expect("bind the reserved port");
    let cds = next(&mut rx).await;
    assert!(matches!(cds, AdsResponse::Sotw(_)));
    assert_eq!(cluster_names(&cds), ["late"]);
}

#[tokio::test]
async fn delta_client_falls_back_to_sotw() {
    let server = XdsServer::default();
    server.set_snapshot("n3", Snapshot::new().with(&eds_cluster("c1")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Delta switched off, like an older control plane.
    let service = server.service().without_delta();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let (_client, mut rx) = client(addr, ClientMode::Delta);
    let cds = next(&mut rx).await;
    assert!(matches!(cds, AdsResponse::Sotw(_)), "fell back to SotW");
    assert_eq!(cluster_names(&cds), ["c1"]);
}

#[tokio::test]
async fn a_response_over_the_size_limit_is_refused() {
    let (server, addr) = spawn_server().await;
    server.set_snapshot("n3", Snapshot::new().with(&eds_cluster(&"c".repeat(8192))));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut config = AdsClientConfig::new(addr.to_string(), node("n3")).subscribe(CLUSTER, &[]);
    config.mode = ClientMode::Sotw;
    config.max_message_bytes = 4096;
    let _client = AdsClient::spawn(config, move |r: &AdsResponse| {
        let _ = tx.send(r.clone());
        Ok(())
    });
    let got = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await;
    assert!(
        got.is_err(),
        "a response of over 8 KiB passed a 4 KiB limit"
    );
    assert_eq!(
        lateen_xds::client::MAX_RESPONSE_BYTES,
        200 * 1024 * 1024,
        "ztunnel's limit by default"
    );
}
