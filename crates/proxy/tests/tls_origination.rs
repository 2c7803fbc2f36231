//! DestinationRule `tls` SIMPLE and MUTUAL origination on the built proxy (static
//! configuration, the form lateend's translation produces) against real TLS servers the test
//! runs with certificates from a test CA: SIMPLE verifies the server against
//! `caCertificates` and `subjectAltNames` and sends `sni`; a wrong SAN or another CA's
//! server is refused (503, `UF`); `insecureSkipVerify` accepts it; MUTUAL presents the
//! client certificate a server that requires one accepts, and without it that server
//! refuses; a missing file is a configuration error naming the field and the path.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use lateen_test_support::test_ca::{TestCa, Validity};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::{Ports, ProxyProcess, free_port, get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOST: &str = "api.external.test";

/// What a TLS server saw of each handshake: the SNI and whether a client certificate came.
type Seen = Arc<Mutex<Vec<(Option<String>, bool)>>>;

/// An HTTPS server with `ca`'s certificate for [`HOST`]; with `client_ca` it requires a
/// client certificate from that CA. Every request gets 200.
async fn tls_server(ca: &TestCa, client_ca: Option<&TestCa>) -> (SocketAddr, Seen) {
    let cert = ca.server_cert(&[HOST], &[]).expect("server cert");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(client_ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(client_ca.pem().as_bytes()).expect("root"))
                .expect("add root");
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(
            vec![CertificateDer::from(cert.cert_der.clone())],
            PrivateKeyDer::try_from(cert.key_der.clone()).expect("key"),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let seen: Seen = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, record) = (acceptor.clone(), record.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (_, session) = tls.get_ref();
                let sni = session.server_name().map(str::to_string);
                let client_cert = session.peer_certificates().is_some_and(|c| !c.is_empty());
                if let Ok(mut list) = record.lock() {
                    list.push((sni, client_cert));
                }
                let mut buffer = vec![0u8; 8192];
                // One request per connection is enough here (bounded read).
                let _ = tls.read(&mut buffer).await;
                let body = "external";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (address, seen)
}

/// A route prefix and the cluster it leads to (`tls` YAML at 4 spaces).
struct Route {
    prefix: &'static str,
    endpoint: SocketAddr,
    tls: String,
}

fn config(ports: &Ports, listen: u16, routes: &[Route]) -> String {
    let mut route_yaml = String::new();
    let mut cluster_yaml = String::new();
    for (i, r) in routes.iter().enumerate() {
        route_yaml.push_str(&format!(
            "          - {{match: {{path: {{prefix: {}}}}}, route: {{cluster: c{i}, retry: {{num_retries: 0}}}}}}\n",
            r.prefix
        ));
        cluster_yaml.push_str(&format!(
            "  - name: c{i}\n    endpoints: [{{address: \"{}\"}}]\n    tls:\n{}",
            r.endpoint, r.tls
        ));
    }
    format!(
        r#"{admin}drain_timeout: 1s
listeners:
  - {{name: http, address: "127.0.0.1:{listen}", route_config: main}}
route_configs:
  - name: main
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
{route_yaml}clusters:
{cluster_yaml}"#,
        admin = ports.admin_yaml(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.display().to_string()
}

#[tokio::test]
async fn simple_and_mutual_origination_with_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new("external CA").expect("ca");
    let other_ca = TestCa::new("someone else").expect("ca");
    let client_ca = TestCa::new("client CA").expect("ca");
    let ca_file = write(dir.path(), "ca.pem", ca.pem());
    let other_ca_file = write(dir.path(), "other-ca.pem", other_ca.pem());
    let client = client_ca
        .workload_cert(
            "spiffe://cluster.local/ns/default/sa/client",
            Validity::Current,
        )
        .expect("client cert");
    let client_cert_file = write(dir.path(), "client.pem", &client.cert_pem);
    let client_key_file = write(dir.path(), "client-key.pem", &client.key_pem);

    let (plain_server, plain_seen) = tls_server(&ca, None).await;
    let (mutual_server, mutual_seen) = tls_server(&ca, Some(&client_ca)).await;
    let simple = |ca: &str, san: &str| {
        format!(
            "      sni: {HOST}\n      subject_alt_names: [\"{san}\"]\n      files: {{ca_certificates: \"{ca}\"}}\n"
        )
    };
    let routes = [
        Route {
            prefix: "/simple",
            endpoint: plain_server,
            tls: simple(&ca_file, HOST),
        },
        Route {
            prefix: "/wrong-san",
            endpoint: plain_server,
            tls: simple(&ca_file, "other.external.test"),
        },
        Route {
            prefix: "/other-ca",
            endpoint: plain_server,
            tls: simple(&other_ca_file, HOST),
        },
        Route {
            prefix: "/insecure",
            endpoint: plain_server,
            tls: "      files: {insecure_skip_verify: true}\n".into(),
        },
        Route {
            prefix: "/mutual",
            endpoint: mutual_server,
            tls: format!(
                "      sni: {HOST}\n      files: {{ca_certificates: \"{ca_file}\", client_certificate: \"{client_cert_file}\", private_key: \"{client_key_file}\"}}\n"
            ),
        },
        Route {
            prefix: "/no-client-cert",
            endpoint: mutual_server,
            tls: simple(&ca_file, HOST),
        },
    ];
    let ports = Ports::new();
    let listen = free_port();
    let proxy = ProxyProcess::start(&config(&ports, listen, &routes), &ports).await;
    let at: SocketAddr = ([127, 0, 0, 1], listen).into();

    for (path, want) in [
        ("/simple", 200),
        ("/wrong-san", 503),
        ("/other-ca", 503),
        ("/insecure", 200),
        ("/mutual", 200),
        ("/no-client-cert", 503),
    ] {
        let (status, body) = get(at, path).await.expect("an answer");
        assert_eq!(status, want, "{path}: {body}\n{}", proxy.log_text());
        if want == 200 {
            assert_eq!(body, "external", "{path}");
        }
    }
    let plain = plain_seen.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(
        plain.first(),
        Some(&(Some(HOST.to_string()), false)),
        "SIMPLE sends the SNI and no client certificate"
    );
    let mutual = mutual_seen.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(
        mutual,
        [(Some(HOST.to_string()), true)],
        "only MUTUAL completed a handshake with the server that requires a client certificate"
    );
    let metrics = proxy.prometheus().await;
    assert!(
        support::sample(&metrics, "istio_requests_total", &["response_flags=\"UF\""]).is_some(),
        "refused servers are upstream connection failures: {metrics}"
    );
}

#[tokio::test]
async fn a_missing_file_is_a_configuration_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let missing = dir.path().join("no-such-ca.pem").display().to_string();
    let text = config(
        &ports,
        free_port(),
        &[Route {
            prefix: "/",
            endpoint: ([127, 0, 0, 1], 9).into(),
            tls: format!("      files: {{ca_certificates: \"{missing}\"}}\n"),
        }],
    );
    let path = write(dir.path(), "proxy.yaml", &text);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_lateen-proxy"))
        .args(["--config", &path, "--validate"])
        .output()
        .expect("run lateen-proxy");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("clusters[0].tls.files.ca_certificates") && stderr.contains(&missing),
        "{stderr}"
    );
}
