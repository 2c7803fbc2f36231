//! Mesh mutual TLS between two lateen-proxies, on real sockets: the client sidecar's
//! `tls` cluster originates Istio's mTLS, the server sidecar's inbound listener terminates it
//! (STRICT / PERMISSIVE), a relay in the path reads the wire, and the destination's metrics
//! carry `mutual_tls` and both principals. Certificates come from a test CA with SPIFFE
//! identities, as Istio's file-mounted certificates (`--cert-dir`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use lateen_proxy::tls::UpstreamAlpn;
use lateen_test_support::relay::{Relay, is_client_hello};
use lateen_test_support::test_ca::{TestCa, Validity, WorkloadCert};
use support::mesh::*;
use support::{get, sample};

#[tokio::test]
async fn strict_mtls_between_two_proxies_is_tls_on_the_wire_with_both_principals() {
    let (_ca, server_cert, client_cert) = mesh();
    let server = server_side("strict", &server_cert).await;
    let relay = Relay::start(server.inbound).await.expect("relay");
    let (client, outbound, _certs) = client_side(&client_cert, relay.address, SERVER_ID).await;

    for _ in 0..3 {
        let (status, body) = get(outbound, "/secret-path-marker").await.expect("request");
        assert_eq!(status, 200, "{body}\n{}", client.log_text());
    }

    let wire = relay.client_bytes();
    assert!(!wire.is_empty(), "no connection crossed the relay");
    for connection in &wire {
        assert!(
            is_client_hello(connection),
            "not a TLS ClientHello: {:?}",
            &connection[..connection.len().min(16)]
        );
        assert!(
            !connection
                .windows(b"secret-path-marker".len())
                .any(|w| w == b"secret-path-marker"),
            "plaintext request on the wire"
        );
    }

    let metrics = server.proxy.prometheus().await;
    let requests = sample(
        &metrics,
        "istio_requests_total",
        &[
            "reporter=\"destination\"",
            "connection_security_policy=\"mutual_tls\"",
            &format!("source_principal=\"{CLIENT_ID}\""),
            &format!("destination_principal=\"{SERVER_ID}\""),
            "response_code=\"200\"",
        ],
    );
    assert_eq!(requests, Some(3.0), "{metrics}");
}

#[tokio::test]
async fn strict_refuses_plaintext_and_permissive_accepts_both() {
    let (_ca, server_cert, client_cert) = mesh();

    let strict = server_side("strict", &server_cert).await;
    let refused = get(strict.inbound, "/plain").await;
    assert!(refused.is_err(), "STRICT answered plaintext: {refused:?}");
    let stats = get(strict.proxy.admin, "/stats").await.expect("stats").1;
    assert!(stats.contains("lateen.no_filter_chain_match: 1"), "{stats}");

    let permissive = server_side("permissive", &server_cert).await;
    let (client, outbound, _certs) = client_side(&client_cert, permissive.inbound, SERVER_ID).await;
    let (status, body) = get(permissive.inbound, "/plain").await.expect("plaintext");
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(outbound, "/mtls").await.expect("mtls");
    assert_eq!(status, 200, "{body}\n{}", client.log_text());
    let metrics = permissive.proxy.prometheus().await;
    for policy in ["none", "mutual_tls"] {
        let count = sample(
            &metrics,
            "istio_requests_total",
            &[&format!("connection_security_policy=\"{policy}\"")],
        );
        assert_eq!(count, Some(1.0), "{policy}: {metrics}");
    }
}

