//! Mesh mTLS fixtures shared by the mTLS tests: a test CA's SPIFFE certificates, a server
//! sidecar (inbound listener in a PeerAuthentication mode before an echo app), a client
//! sidecar (a `tls` cluster), and the product's own TLS client in the test process.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lateen_identity::WorkloadCertificate;
use lateen_proxy::tls::{MeshTls, UpstreamAlpn, UpstreamTlsRt};
use lateen_test_support::test_ca::{TestCa, Validity, WorkloadCert};

use super::upstream::Upstream;
use super::{Ports, ProxyProcess, free_port};

pub const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/sleep";
pub const SERVER_ID: &str = "spiffe://cluster.local/ns/default/sa/httpbin";
pub const SERVER_HOST: &str = "httpbin.default.svc.cluster.local";

/// A current workload certificate for `identity` from `ca`.
pub fn issue(ca: &TestCa, identity: &str) -> WorkloadCert {
    ca.workload_cert(identity, Validity::Current).expect("cert")
}

/// A mesh CA and the server's and client's certificates from it.
pub fn mesh() -> (TestCa, WorkloadCert, WorkloadCert) {
    let ca = TestCa::new("mesh root").expect("ca");
    let server = issue(&ca, SERVER_ID);
    let client = issue(&ca, CLIENT_ID);
    (ca, server, client)
}

/// The server sidecar: an inbound listener in `mode` in front of an echo app.
pub struct ServerSide {
    pub proxy: ProxyProcess,
    pub inbound: SocketAddr,
    _app: Upstream,
    /// The server's file-mounted certificates (`--cert-dir`).
    pub certs: tempfile::TempDir,
}

pub async fn server_side(mode: &str, cert: &WorkloadCert) -> ServerSide {
    server_side_with(mode, Some(cert)).await
}

/// [`server_side`], without `--cert-dir` when `cert` is `None`.
pub async fn server_side_with(mode: &str, cert: Option<&WorkloadCert>) -> ServerSide {
    let app = Upstream::start("httpbin").await;
    let certs = tempfile::tempdir().expect("temp dir");
    if let Some(cert) = cert {
        cert.write_istio_dir(certs.path()).expect("write certs");
    }
    let cert_dir: &[&OsStr] = if cert.is_some() {
        &[OsStr::new("--cert-dir"), certs.path().as_os_str()]
    } else {
        &[]
    };
    let ports = Ports::new();
    let inbound: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = format!(
        r#"node:
  workload: httpbin-v1
  namespace: default
  app: httpbin
  version: v1
{admin}drain_timeout: 1s
listeners:
  - name: inbound
    address: {inbound}
    direction: inbound
    mtls: {mode}
    route_config: inbound
route_configs:
  - name: inbound
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: {{ path: {{ prefix: / }} }}
            route:
              cluster: "inbound|80||"
clusters:
  - name: "inbound|80||"
    endpoints:
      - address: {app}
    destination:
      service: {SERVER_HOST}
"#,
        admin = ports.admin_yaml(),
        app = app.address,
    );
    let proxy = ProxyProcess::start_with_args(
        &config,
        &ports,
        &[
            cert_dir,
            // Each handshake's peer and key exchange group, for the tests to read.
            &[
                OsStr::new("--log-level"),
                OsStr::new("info,lateen_proxy::tls=debug"),
            ],
        ]
        .concat(),
    )
    .await;
    ServerSide {
        proxy,
        inbound,
        _app: app,
        certs,
    }
}

/// The client sidecar: an outbound listener whose cluster originates mTLS to `endpoint`,
/// expecting the server identity `expected_san`.
pub async fn client_side(
    cert: &WorkloadCert,
    endpoint: SocketAddr,
    expected_san: &str,
) -> (ProxyProcess, SocketAddr, tempfile::TempDir) {
    let endpoints = format!("      - address: {endpoint}\n");
    client_side_with(cert, &endpoints, expected_san, false).await
}

/// [`client_side`] with the cluster's `endpoints` YAML (6-space items) and auto mTLS (TLS
/// only to endpoints with `tls_mode: istio`).
pub async fn client_side_with(
    cert: &WorkloadCert,
    endpoints: &str,
    expected_san: &str,
    auto_mtls: bool,
) -> (ProxyProcess, SocketAddr, tempfile::TempDir) {
    let certs = tempfile::tempdir().expect("temp dir");
    cert.write_istio_dir(certs.path()).expect("write certs");
    let ports = Ports::new();
    let outbound: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let config = format!(
        r#"node:
  workload: sleep-v1
  namespace: default
  app: sleep
  version: v1
{admin}drain_timeout: 1s
listeners:
  - name: outbound
    address: {outbound}
    route_config: "80"
route_configs:
  - name: "80"
    virtual_hosts:
      - name: httpbin
        domains: ["*"]
        routes:
          - match: {{ path: {{ prefix: / }} }}
            route:
              cluster: "outbound|80||{SERVER_HOST}"
              retry: {{ num_retries: 0 }}
clusters:
  - name: "outbound|80||{SERVER_HOST}"
    endpoints:
{endpoints}    tls:
      sni: "outbound_.80_._.{SERVER_HOST}"
      subject_alt_names: ["{expected_san}"]
      only_tls_mode_istio: {auto_mtls}
    destination:
      service: {SERVER_HOST}
"#,
        admin = ports.admin_yaml(),
    );
    let proxy = ProxyProcess::start_with_args(
        &config,
        &ports,
        &[OsStr::new("--cert-dir"), certs.path().as_os_str()],
    )
    .await;
    (proxy, outbound, certs)
}

/// The product's own TLS client, in the test process: a mesh certificate and a cluster's
/// upstream settings.
pub fn tls_client(cert: &WorkloadCert, expected_san: &str) -> (MeshTls, UpstreamTlsRt) {
    let dir = tempfile::tempdir().expect("temp dir");
    cert.write_istio_dir(dir.path()).expect("write certs");
    let bundle = WorkloadCertificate::from_dir(dir.path()).expect("read certs");
    let (_sender, watch) = tokio::sync::watch::channel(Some(Arc::new(bundle)));
    let upstream = UpstreamTlsRt::new(
        Some(format!("outbound_.80_._.{SERVER_HOST}")),
        vec![expected_san.to_string()],
    )
    .expect("sni");
    (MeshTls::new(watch), upstream)
}

/// One GET over an established TLS stream, in the HTTP version `alpn` announced.
pub async fn request_over<S>(stream: S, alpn: UpstreamAlpn) -> Result<u16, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let uri = if alpn == UpstreamAlpn::Http2 {
        "http://httpbin/over-tls"
    } else {
        "/over-tls"
    };
    let request = http::Request::get(uri)
        .header("host", "httpbin")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let io = TokioIo::new(stream);
    let exchange = async {
        let response = if alpn == UpstreamAlpn::Http2 {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            sender.send_request(request).await
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            sender.send_request(request).await
        }
        .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(status)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// An HTTP/1.1 client connection kept open over an established TLS stream.
pub async fn kept_alive<S>(stream: S) -> hyper::client::conn::http1::SendRequest<Full<Bytes>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http/1.1 handshake");
    tokio::spawn(connection);
    sender
}

/// One GET on a kept-alive connection: its status.
pub async fn kept_request(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
) -> u16 {
    let request = http::Request::get("/kept")
        .header("host", "httpbin")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .expect("in time")
        .expect("response");
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}
