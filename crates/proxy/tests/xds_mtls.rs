//! Mesh mTLS configured over xDS as istiod configures it: a `lateen-proxy sidecar` gets an
//! inbound listener whose only chain is TLS (Istio's STRICT: `transport_protocol: tls`, a
//! DownstreamTlsContext with SDS `default`/`ROOTCA`) and an outbound cluster with an
//! ISTIO_MUTUAL UpstreamTlsContext pointing at that inbound listener; its certificate comes
//! from `--cert-dir`. A request through the outbound listener crosses mTLS; plaintext to the
//! inbound port is refused; the inbound metrics say `mutual_tls` with the workload's identity
//! on both sides.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;
mod xds_support;

use lateen_xds::pb::envoy::config::listener::v3::FilterChainMatch;
use lateen_xds::{Snapshot, XdsServer};
use std::net::SocketAddr;
use support::upstream::Upstream;
use support::{get, sample};
use xds_support::tls::{istio_mutual_downstream, istio_mutual_upstream};
use xds_support::*;

const IDENTITY: &str = "spiffe://cluster.local/ns/shop/sa/web";
const HOST: &str = "web.shop.svc.cluster.local";

#[tokio::test]
async fn strict_inbound_and_istio_mutual_cluster_from_xds() {
    let ca = lateen_test_support::test_ca::TestCa::new("mesh").expect("ca");
    let certs = tempfile::tempdir().expect("temp dir");
    ca.workload_cert(IDENTITY, lateen_test_support::test_ca::Validity::Current)
        .expect("cert")
        .write_istio_dir(certs.path())
        .expect("write certs");
    let app = Upstream::start("web-app").await;
    let inbound_address: SocketAddr = ([127, 0, 0, 1], unique_port()).into();
    let outbound_address: SocketAddr = ([127, 0, 0, 1], unique_port()).into();

    let mut inbound = http_listener("inbound", inbound_address, "inbound");
    inbound.traffic_direction = 1; // INBOUND
    inbound.filter_chains[0].filter_chain_match = Some(FilterChainMatch {
        transport_protocol: "tls".into(),
        application_protocols: vec![
            "istio-http/1.0".into(),
            "istio-http/1.1".into(),
            "istio-h2".into(),
        ],
        ..Default::default()
    });
    inbound.filter_chains[0].transport_socket = Some(istio_mutual_downstream());
    let outbound_cluster = format!("outbound|80||{HOST}");
    let mut mesh_cluster = eds_cluster(&outbound_cluster);
    mesh_cluster.transport_socket = Some(istio_mutual_upstream(
        &format!("outbound_.80_._.{HOST}"),
        &[IDENTITY],
    ));
    let snapshot = Snapshot::new()
        .with(&inbound)
        .with(&route_to("inbound", "inbound|80||"))
        .with(&eds_cluster("inbound|80||"))
        .with(&endpoints("inbound|80||", &[app.address]))
        .with(&http_listener("outbound", outbound_address, "outbound"))
        .with(&route_to("outbound", &outbound_cluster))
        .with(&mesh_cluster)
        .with(&endpoints(&outbound_cluster, &[inbound_address]));

    let server = XdsServer::default();
    let xds = server
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .expect("bind xDS server");
    server.set_snapshot(NODE_ID, snapshot);
    let cert_dir = certs.path().to_string_lossy().into_owned();
    let mut sidecar = SidecarProcess::start_with(xds, &["--cert-dir", &cert_dir]);
    sidecar.wait_ready().await;

    let (status, body) = get(outbound_address, "/through-mtls")
        .await
        .expect("request");
    assert_eq!(status, 200, "{body}\n{}", sidecar.log_text());
    let refused = get(inbound_address, "/plaintext").await;
    assert!(refused.is_err(), "STRICT answered plaintext: {refused:?}");

    let dump = sidecar.config_dump().await.to_string();
    assert!(dump.contains("\"mtls\":\"strict\""), "{dump}");
    let (_, metrics) = get(sidecar.metrics, "/stats/prometheus")
        .await
        .expect("metrics");
    let inbound_requests = sample(
        &metrics,
        "istio_requests_total",
        &[
            "reporter=\"destination\"",
            "connection_security_policy=\"mutual_tls\"",
            &format!("source_principal=\"{IDENTITY}\""),
            &format!("destination_principal=\"{IDENTITY}\""),
        ],
    );
    assert_eq!(inbound_requests, Some(1.0), "{metrics}");
}
