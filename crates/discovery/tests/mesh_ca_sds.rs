//! `lateen-proxy agent` end to end: lateend's mesh CA issues the workload certificate, the
//! agent serves it over SDS on a Unix socket, and a real Envoy terminates mutual TLS with it
//! (DownstreamTlsContext from SDS `default` and `ROOTCA`, client certificates required). A
//! rustls client holding another workload's certificate from the same CA sees Envoy's leaf
//! with the SPIFFE identity lateend issued; with a 6 s lifetime Envoy gets the rotated
//! certificate (a new serial) while an open connection keeps working.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Process, envoy_or_skip};
use lateen_identity::WorkloadCertificate;
use lateen_proxy::xds::sds_agent::{AgentArgs, ca_client_config, serve};
use lateen_test_support::envoy_bootstrap::Bootstrap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Envoy with one mutual-TLS listener on `port` whose certificate and trusted root come from
/// SDS on `socket` (Istio's `sds-grpc` cluster), proxying to `backend`.
fn envoy_bootstrap(socket: &Path, port: u16, backend: u16) -> String {
    let sds = "{resource_api_version: V3, api_config_source: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: sds-grpc}}]}}";
    let listener = format!(
        r#"  - name: inbound-mtls
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificate_sds_secret_configs:
            - name: default
              sds_config: {sds}
            validation_context_sds_secret_config:
              name: ROOTCA
              sds_config: {sds}
      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: inbound
          cluster: backend
"#
    );
    Bootstrap::new("sidecar~127.0.0.1~reviews-1.default~default.svc.cluster.local")
        .cluster("reviews.default")
        .grpc_pipe_cluster("sds-grpc", socket)
        .static_cluster("backend", backend)
        .listener(&listener)
        .to_yaml()
}

/// Checks the chain against the mesh root but not a host name: a mesh leaf names a SPIFFE
/// identity (URI SAN) only, which the test reads itself.
#[derive(Debug)]
struct MeshRootOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for MeshRootOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                NotValidForName | NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A TLS client trusting only `client`'s mesh root and presenting its certificate, or none
/// with `present` false.
fn connector(client: &WorkloadCertificate, present: bool) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for root in &client.roots {
        roots.add(root.clone()).expect("mesh root");
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("verifier");
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(MeshRootOnly(verifier)));
    let config = if present {
        config
            .with_client_auth_cert(client.chain.clone(), client.key.clone_key())
            .expect("client certificate")
    } else {
        config.with_no_client_auth()
    };
    TlsConnector::from(Arc::new(config))
}

/// A mutual-TLS connection to Envoy on `port`, once Envoy has its secrets (bounded retries).
async fn connect(tls: &TlsConnector, port: u16) -> Option<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let name = ServerName::try_from("reviews.default.svc").ok()?;
    tokio::time::timeout(Duration::from_secs(5), tls.connect(name, tcp))
        .await
        .ok()?
        .ok()
}

