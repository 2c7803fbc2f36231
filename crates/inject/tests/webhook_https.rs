//! The webhook over real HTTPS on 127.0.0.1: a generated certificate for
//! `lateend.istio-system.svc`, a hyper client trusting only the generated CA, and curl.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use lateen_inject::InjectConfig;
use lateen_inject::webhook::{WebhookCert, WebhookState, serve};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

const HOST: &str = "lateend.istio-system.svc";

fn review_body(uid: &str) -> String {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "apps",
            "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
                       "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        }
    })
    .to_string()
}

async fn start() -> (
    std::net::SocketAddr,
    WebhookCert,
    Arc<WebhookState>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let cert = WebhookCert::generate_for_lateend().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = WebhookState::new(InjectConfig::default());
    let server = tokio::spawn(serve(
        listener,
        cert.server_config().unwrap(),
        state.clone(),
    ));
    (addr, cert, state, server)
}

/// A TLS connection to the webhook trusting only `ca_pem`, offering `alpn`.
async fn connect_tls(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector
        .connect(ServerName::try_from(HOST).unwrap(), tcp)
        .await
        .unwrap()
}

async fn post(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    path: &str,
    body: String,
) -> (u16, Vec<u8>) {
    let tls = connect_tls(addr, ca_pem, &[]).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(path)
        .header("host", HOST)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    (
        status,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

#[tokio::test]
async fn https_inject_with_a_client_trusting_the_generated_ca() {
    let (addr, cert, state, server) = start().await;
    let (status, body) = post(addr, &cert.ca_pem, "/inject", review_body("uid-1")).await;
    assert_eq!(status, 200);
    let resp: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(resp["response"]["uid"], "uid-1");
    assert_eq!(resp["response"]["allowed"], true);
    assert_eq!(resp["response"]["patchType"], "JSONPatch");

    let mut opted_out: Value = serde_json::from_str(&review_body("uid-2")).unwrap();
    opted_out["request"]["object"]["metadata"]["annotations"] =
        json!({"sidecar.istio.io/inject": "false"});
    let (status, body) = post(addr, &cert.ca_pem, "/inject/canary", opted_out.to_string()).await;
    assert_eq!(status, 200);
    let resp: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        resp["response"].get("patch").is_none(),
        "the pod opts out with its annotation"
    );

    let (status, body) = post(addr, &cert.ca_pem, "/inject", "{broken".into()).await;
    assert_eq!(status, 200);
    let resp: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(resp["response"]["allowed"], false);

    let (status, _) = post(addr, &cert.ca_pem, "/other", String::new()).await;
    assert_eq!(status, 404);
    let (status, _) = post(addr, &cert.ca_pem, "/validate", review_body("uid-v")).await;
    assert_eq!(status, 404, "no validator: no /validate");

    assert_eq!(state.stats.requests.load(Ordering::Relaxed), 3);
    assert_eq!(state.stats.injected.load(Ordering::Relaxed), 1);
    assert_eq!(state.stats.skipped.load(Ordering::Relaxed), 1);
    assert_eq!(state.stats.malformed.load(Ordering::Relaxed), 1);
    assert!(!cert.ca_bundle().is_empty());
    let metrics = state.stats.istio_metrics();
    assert_eq!(metrics[0], ("sidecar_injection_requests_total", 3));
    assert_eq!(metrics[3], ("sidecar_injection_failure_total", 1));
    server.abort();
}

#[tokio::test]
async fn serve_until_stops_on_shutdown() {
    let cert = WebhookCert::generate_for_lateend().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let state = WebhookState::new(InjectConfig::default());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(lateen_inject::webhook::serve_until(
        listener,
        cert.server_config().unwrap(),
        state,
        async {
            let _ = rx.await;
        },
    ));
    tx.send(()).unwrap();
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
}

#[tokio::test]
async fn curl_with_cacert_gets_a_patch() {
    let Some(curl) = ["/usr/bin/curl", "/bin/curl"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        if std::env::var("LATEEN_REQUIRE_TOOLS").is_ok_and(|v| !v.is_empty()) {
            panic!("curl is required (LATEEN_REQUIRE_TOOLS) but not found");
        }
        eprintln!("NOTICE: curl not found; skipping");
        return;
    };
    let (addr, cert, _state, server) = start().await;
    let dir = common::temp_dir("https-curl");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &cert.ca_pem).unwrap();
    let out = tokio::process::Command::new(curl)
        .arg("--silent")
        .arg("--show-error")
        .arg("--max-time")
        .arg("20")
        .arg("--cacert")
        .arg(&ca)
        .arg("--resolve")
        .arg(format!("{HOST}:{}:127.0.0.1", addr.port()))
        .arg("-H")
        .arg("content-type: application/json")
        .arg("--data-binary")
        .arg(review_body("uid-curl"))
        .arg(format!("https://{HOST}:{}/inject", addr.port()))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resp: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resp["response"]["uid"], "uid-curl");
    assert_eq!(resp["response"]["patchType"], "JSONPatch");
    server.abort();
}

#[test]
fn pem_files_load_and_a_bad_key_is_refused() {
    let cert = WebhookCert::generate(&["localhost".to_string()]).unwrap();
    let dir = common::temp_dir("pem-files");
    let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&c, &cert.cert_chain_pem).unwrap();
    std::fs::write(&k, &cert.key_pem).unwrap();
    let loaded = WebhookCert::from_pem_files(&c, &k, None).unwrap();
    assert!(loaded.server_config().is_ok());
    std::fs::write(&k, "garbage").unwrap();
    let err = WebhookCert::from_pem_files(&c, &k, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("tls.key"), "{err}");
}

