//! Mesh mTLS between lateen-proxy and real Envoy 1.40, both directions, with Istio's wire
//! values: Envoy as the server sidecar (client certificate required, `h2`/`http/1.1`) behind a
//! lateen-proxy client sidecar, and Envoy as the client sidecar (Istio's SNI, ALPN
//! `istio-http/1.1`, the server's SPIFFE SAN matched) in front of a lateen-proxy server
//! sidecar. Envoy reads the same test CA's certificates from files (the SDS agent is the
//! `mesh-ca` work); each side reports the other's SPIFFE identity, and the key exchange is
//! the hybrid post-quantum X25519MLKEM768 both ways.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use std::path::Path;
use std::time::Duration;

use lateen_proxy::tls::UpstreamAlpn;
use lateen_test_support::envoy::EnvoyProcess;
use lateen_test_support::envoy_bootstrap::Bootstrap;
use lateen_test_support::test_ca::WorkloadCert;
use lateen_test_support::wait::until_some;
use serde_json::json;
use support::mesh::*;
use support::upstream::Upstream;
use support::{free_port, get, sample};

const ENVOY_ID: &str = "spiffe://cluster.local/ns/default/sa/productpage";

/// Envoy with an mTLS inbound listener before `app` and an outbound listener whose cluster
/// originates Istio's mTLS to `lateen_inbound`.
fn envoy_config(dir: &Path, ports: [u16; 3], app: u16, lateen_inbound: u16) -> String {
    let [inbound, outbound, outbound_tls12] = ports;
    let file = |name: &str| json!({ "filename": dir.join(name) });
    let certificates = json!([{
        "certificate_chain": file("cert-chain.pem"),
        "private_key": file("key.pem"),
    }]);
    let address =
        |port: u16| json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } });
    let hcm = |name: &str, cluster: &str| {
        json!([{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "access_log": [{
                    "name": "envoy.access_loggers.file",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                        "path": dir.join(format!("{name}-access.log")),
                        "log_format": { "text_format_source": { "inline_string":
                            "peer=%DOWNSTREAM_PEER_URI_SAN% upstream_peer=%UPSTREAM_PEER_URI_SAN% code=%RESPONSE_CODE%\n" } },
                    },
                }],
                "route_config": { "virtual_hosts": [{
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": cluster } }],
                }]},
                "http_filters": [{
                    "name": "envoy.filters.http.router",
                    "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
                }],
            },
        }])
    };
    let endpoints = |name: &str, port: u16| json!({ "cluster_name": name, "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": address(port) } }] }] });
    // Envoy's client stops at TLS 1.2 unless told; Istio's ISTIO_MUTUAL clusters allow 1.3.
    let lateen_cluster = |name: &str, max_version: Option<&str>| {
        let tls_params = match max_version {
            Some(version) => json!({ "tls_maximum_protocol_version": version }),
            None => json!({}),
        };
        json!({
            "name": name,
            "type": "STATIC",
            "load_assignment": endpoints(name, lateen_inbound),
            "transport_socket": {
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                    "sni": format!("outbound_.80_._.{SERVER_HOST}"),
                    "common_tls_context": {
                        "tls_params": tls_params,
                        "alpn_protocols": ["istio-http/1.1", "istio"],
                        "tls_certificates": certificates,
                        "validation_context": {
                            "trusted_ca": file("root-cert.pem"),
                            "match_typed_subject_alt_names": [
                                { "san_type": "URI", "matcher": { "exact": SERVER_ID } },
                            ],
                        },
                    },
                },
            },
        })
    };
    let inbound_listener = json!({
        "name": "inbound",
        "address": address(inbound),
        "filter_chains": [{
            "transport_socket": {
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "require_client_certificate": true,
                    "common_tls_context": {
                        "alpn_protocols": ["h2", "http/1.1"],
                        "tls_certificates": certificates,
                        "validation_context": { "trusted_ca": file("root-cert.pem") },
                    },
                },
            },
            "filters": hcm("inbound", "app"),
        }],
    });
    let outbound_listener = |name: &str, port: u16, cluster: &str| {
        json!({
            "name": name,
            "address": address(port),
            "filter_chains": [{ "filters": hcm(name, cluster) }],
        })
    };
    // Each item is JSON on a list line, which Envoy reads as YAML.
    let item = |value: serde_json::Value| format!("  - {value}");
    Bootstrap::new("sidecar~127.0.0.1~productpage-1.default~default.svc.cluster.local")
        .admin(0)
        .listener(&item(inbound_listener))
        .listener(&item(outbound_listener("outbound", outbound, "lateen")))
        .listener(&item(outbound_listener(
            "outbound-tls12",
            outbound_tls12,
            "lateen-tls12",
        )))
        .raw_cluster(&item(
            json!({ "name": "app", "type": "STATIC", "load_assignment": endpoints("app", app) }),
        ))
        .raw_cluster(&item(lateen_cluster("lateen", Some("TLSv1_3"))))
        .raw_cluster(&item(lateen_cluster("lateen-tls12", None)))
        .to_yaml()
}

struct EnvoySide {
    envoy: EnvoyProcess,
    inbound: u16,
    outbound: u16,
    /// Like `outbound`, with Envoy's default TLS 1.2 ceiling.
    outbound_tls12: u16,
    dir: tempfile::TempDir,
    _app: Upstream,
}

