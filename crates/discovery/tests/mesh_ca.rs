//! lateend's mesh CA through Istio's certificate API on its TLS port (15012's listener), the
//! built binary as a child process, a real gRPC client over TLS trusting the root lateend
//! wrote out: bootstrap tokens on one machine, the CA kept across a restart, a plugged-in CA
//! with an intermediate, refusals with the right gRPC codes, and on the real test API server
//! TokenReview-authenticated service accounts (for certificates and for ADS streams on the
//! same port) and the CA kept in `istio-ca-secret`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::path::Path;
use std::time::Duration;

use common::lateend::{Local, local, start_lateend};
use common::wait_until;
use lateen_identity::{CaFiles, CertificateRequest, Identity, WorkloadCertificate};
use lateen_test_support::kube::TestCluster;
use lateen_xds::ca_service::{IstioCertificateRequest, create_certificate};
use lateen_xds::client::{TlsSettings, Transport};
use lateen_xds::pb::envoy::service::discovery::v3::DiscoveryResponse;
use lateen_xds::tonic::{Code, Status};

const LATEEND_NAME: &str = "lateend.istio-system.svc";

/// A TLS channel to lateend's TLS port `port`, trusting `root`.
async fn channel(port: u16, root: &Path) -> lateen_xds::tonic::transport::Channel {
    let transport = Transport::Tls(TlsSettings {
        root_cert: root.to_path_buf(),
        server_name: LATEEND_NAME.into(),
    });
    lateen_xds::client::transport::connect(
        &transport,
        &format!("127.0.0.1:{port}"),
        Duration::from_secs(5),
    )
    .await
    .expect("TLS connection to lateend")
}

/// Opens an ADS stream on lateend's TLS port with `token`, as a sidecar of `shop` whose
/// first request names its node; `Ok` (the responses, held open) once lateend answered with
/// the stream's headers.
async fn open_ads(
    port: u16,
    root: &Path,
    token: &str,
) -> Result<lateen_xds::tonic::Streaming<DiscoveryResponse>, Status> {
    use lateen_xds::pb::envoy::config::core::v3::Node;
    use lateen_xds::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use lateen_xds::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
    use tokio_stream::StreamExt;
    let first = DiscoveryRequest {
        node: Some(Node {
            id: "sidecar~127.0.92.1~reviews-1.shop~shop.svc.cluster.local".into(),
            ..Default::default()
        }),
        type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".into(),
        ..Default::default()
    };
    // The request stream stays open, as a proxy's does.
    let requests = tokio_stream::iter(vec![first]).chain(tokio_stream::pending());
    let mut request = lateen_xds::tonic::Request::new(requests);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII token"),
    );
    AggregatedDiscoveryServiceClient::new(channel(port, root).await)
        .stream_aggregated_resources(request)
        .await
        .map(lateen_xds::tonic::Response::into_inner)
}

/// Asks lateend (TLS port `port`, trusting `root`) for a certificate with `token`.
async fn call(
    port: u16,
    root: &Path,
    token: Option<&str>,
    csr: String,
    validity_duration: i64,
) -> Result<Vec<String>, Status> {
    let channel = channel(port, root).await;
    let authorization = token.map(|t| format!("Bearer {t}").parse().expect("ASCII token"));
    create_certificate(
        channel,
        authorization,
        IstioCertificateRequest {
            csr,
            validity_duration,
        },
    )
    .await
    .map(|r| r.cert_chain)
}

/// A certificate for `identity` with `token`, as a proxy's CA client gets it.
async fn certificate(
    port: u16,
    root: &Path,
    token: &str,
    identity: &Identity,
    ttl: i64,
) -> Result<(Vec<String>, WorkloadCertificate), Status> {
    let request = CertificateRequest::generate(identity).expect("CSR");
    let chain = call(port, root, Some(token), request.csr_pem.clone(), ttl).await?;
    let cert = request
        .into_certificate(&chain, Vec::new())
        .expect("a usable chain");
    Ok((chain, cert))
}