/// The first connection (of at most `tries`, 100 ms apart) that `wanted` accepts.
async fn connect_until(
    tls: &TlsConnector,
    port: u16,
    tries: usize,
    wanted: impl Fn(&TlsStream<TcpStream>) -> bool,
) -> Option<TlsStream<TcpStream>> {
    for _ in 0..tries {
        if let Some(stream) = connect(tls, port).await.filter(|s| wanted(s)) {
            return Some(stream);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Envoy's leaf on `stream`: its URI SANs and serial.
fn peer_leaf(stream: &TlsStream<TcpStream>) -> (Vec<String>, Vec<u8>) {
    use x509_parser::prelude::*;
    let der = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("Envoy presented a certificate")
        .clone();
    let (_, leaf) = X509Certificate::from_der(der.as_ref()).expect("leaf parses");
    let uris = leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(uri) => Some(uri.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    (uris, leaf.raw_serial().to_vec())
}

/// Writes `text` and reads the echo back through Envoy.
async fn round_trip(stream: &mut TlsStream<TcpStream>, text: &[u8]) -> bool {
    let io = async {
        stream.write_all(text).await?;
        let mut back = vec![0; text.len()];
        stream.read_exact(&mut back).await?;
        Ok::<_, std::io::Error>(back)
    };
    matches!(tokio::time::timeout(Duration::from_secs(5), io).await, Ok(Ok(back)) if back == text)
}

/// An echo server on loopback: Envoy's backend.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
    let port = listener.local_addr().expect("echo address").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    port
}

/// Envoy's complaints and its SDS lines, for a failure message.
fn envoy_problems(envoy: &Process) -> String {
    envoy
        .log()
        .lines()
        .filter(|l| {
            ["[warning]", "[error]", "[critical]", "secret", "sds"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn start_envoy(binary: &Path, work: &Path, bootstrap: &str) -> Process {
    let config = work.join("envoy.yaml");
    std::fs::write(&config, bootstrap).expect("write bootstrap");
    let log = work.join("envoy.log");
    let child = std::process::Command::new(binary)
        .arg("-c")
        .arg(&config)
        .args(["--concurrency", "1", "--disable-hot-restart"])
        .args(["--log-level", "info"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("envoy log"))
        .spawn()
        .expect("spawn envoy");
    Process {
        child: lateen_test_support::process::ChildGuard::new(child),
        log,
        admin_path: None,
    }
}

#[tokio::test]
async fn envoy_serves_mutual_tls_with_the_agents_rotating_certificate() {
    let Some(envoy) = envoy_or_skip() else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let local = common::lateend::local(dir, &[]).await;

    // The agent, configured from Istio's environment as the injector would set it.
    let socket = dir.join("var/run/secrets/workload-spiffe-uds/socket");
    let args = AgentArgs {
        ca_address: Some(format!("127.0.0.1:{}", local.lateend.xds_tls)),
        discovery_address: None,
        sds_socket: socket.clone(),
        secret_ttl: Some(Duration::from_secs(6)),
        log_level: "info".into(),
    };
    let agent_config = ca_client_config(&args, &local.agent_env("reviews")).expect("agent config");
    assert!(
        matches!(
            agent_config.transport,
            lateen_xds::client::Transport::Tls(_)
        ),
        "XDS_ROOT_CA makes the CA connection TLS"
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(async move {
        serve(agent_config, &args.sds_socket, async {
            let _ = stop_rx.await;
        })
        .await
    });

    // The client: another workload's certificate from the same CA.
    let client = lateen_proxy::xds::ca_client::fetch(&local.ca_client("ratings", None))
        .await
        .expect("the client's certificate");
    let tls = connector(&client, true);

    let backend = echo_server().await;
    let port = lateen_test_support::free_port();
    let envoy = start_envoy(&envoy, dir, &envoy_bootstrap(&socket, port, backend));

    // Envoy's listener serves once both secrets arrived over SDS.
    let Some(mut first) = connect_until(&tls, port, 150, |_| true).await else {
        panic!(
            "no mutual-TLS connection through Envoy within 15 s\n{}",
            envoy_problems(&envoy)
        );
    };
    let (uris, first_serial) = peer_leaf(&first);
    assert_eq!(uris, ["spiffe://cluster.local/ns/default/sa/reviews"]);
    assert!(round_trip(&mut first, b"before rotation").await, "echo");

    // The agent renews at about 3 s; Envoy's next handshakes use the new leaf.
    let rotated = connect_until(&tls, port, 100, |stream| {
        let (uris, serial) = peer_leaf(stream);
        assert_eq!(uris, ["spiffe://cluster.local/ns/default/sa/reviews"]);
        serial != first_serial
    })
    .await;
    let Some(mut rotated) = rotated else {
        panic!(
            "Envoy never presented a rotated certificate within 10 s\n{}",
            envoy_problems(&envoy)
        );
    };
    assert!(
        round_trip(&mut rotated, b"after rotation").await,
        "echo on the new leaf"
    );
    assert!(
        round_trip(&mut first, b"still open").await,
        "the connection made before the rotation keeps working"
    );

    // A client without a certificate is refused (TLS 1.3: at its first read at the latest).
    let anonymous = connector(&client, false);
    if let Some(mut stream) = connect(&anonymous, port).await {
        assert!(
            !round_trip(&mut stream, b"no certificate").await,
            "Envoy requires a client certificate"
        );
    }

    let log = envoy.log();
    assert!(!log.contains("rejected"), "no NACK from Envoy:\n{log}");
    let _ = stop_tx.send(());
    let result = tokio::time::timeout(Duration::from_secs(5), agent)
        .await
        .expect("the agent stops");
    assert!(
        matches!(result, Ok(Ok(()))),
        "agent ended cleanly: {result:?}"
    );
}