impl EnvoySide {
    /// Waits up to 5 s for the `listener`'s access log to have a line containing `text`.
    fn access_log_shows(&self, listener: &str, text: &str) {
        let path = self.dir.path().join(format!("{listener}-access.log"));
        until_some(
            &format!("{text} in Envoy's {listener} access log"),
            Duration::from_secs(5),
            || {
                std::fs::read_to_string(&path)
                    .ok()
                    .filter(|log| log.contains(text))
            },
        );
    }
}

async fn envoy_side(binary: &Path, cert: &WorkloadCert, lateen_inbound: u16) -> EnvoySide {
    let app = Upstream::start("productpage").await;
    let dir = tempfile::tempdir().expect("temp dir");
    cert.write_istio_dir(dir.path()).expect("write certs");
    let (inbound, outbound, outbound_tls12) = (free_port(), free_port(), free_port());
    let config = envoy_config(
        dir.path(),
        [inbound, outbound, outbound_tls12],
        app.address.port(),
        lateen_inbound,
    );
    let envoy = EnvoyProcess::start(binary, dir.path(), &config).expect("envoy");
    EnvoySide {
        envoy,
        inbound,
        outbound,
        outbound_tls12,
        dir,
        _app: app,
    }
}

#[tokio::test]
async fn lateen_proxy_and_envoy_speak_istio_mtls_both_ways() {
    let Some(binary) = lateen_test_support::envoy_or_skip("mtls_envoy") else {
        return;
    };
    let (ca, server_cert, client_cert) = mesh();
    let lateen_server = server_side("strict", &server_cert).await;
    let envoy = envoy_side(&binary, &issue(&ca, ENVOY_ID), lateen_server.inbound.port()).await;

    // Envoy client sidecar → lateen-proxy server sidecar.
    for _ in 0..2 {
        let (status, body) = get(([127, 0, 0, 1], envoy.outbound).into(), "/from-envoy")
            .await
            .expect("request through envoy");
        assert_eq!(status, 200, "{body}\n{}", envoy.envoy.log_text());
    }
    let metrics = lateen_server.proxy.prometheus().await;
    let seen = sample(
        &metrics,
        "istio_requests_total",
        &[
            "connection_security_policy=\"mutual_tls\"",
            &format!("source_principal=\"{ENVOY_ID}\""),
            &format!("destination_principal=\"{SERVER_ID}\""),
        ],
    );
    assert_eq!(seen, Some(2.0), "{metrics}");
    let server_log = lateen_server.proxy.log_text();
    assert!(
        server_log.contains("X25519MLKEM768"),
        "Envoy's handshake did not negotiate X25519MLKEM768:\n{server_log}"
    );
    envoy.access_log_shows("outbound", &format!("upstream_peer={SERVER_ID}"));

    // Envoy's default client (TLS 1.2 at most) is served too.
    let (status, body) = get(([127, 0, 0, 1], envoy.outbound_tls12).into(), "/tls12")
        .await
        .expect("request through envoy over TLS 1.2");
    assert_eq!(status, 200, "{body}\n{}", envoy.envoy.log_text());
    let server_log = lateen_server.proxy.log_text();
    assert!(
        server_log.contains("TLSv1_2"),
        "no TLS 1.2 handshake:\n{server_log}"
    );

    // lateen-proxy client sidecar → Envoy server sidecar.
    let (client, outbound, _certs) = client_side(
        &client_cert,
        ([127, 0, 0, 1], envoy.inbound).into(),
        ENVOY_ID,
    )
    .await;
    let (status, body) = get(outbound, "/from-lateen").await.expect("request");
    assert_eq!(status, 200, "{body}\n{}", client.log_text());
    envoy.access_log_shows("inbound", &format!("peer={CLIENT_ID} "));

    // The key exchange group Envoy 1.40 agrees to with lateen-proxy's TLS client.
    let (mesh_tls, upstream) = tls_client(&client_cert, ENVOY_ID);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", envoy.inbound))
        .await
        .expect("connect");
    let stream =
        lateen_proxy::tls::upstream::connect(&mesh_tls, &upstream, UpstreamAlpn::Http1, tcp)
            .await
            .expect("handshake with envoy");
    assert_eq!(
        stream
            .get_ref()
            .1
            .negotiated_key_exchange_group()
            .map(|group| group.name()),
        Some(rustls::NamedGroup::X25519MLKEM768)
    );
    assert_eq!(request_over(stream, UpstreamAlpn::Http1).await, Ok(200));

    // Envoy refuses a client certificate from another CA.
    let other = lateen_test_support::test_ca::TestCa::new("another mesh").expect("ca");
    let (mesh_tls, upstream) = tls_client(&issue(&other, CLIENT_ID), ENVOY_ID);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", envoy.inbound))
        .await
        .expect("connect");
    let refused =
        match lateen_proxy::tls::upstream::connect(&mesh_tls, &upstream, UpstreamAlpn::Http1, tcp)
            .await
        {
            Ok(stream) => request_over(stream, UpstreamAlpn::Http1).await,
            Err(err) => Err(err.to_string()),
        };
    assert!(refused.is_err(), "Envoy accepted another CA: {refused:?}");
}