#[tokio::test]
async fn certificates_from_another_ca_expired_or_of_the_wrong_identity_are_refused() {
    let (ca, server_cert, _) = mesh();
    let other_ca = TestCa::new("another mesh").expect("ca");
    let server = server_side("strict", &server_cert).await;
    let connect = |cert: WorkloadCert, expected: &'static str, alpn: UpstreamAlpn| async move {
        let (mesh, upstream) = tls_client(&cert, expected);
        let tcp = tokio::net::TcpStream::connect(server.inbound)
            .await
            .expect("connect");
        let tls = lateen_proxy::tls::upstream::connect(&mesh, &upstream, alpn, tcp).await;
        match tls {
            // TLS 1.3: a refused client certificate shows on the first read.
            Ok(stream) => request_over(stream, alpn).await,
            Err(err) => Err(err.to_string()),
        }
    };

    // The mesh's own certificate, both HTTP versions by ALPN.
    let good = issue(&ca, CLIENT_ID);
    assert_eq!(connect(good, SERVER_ID, UpstreamAlpn::Http1).await, Ok(200));
    let good = issue(&ca, CLIENT_ID);
    assert_eq!(connect(good, SERVER_ID, UpstreamAlpn::Http2).await, Ok(200));

    // Client certificates the server must refuse.
    let foreign = issue(&other_ca, CLIENT_ID);
    let err = connect(foreign, SERVER_ID, UpstreamAlpn::Http1).await;
    assert!(err.is_err(), "another CA's client accepted: {err:?}");
    let expired = ca
        .workload_cert(CLIENT_ID, Validity::Expired)
        .expect("cert");
    let err = connect(expired, SERVER_ID, UpstreamAlpn::Http1).await;
    assert!(err.is_err(), "an expired client accepted: {err:?}");

    // The server is not who the control plane says the destination is.
    let good = issue(&ca, CLIENT_ID);
    let err = connect(
        good,
        "spiffe://cluster.local/ns/default/sa/reviews",
        UpstreamAlpn::Http1,
    )
    .await
    .expect_err("wrong server identity accepted");
    assert!(err.contains("sa/httpbin"), "{err}");

    // A server with a certificate from another CA, through a client sidecar: 503, UF.
    let impostor_cert = issue(&other_ca, SERVER_ID);
    let impostor = server_side("strict", &impostor_cert).await;
    let client_cert = issue(&ca, CLIENT_ID);
    let (client, outbound, _certs) = client_side(&client_cert, impostor.inbound, SERVER_ID).await;
    let (status, body) = get(outbound, "/").await.expect("request");
    assert_eq!(status, 503, "{body}");
    let metrics = client.prometheus().await;
    assert!(
        sample(&metrics, "istio_requests_total", &["response_flags=\"UF\""]).is_some(),
        "{metrics}"
    );
    // Another CA's client, the expired one, and the client that refused the server.
    let stats = get(server.proxy.admin, "/stats").await.expect("stats").1;
    assert!(stats.contains("lateen.ssl_connection_error: 3"), "{stats}");
    assert!(stats.contains("lateen.ssl_handshake: 2"), "{stats}");
}

#[tokio::test]
async fn the_hybrid_post_quantum_group_is_negotiated_between_lateen_proxies() {
    let (_ca, server_cert, client_cert) = mesh();
    let server = server_side("strict", &server_cert).await;
    let (mesh, upstream) = tls_client(&client_cert, SERVER_ID);
    let tcp = tokio::net::TcpStream::connect(server.inbound)
        .await
        .expect("connect");
    let stream = lateen_proxy::tls::upstream::connect(&mesh, &upstream, UpstreamAlpn::Http1, tcp)
        .await
        .expect("handshake");
    let connection = stream.get_ref().1;
    assert_eq!(
        connection.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(
        connection
            .negotiated_key_exchange_group()
            .map(|group| group.name()),
        Some(rustls::NamedGroup::X25519MLKEM768)
    );
    assert_eq!(request_over(stream, UpstreamAlpn::Http1).await, Ok(200));
}

#[tokio::test]
async fn auto_mtls_speaks_tls_to_sidecars_and_plaintext_to_the_rest() {
    let (_ca, server_cert, client_cert) = mesh();
    let sidecar = server_side("strict", &server_cert).await;
    let without_sidecar = support::upstream::Upstream::start("legacy").await;
    let endpoints = format!(
        "      - address: {}\n        tls_mode: istio\n      - address: {}\n",
        sidecar.inbound, without_sidecar.address
    );
    let (client, outbound, _certs) =
        client_side_with(&client_cert, &endpoints, SERVER_ID, true).await;
    // Round robin: both endpoints get requests; the STRICT sidecar only answers mTLS.
    for _ in 0..4 {
        let (status, body) = get(outbound, "/auto").await.expect("request");
        assert_eq!(status, 200, "{body}\n{}", client.log_text());
    }
    assert_eq!(
        without_sidecar
            .hits
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    let metrics = sidecar.proxy.prometheus().await;
    let mtls = sample(
        &metrics,
        "istio_requests_total",
        &["connection_security_policy=\"mutual_tls\""],
    );
    assert_eq!(mtls, Some(2.0), "{metrics}");
}

#[tokio::test]
async fn a_rotated_certificate_serves_new_handshakes_and_open_connections_stay() {
    let (ca, server_cert, client_cert) = mesh();
    let server = server_side("strict", &server_cert).await;
    let (mesh_tls, upstream) = tls_client(&client_cert, SERVER_ID);
    let leaf_of = |stream: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| leaf.as_ref().to_vec())
    };
    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(server.inbound)
            .await
            .expect("connect");
        lateen_proxy::tls::upstream::connect(&mesh_tls, &upstream, UpstreamAlpn::Http1, tcp)
            .await
            .expect("handshake")
    };
    let open = connect().await;
    let first_leaf = leaf_of(&open);
    let mut kept = kept_alive(open).await;
    assert_eq!(kept_request(&mut kept).await, 200);

    // Rotate: the same identity, a new key and certificate.
    issue(&ca, SERVER_ID)
        .write_istio_dir(server.certs.path())
        .expect("rotate");
    let mut rotated = false;
    for _ in 0..50 {
        if leaf_of(&connect().await) != first_leaf {
            rotated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        rotated,
        "new handshakes still get the old certificate\n{}",
        server.proxy.log_text()
    );
    // The connection made before the rotation still serves requests.
    assert_eq!(kept_request(&mut kept).await, 200);
}

