//! lateen-xds's ADS client (what lateen-proxy runs) over TLS against lateend's 15012 listener
//! (`xds_tls::serve` with lateend's generated certificate for `lateend.istio-system.svc`),
//! in-process on 127.0.0.1: with the right root and server name it gets its configuration and
//! its bearer token reaches lateend; a wrong server name or another CA's root never gets a
//! stream, and the client keeps retrying.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use lateen_discovery::xds_tls;
use lateen_inject::webhook::WebhookCert;
use lateen_xds::client::{TlsSettings, TokenFile, Transport};
use lateen_xds::pb::envoy::config::cluster::v3::Cluster;
use lateen_xds::pb::envoy::config::core::v3::Node;
use lateen_xds::types::CLUSTER;
use lateen_xds::{AdsClient, AdsClientConfig, AdsResponse, Backoff, Snapshot, XdsServer};
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

const NODE: &str = "sidecar~127.0.0.1~web-1.default~default.svc.cluster.local";
const LATEEND_NAME: &str = "lateend.istio-system.svc";

struct Lateend {
    server: XdsServer,
    address: SocketAddr,
    ca: PathBuf,
    token: PathBuf,
    _dir: tempfile::TempDir,
}

/// lateend's TLS xDS listener with a generated certificate, serving one cluster to [`NODE`].
async fn lateend() -> Lateend {
    let cert = WebhookCert::generate_for_lateend().expect("certificate");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let server = XdsServer::default();
    let cluster = Cluster {
        name: "outbound|80||web.default.svc.cluster.local".into(),
        ..Default::default()
    };
    server.set_snapshot(NODE, Snapshot::new().with(&cluster));
    tokio::spawn(xds_tls::serve(
        listener,
        cert.server_config().expect("TLS config"),
        server.clone(),
        None,
        None,
        lateen_xds::ConnectionOptions::default(),
    ));
    let dir = tempfile::tempdir().expect("dir");
    let ca = dir.path().join("root-cert.pem");
    std::fs::write(&ca, &cert.ca_pem).expect("CA");
    let token = dir.path().join("istio-token");
    std::fs::write(&token, "header.payload.signature\n").expect("token");
    Lateend {
        server,
        address,
        ca,
        token,
        _dir: dir,
    }
}

fn client(
    lateend: &Lateend,
    root_cert: PathBuf,
    server_name: &str,
) -> (AdsClient, mpsc::UnboundedReceiver<AdsResponse>) {
    let node = Node {
        id: NODE.into(),
        ..Default::default()
    };
    let mut config =
        AdsClientConfig::new(lateend.address.to_string(), node).subscribe(CLUSTER, &[]);
    config.transport = Transport::Tls(TlsSettings {
        root_cert,
        server_name: server_name.into(),
    });
    config.token = Some(TokenFile {
        path: lateend.token.clone(),
        required: true,
    });
    config.backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(200));
    let (tx, rx) = mpsc::unbounded_channel();
    let client = AdsClient::spawn(config, move |response: &AdsResponse| {
        let _ = tx.send(response.clone());
        Ok(())
    });
    (client, rx)
}

#[tokio::test]
async fn right_root_and_name_get_configuration_and_carry_the_token() {
    let lateend = lateend().await;
    let (_client, mut responses) = client(&lateend, lateend.ca.clone(), LATEEND_NAME);
    let first = tokio::time::timeout(Duration::from_secs(10), responses.recv())
        .await
        .expect("a response within 10 s")
        .expect("client running");
    assert_eq!(first.type_url(), CLUSTER);
    let metrics = lateend.server.metrics();
    assert!(metrics.streams_with_token.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn a_wrong_server_name_or_another_root_never_opens_a_stream() {
    let lateend = lateend().await;
    let other_ca = lateend._dir.path().join("other-root.pem");
    std::fs::write(
        &other_ca,
        WebhookCert::generate_for_lateend()
            .expect("another CA")
            .ca_pem,
    )
    .expect("other CA");
    for (root, name) in [
        (lateend.ca.clone(), "istiod.istio-system.svc"),
        (other_ca, LATEEND_NAME),
    ] {
        let (client, mut responses) = client(&lateend, root.clone(), name);
        // Several attempts fit in this time with the 50..200 ms backoff.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            responses.try_recv().is_err(),
            "{} / {name}: got a response",
            root.display()
        );
        drop(client);
    }
    let metrics = lateend.server.metrics();
    assert_eq!(metrics.connections_total.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.streams_with_token.load(Ordering::Relaxed), 0);
}