fn id(ns: &str, sa: &str) -> Identity {
    Identity::new("cluster.local", ns, sa)
}

fn token(tokens: &Path, ns: &str, sa: &str) -> String {
    std::fs::read_to_string(tokens.join(ns).join(sa).join("istio-token")).expect("token file")
}

#[tokio::test]
async fn bootstrap_tokens_get_their_own_identity_and_nothing_else() {
    let work = tempfile::tempdir().expect("tempdir");
    let Local {
        lateend,
        root,
        tokens,
        ..
    } = local(work.path(), &[]).await;
    let reviews = token(&tokens, "default", "reviews");
    let port = lateend.xds_tls;

    let (chain, cert) = certificate(port, &root, &reviews, &id("default", "reviews"), 0)
        .await
        .expect("own identity");
    assert_eq!(chain.len(), 2, "leaf and root");
    assert_eq!(
        chain[1],
        std::fs::read_to_string(&root).expect("root"),
        "the response's root is the one lateend serves xDS with"
    );
    assert_eq!(cert.identity, id("default", "reviews"));
    assert_eq!(cert.lifetime(), Duration::from_secs(24 * 3600));

    // Another identity's CSR with reviews' token: PERMISSION_DENIED, logged.
    let foreign = CertificateRequest::generate(&id("default", "ratings")).expect("CSR");
    let status = call(port, &root, Some(&reviews), foreign.csr_pem, 0)
        .await
        .expect_err("foreign identity");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let log = lateend.process.log();
    assert!(
        log.lines().any(|l| l.contains("does not own")
            && l.contains("spiffe://cluster.local/ns/default/sa/reviews")
            && l.contains("spiffe://cluster.local/ns/default/sa/ratings")),
        "a log line names caller and requested identity:\n{}",
        lateend.process.log_tail()
    );

    // Garbage and oversized CSRs: INVALID_ARGUMENT.
    for csr in ["garbage".to_string(), "A".repeat(70 * 1024)] {
        let status = call(port, &root, Some(&reviews), csr, 0)
            .await
            .expect_err("bad CSR");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    // A TTL over the maximum, or negative: INVALID_ARGUMENT.
    for ttl in [-1, 91 * 24 * 3600] {
        let csr = CertificateRequest::generate(&id("default", "reviews"))
            .expect("CSR")
            .csr_pem;
        let status = call(port, &root, Some(&reviews), csr, ttl)
            .await
            .expect_err("bad TTL");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    // A bad token, or none: UNAUTHENTICATED.
    for bad in [Some("not-a-token"), None] {
        let csr = CertificateRequest::generate(&id("default", "reviews"))
            .expect("CSR")
            .csr_pem;
        let status = call(port, &root, bad, csr, 0).await.expect_err("bad token");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    // Nothing else was affected: both workloads still get theirs, with a requested TTL.
    let ratings = token(&tokens, "default", "ratings");
    let (_, cert) = certificate(port, &root, &ratings, &id("default", "ratings"), 20)
        .await
        .expect("ratings after the refusals");
    assert_eq!(cert.lifetime(), Duration::from_secs(20));
    certificate(port, &root, &reviews, &id("default", "reviews"), 0)
        .await
        .expect("reviews after the refusals");
}

#[tokio::test]
async fn the_ca_and_tokens_survive_a_restart() {
    let work = tempfile::tempdir().expect("tempdir");
    let first = local(work.path(), &[]).await;
    let root_before = std::fs::read_to_string(&first.root).expect("root");
    let reviews = token(&first.tokens, "default", "reviews");
    drop(first.lateend);
    assert!(CaFiles::present(&work.path().join("ca")));

    let second = local(work.path(), &[]).await;
    assert_eq!(
        std::fs::read_to_string(&second.root).expect("root"),
        root_before,
        "the same root after a restart"
    );
    assert_eq!(token(&second.tokens, "default", "reviews"), reviews);
    let (chain, _) = certificate(
        second.lateend.xds_tls,
        &second.root,
        &reviews,
        &id("default", "reviews"),
        0,
    )
    .await
    .expect("the old token still works");
    assert_eq!(chain[1], root_before);
}

#[tokio::test]
async fn a_plugged_in_ca_signs_with_its_intermediate() {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let work = tempfile::tempdir().expect("tempdir");
    let ca_params = |cn: &str| {
        let mut p = CertificateParams::default();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    let root_key = KeyPair::generate().expect("key");
    let root = ca_params("Root CA").self_signed(&root_key).expect("root");
    let root_issuer = Issuer::new(ca_params("Root CA"), root_key);
    let mid_key = KeyPair::generate().expect("key");
    let mid = ca_params("Intermediate CA")
        .signed_by(&mid_key, &root_issuer)
        .expect("intermediate");
    let cacerts = work.path().join("cacerts");
    CaFiles {
        ca_cert_pem: mid.pem(),
        ca_key_pem: mid_key.serialize_pem(),
        cert_chain_pem: mid.pem(),
        root_cert_pem: root.pem(),
    }
    .write_dir(&cacerts)
    .expect("cacerts");

    let cacerts_arg = cacerts.to_string_lossy().to_string();
    let Local {
        lateend,
        root: served_root,
        tokens,
        ..
    } = local(work.path(), &["--cacerts-dir", &cacerts_arg]).await;
    assert_eq!(
        std::fs::read_to_string(&served_root).expect("root"),
        root.pem(),
        "lateend's serving certificate chains to the plugged-in root"
    );
    let reviews = token(&tokens, "default", "reviews");
    let (chain, cert) = certificate(
        lateend.xds_tls,
        &served_root,
        &reviews,
        &id("default", "reviews"),
        0,
    )
    .await
    .expect("certificate");
    assert_eq!(chain.len(), 3, "leaf, intermediate, root");
    assert_eq!(chain[1], mid.pem());
    assert_eq!(chain[2], root.pem());
    assert_eq!(cert.chain.len(), 2);
    assert!(
        !work.path().join("ca").exists(),
        "no self-signed root is made when a CA is plugged in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_review_accepts_the_service_account_and_refuses_other_identities() {
    let Some(cluster) = TestCluster::shared("mesh_ca TokenReview") else {
        return;
    };
    cluster
        .create_namespace("istio-system", &[])
        .await
        .expect("istio-system");
    cluster
        .create_namespace("shop", &[])
        .await
        .expect("namespace");
    cluster
        .apply("apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: reviews, namespace: shop}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: ratings, namespace: shop}\n")
        .expect("service accounts");
    let reviews = cluster
        .service_account_token("shop", "reviews", &["istio-ca"])
        .expect("token");
    let wrong_audience = cluster
        .service_account_token("shop", "reviews", &["some-other-api"])
        .expect("token");

    let work = tempfile::tempdir().expect("tempdir");
    let start = || async {
        let config = work.path().join("config");
        std::fs::create_dir_all(&config).expect("config");
        let root = work.path().join("root-cert.pem");
        let args: Vec<std::ffi::OsString> = vec![
            "--kubeconfig".into(),
            cluster.kubeconfig().into(),
            "--cacerts-dir".into(),
            work.path().join("no-cacerts").into(),
            "--webhook-ca-out".into(),
            root.clone().into(),
        ];
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        (start_lateend(&config, work.path(), &refs).await, root)
    };
    let (lateend, root) = start().await;
    let port = lateend.xds_tls;
    let (_, cert) = certificate(port, &root, &reviews, &id("shop", "reviews"), 0)
        .await
        .expect("the service account's own identity");
    assert_eq!(cert.identity, id("shop", "reviews"));

    let foreign = CertificateRequest::generate(&id("shop", "ratings")).expect("CSR");
    let status = call(port, &root, Some(&reviews), foreign.csr_pem, 0)
        .await
        .expect_err("another service account's identity");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    for bad in [wrong_audience.as_str(), "eyJhbGciOiJub25lIn0.e30.x"] {
        let csr = CertificateRequest::generate(&id("shop", "reviews"))
            .expect("CSR")
            .csr_pem;
        let status = call(port, &root, Some(bad), csr, 0)
            .await
            .expect_err("refused token");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
        // ADS on the same port checks the token with the same TokenReview.
        let status = open_ads(port, &root, bad)
            .await
            .expect_err("refused ADS stream");
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    let stream = open_ads(port, &root, &reviews)
        .await
        .expect("ADS with the service account's token");
    wait_until("the ADS stream known as shop/reviews", || async {
        lateend.process.log().lines().any(|l| {
            l.contains("proxy connected")
                && l.contains("verified=\"spiffe://cluster.local/ns/shop/sa/reviews\"")
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", lateend.process.log_tail()));
    drop(stream);

    // The root lives in istio-ca-secret: a restarted lateend serves and signs with it.
    let secret = cluster
        .kubectl_ok(
            &[
                "get",
                "secret",
                "istio-ca-secret",
                "-n",
                "istio-system",
                "-o",
                "jsonpath={.type}",
            ],
            None,
        )
        .expect("istio-ca-secret");
    assert_eq!(secret, "istio.io/ca-root");
    let root_before = std::fs::read_to_string(&root).expect("root");
    drop(lateend);
    let (again, root) = start().await;
    assert_eq!(std::fs::read_to_string(&root).expect("root"), root_before);
    let (chain, _) = certificate(again.xds_tls, &root, &reviews, &id("shop", "reviews"), 0)
        .await
        .expect("after restart");
    assert_eq!(chain[1], root_before);
}

/// lateen-proxy's CA client against lateend with a 6 s TTL: the first certificate, then new
/// ones (new serials, new keys) at about half the lifetime, each before the previous expires.
#[tokio::test]
async fn the_proxy_ca_client_rotates_before_expiry() {
    use lateen_proxy::xds::ca_client::{CaClientConfig, spawn};
    let work = tempfile::tempdir().expect("tempdir");
    let setup = local(work.path(), &[]).await;
    let (mut certs, _task) = spawn(CaClientConfig {
        address: format!("127.0.0.1:{}", setup.lateend.xds_tls),
        transport: Transport::Tls(TlsSettings {
            root_cert: setup.root.clone(),
            server_name: LATEEND_NAME.into(),
        }),
        token: Some(lateen_xds::client::TokenFile {
            path: setup.tokens.join("default/reviews/istio-token"),
            required: true,
        }),
        identity: id("default", "reviews"),
        ttl: Some(Duration::from_secs(6)),
        backoff: lateen_xds::Backoff::new(Duration::from_millis(50), Duration::from_millis(500)),
        connect_timeout: Duration::from_secs(5),
    });
    let mut seen: Vec<std::sync::Arc<WorkloadCertificate>> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 3 {
        tokio::time::timeout_at(deadline, certs.changed())
            .await
            .expect("three certificates within 20 s")
            .expect("client running");
        let now = std::time::SystemTime::now();
        let Some(cert) = certs.borrow_and_update().clone() else {
            continue;
        };
        assert_eq!(cert.identity, id("default", "reviews"));
        assert_eq!(cert.lifetime(), Duration::from_secs(6));
        if let Some(previous) = seen.last() {
            assert!(
                now < previous.not_after,
                "renewed before the previous certificate expired (no gap)"
            );
            assert_ne!(previous.chain[0], cert.chain[0], "a new certificate");
            let renewed_after = now.duration_since(previous.not_before).unwrap_or_default();
            assert!(
                renewed_after >= Duration::from_millis(2500)
                    && renewed_after <= Duration::from_millis(4500),
                "renewed at about half the lifetime: {renewed_after:?}"
            );
        }
        seen.push(cert);
    }
    let serials: std::collections::BTreeSet<Vec<u8>> = seen
        .iter()
        .map(|c| {
            use x509_parser::prelude::*;
            let (_, leaf) = X509Certificate::from_der(c.chain[0].as_ref()).expect("leaf");
            leaf.raw_serial().to_vec()
        })
        .collect();
    assert_eq!(serials.len(), 3, "three serials");
}