#[tokio::test]
async fn without_a_certificate_the_proxy_warns_and_refuses_tls_without_failing() {
    let (_ca, _, client_cert) = mesh();
    let mut server = server_side_with("permissive", None).await;
    assert!(
        server.proxy.log_text().contains("no workload certificate"),
        "{}",
        server.proxy.log_text()
    );
    let (mesh_tls, upstream) = tls_client(&client_cert, SERVER_ID);
    let tcp = tokio::net::TcpStream::connect(server.inbound)
        .await
        .expect("connect");
    let refused =
        lateen_proxy::tls::upstream::connect(&mesh_tls, &upstream, UpstreamAlpn::Http1, tcp).await;
    assert!(refused.is_err(), "TLS accepted without a certificate");
    // Plaintext on the PERMISSIVE port still works, and the proxy is alive.
    let (status, _) = get(server.inbound, "/plain").await.expect("plaintext");
    assert_eq!(status, 200);
    assert!(server.proxy.try_wait_alive());
}

/// #16 item 4: `x-envoy-peer-metadata` names the source in the metrics only when the caller
/// is authenticated. On a proxy with a certificate, an mTLS client's metadata is used, and a
/// plaintext caller's forged header (PERMISSIVE) gives Istio's `unknown` source and no
/// series of its own; the header is removed either way. A proxy without any certificate
/// source (a mesh without mTLS) still takes it.
#[tokio::test]
async fn peer_metadata_names_the_source_only_for_an_authenticated_peer() {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use lateen_proxy::metrics::PeerLabels;

    let forged = PeerLabels::new(
        Some("forged-v1"),
        Some("elsewhere"),
        Some("forged"),
        Some("v1"),
        None,
        None,
        None,
        None,
    );
    let (metadata, id) =
        lateen_proxy::http::peer::encode(&forged, Some("forged")).expect("peer metadata");
    let forged_request = || {
        http::Request::get("/forged")
            .header("host", "test")
            .header("x-envoy-peer-metadata", metadata.clone())
            .header("x-envoy-peer-metadata-id", id.clone())
            .body(Full::new(Bytes::new()))
            .expect("request")
    };

    let (_ca, server_cert, client_cert) = mesh();
    let server = server_side("permissive", &server_cert).await;
    let (client, outbound, _certs) = client_side(&client_cert, server.inbound, SERVER_ID).await;
    let (status, body) = get(outbound, "/mtls").await.expect("mtls");
    assert_eq!(status, 200, "{body}\n{}", client.log_text());
    let (status, _, body) = support::send(server.inbound, forged_request())
        .await
        .expect("plaintext");
    assert_eq!(status, 200);
    assert!(
        !String::from_utf8_lossy(&body).contains("x-envoy-peer-metadata"),
        "the app never sees the header: {body:?}"
    );
    let metrics = server.proxy.prometheus().await;
    let count = |labels: &[&str]| sample(&metrics, "istio_requests_total", labels);
    assert_eq!(
        count(&[
            "connection_security_policy=\"mutual_tls\"",
            "source_workload=\"sleep-v1\"",
            "source_app=\"sleep\"",
        ]),
        Some(1.0),
        "an authenticated caller's metadata is used: {metrics}"
    );
    assert_eq!(
        count(&[
            "connection_security_policy=\"none\"",
            "source_workload=\"unknown\"",
            "source_workload_namespace=\"unknown\"",
        ]),
        Some(1.0),
        "a plaintext caller's is not: {metrics}"
    );
    assert!(!metrics.contains("forged"), "{metrics}");

    // No certificate source at all: nobody can be authenticated, the header is taken.
    let plain = server_side_with("disable", None).await;
    let (status, _, _) = support::send(plain.inbound, forged_request())
        .await
        .expect("plaintext");
    assert_eq!(status, 200);
    let metrics = plain.proxy.prometheus().await;
    assert_eq!(
        sample(
            &metrics,
            "istio_requests_total",
            &["source_workload=\"forged-v1\""]
        ),
        Some(1.0),
        "{metrics}"
    );
}