/// `/validate` with a validator plugged in: the verdict travels back in the review; istiod's
/// HTTP errors for an empty body (400) and a wrong content type (415).
#[tokio::test]
async fn https_validate_with_a_plugged_in_validator() {
    use lateen_inject::webhook::{AdmissionRequest, ConfigValidator, Verdict};
    let cert = WebhookCert::generate_for_lateend().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let validator: Arc<dyn ConfigValidator> = Arc::new(|r: &AdmissionRequest<'_>| {
        if r.name == "bad" {
            Verdict::Deny {
                reason: "invalid_resource",
                message: format!("configuration is invalid: {} is bad", r.kind.kind),
            }
        } else {
            Verdict::allow()
        }
    });
    let state = WebhookState::build(
        InjectConfig::default(),
        lateen_inject::native::NativeSidecars::default(),
        Some(validator),
    );
    let server = tokio::spawn(serve(
        listener,
        cert.server_config().unwrap(),
        state.clone(),
    ));
    let body = |name: &str| {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": format!("uid-{name}"), "name": name, "namespace": "default",
                        "kind": {"group": "networking.istio.io", "version": "v1", "kind": "Gateway"},
                        "operation": "CREATE", "object": {"metadata": {"name": name}}},
        })
        .to_string()
    };
    let (status, out) = post(addr, &cert.ca_pem, "/validate", body("bad")).await;
    assert_eq!(status, 200);
    let resp: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(resp["response"]["uid"], "uid-bad");
    assert_eq!(resp["response"]["allowed"], false);
    assert_eq!(
        resp["response"]["status"]["message"],
        "configuration is invalid: Gateway is bad"
    );
    let (status, out) = post(addr, &cert.ca_pem, "/validate/", body("good")).await;
    assert_eq!(status, 200);
    let resp: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(resp["response"]["allowed"], true);
    let (status, _) = post(addr, &cert.ca_pem, "/validate", String::new()).await;
    assert_eq!(status, 400);
    let v = &state.validation_stats;
    assert_eq!(v.passed.load(Ordering::Relaxed), 1);
    assert_eq!(v.failed.load(Ordering::Relaxed), 1);
    assert_eq!(v.http_error.load(Ordering::Relaxed), 1);
    server.abort();
}

/// The status an HTTP/2 POST of `body` to `/inject` gets (`Err`: the stream was reset
/// without one).
async fn post_h2<B>(addr: std::net::SocketAddr, ca_pem: &str, body: B) -> Result<u16, String>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync,
{
    let tls = connect_tls(addr, ca_pem, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = http::Request::post(format!("https://{HOST}/inject"))
        .header("content-type", "application/json")
        .body(body)
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(20), sender.send_request(req))
        .await
        .map_err(|_| "no answer in 20 s".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    Ok(resp.status().as_u16())
}

/// The status curl gets for a POST of `file` over `version` (`--http2`, `--http1.1`); `None`
/// without curl.
async fn curl_post_status(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    file: &std::path::Path,
    version: &str,
) -> Option<String> {
    let curl = ["/usr/bin/curl", "/bin/curl"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let out = tokio::process::Command::new(curl)
        .args([
            "--silent",
            "--show-error",
            "--max-time",
            "20",
            "--output",
            "/dev/null",
        ])
        .args(["--write-out", "%{http_code} %{http_version}", version])
        .arg("--cacert")
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{HOST}:{}:127.0.0.1", addr.port()))
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(format!("@{}", file.display()))
        .arg(format!("https://{HOST}:{}/inject", addr.port()))
        .output()
        .await
        .ok()?;
    Some(format!(
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// 17 MiB, over the webhook's 16 MiB limit.
const OVER_LIMIT: usize = 17 * 1024 * 1024;

#[tokio::test]
async fn an_over_large_http2_body_gets_413_as_on_http1() {
    let (addr, cert, _state, server) = start().await;
    let (status, _) = post(addr, &cert.ca_pem, "/inject", "x".repeat(OVER_LIMIT)).await;
    assert_eq!(status, 413, "HTTP/1.1");
    // With a content-length, and streamed without one.
    let sized = Full::new(Bytes::from(vec![b'x'; OVER_LIMIT]));
    assert_eq!(
        post_h2(addr, &cert.ca_pem, sized).await,
        Ok(413),
        "HTTP/2, sized"
    );
    let chunks = (0..OVER_LIMIT / (64 * 1024)).map(|_| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![
            b'x';
            64 * 1024
        ])))
    });
    let streamed = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
    assert_eq!(
        post_h2(addr, &cert.ca_pem, streamed).await,
        Ok(413),
        "HTTP/2, streamed"
    );
    // curl (nghttp2) reported a stream error instead of the 413 over HTTP/2.
    let dir = common::temp_dir("https-413");
    let (ca, big) = (dir.join("ca.pem"), dir.join("big.json"));
    std::fs::write(&ca, &cert.ca_pem).unwrap();
    std::fs::write(&big, vec![b'x'; OVER_LIMIT]).unwrap();
    for (version, expected) in [("--http2", "413 2"), ("--http1.1", "413 1.1")] {
        match curl_post_status(addr, &ca, &big, version).await {
            Some(answer) => assert_eq!(answer, format!("{expected} "), "curl {version}"),
            None if std::env::var("LATEEN_REQUIRE_TOOLS").is_ok_and(|v| !v.is_empty()) => {
                panic!("curl is required (LATEEN_REQUIRE_TOOLS) but not found")
            }
            None => eprintln!("NOTICE: curl not found; skipping its part"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    server.abort();
}
