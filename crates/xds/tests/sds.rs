//! The SDS server on a real Unix socket, driven by tonic's generated client as Envoy drives
//! it: nothing before the first certificate, the named secrets with their version, silence
//! after an ACK, a push per rotation, a NACK logged and the stream kept, new names answered,
//! unknown names and other types refused, delta UNIMPLEMENTED, FetchSecrets, and a stop that
//! removes the socket.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lateen_xds::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use lateen_xds::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use lateen_xds::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use lateen_xds::pb::google::rpc::Status as RpcStatus;
use lateen_xds::prost::Message;
use lateen_xds::sds::{SECRET_TYPE_URL, SecretMaterial, serve_unix};
use lateen_xds::tonic::transport::{Channel, Endpoint};
use lateen_xds::tonic::{Code, Streaming};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

const QUIET: Duration = Duration::from_millis(300);
const WAIT: Duration = Duration::from_secs(5);

fn material(version: &str) -> Option<Arc<SecretMaterial>> {
    Some(Arc::new(SecretMaterial {
        version: version.into(),
        cert_chain_pem: format!("CHAIN{version}"),
        private_key_pem: format!("KEY{version}"),
        roots_pem: format!("ROOTS{version}"),
    }))
}

fn request(names: &[&str], version: &str, nonce: &str, nack: Option<&str>) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.into(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        type_url: SECRET_TYPE_URL.into(),
        response_nonce: nonce.into(),
        error_detail: nack.map(|message| RpcStatus {
            code: 3,
            message: message.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn channel(socket: &Path) -> Channel {
    let path: PathBuf = socket.to_path_buf();
    Endpoint::try_from("http://sds.invalid")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .expect("connect to the SDS socket")
}

/// Opens a StreamSecrets stream whose requests are sent on the returned sender.
async fn open(
    client: &mut SecretDiscoveryServiceClient<Channel>,
    first: DiscoveryRequest,
) -> (mpsc::Sender<DiscoveryRequest>, Streaming<DiscoveryResponse>) {
    let (tx, rx) = mpsc::channel(8);
    tx.send(first).await.expect("queue request");
    let responses = client
        .stream_secrets(ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    (tx, responses)
}

async fn next(responses: &mut Streaming<DiscoveryResponse>) -> DiscoveryResponse {
    tokio::time::timeout(WAIT, responses.message())
        .await
        .expect("a response in time")
        .expect("no error")
        .expect("stream open")
}

async fn silent(responses: &mut Streaming<DiscoveryResponse>) -> bool {
    tokio::time::timeout(QUIET, responses.message())
        .await
        .is_err()
}

fn secrets(response: &DiscoveryResponse) -> Vec<Secret> {
    response
        .resources
        .iter()
        .map(|any| {
            assert_eq!(any.type_url, SECRET_TYPE_URL);
            Secret::decode(any.value.as_slice()).expect("a Secret")
        })
        .collect()
}

fn inline(source: &Option<lateen_xds::pb::envoy::config::core::v3::DataSource>) -> String {
    use lateen_xds::pb::envoy::config::core::v3::data_source::Specifier;
    match source.as_ref().and_then(|s| s.specifier.as_ref()) {
        Some(Specifier::InlineBytes(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        other => panic!("not inline bytes: {other:?}"),
    }
}

#[tokio::test]
async fn sds_pushes_versions_and_handles_ack_and_nack() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("workload-spiffe-uds/socket");
    let (publish, watch_rx) = watch::channel(None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let socket = socket.clone();
        tokio::spawn(async move {
            serve_unix(&socket, watch_rx, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client = SecretDiscoveryServiceClient::new(channel(&socket).await);

    // Before the first certificate Envoy waits.
    let (requests, mut responses) = open(&mut client, request(&["default"], "", "", None)).await;
    assert!(silent(&mut responses).await, "nothing before a certificate");

    publish.send_replace(material("1"));
    let first = next(&mut responses).await;
    assert_eq!(first.version_info, "1");
    let [secret] = secrets(&first).try_into().expect("one secret");
    assert_eq!(secret.name, "default");
    let Some(secret::Type::TlsCertificate(cert)) = secret.r#type else {
        panic!("default is a tls_certificate");
    };
    assert_eq!(inline(&cert.certificate_chain), "CHAIN1");
    assert_eq!(inline(&cert.private_key), "KEY1");

    // ACK: nothing more until the certificate rotates.
    requests
        .send(request(&["default"], "1", &first.nonce, None))
        .await
        .expect("ACK");
    assert!(silent(&mut responses).await, "no resend after an ACK");
    publish.send_replace(material("2"));
    let second = next(&mut responses).await;
    assert_eq!(second.version_info, "2");
    assert_ne!(second.nonce, first.nonce);

    // NACK: logged, not resent, and the stream still gets the next rotation.
    requests
        .send(request(&["default"], "1", &second.nonce, Some("bad key")))
        .await
        .expect("NACK");
    assert!(silent(&mut responses).await, "no resend after a NACK");
    publish.send_replace(material("3"));
    assert_eq!(next(&mut responses).await.version_info, "3");

    // New names are answered at once, with the current version.
    requests
        .send(request(&["default", "ROOTCA"], "3", "", None))
        .await
        .expect("new names");
    let both = next(&mut responses).await;
    assert_eq!(both.version_info, "3");
    let names: Vec<String> = secrets(&both).into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["default", "ROOTCA"]);
    let Some(secret::Type::ValidationContext(roots)) = secrets(&both)[1].r#type.clone() else {
        panic!("ROOTCA is a validation_context");
    };
    assert_eq!(inline(&roots.trusted_ca), "ROOTS3");

    // A name this agent does not serve gets no answer; another type is refused.
    let (_keep, mut unknown) = open(&mut client, request(&["file-cert:/x"], "", "", None)).await;
    assert!(
        silent(&mut unknown).await,
        "no answer for an unknown secret"
    );
    let mut listener = request(&["default"], "", "", None);
    listener.type_url = "type.googleapis.com/envoy.config.listener.v3.Listener".into();
    let (_keep2, mut wrong) = open(&mut client, listener).await;
    let status = tokio::time::timeout(WAIT, wrong.message())
        .await
        .expect("an answer in time")
        .expect_err("another type is refused");
    assert_eq!(status.code(), Code::InvalidArgument);

    // Delta is not served; the unary fetch is.
    let (_tx, rx) = mpsc::channel(1);
    let delta = client.delta_secrets(ReceiverStream::new(rx)).await;
    assert_eq!(delta.err().map(|s| s.code()), Some(Code::Unimplemented));
    let fetched = client
        .fetch_secrets(request(&["ROOTCA"], "", "", None))
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(fetched.version_info, "3");
    assert_eq!(secrets(&fetched)[0].name, "ROOTCA");

    // A stop ends the server (Envoy-like streams still open) and removes the socket.
    let _ = stop.send(());
    let result = tokio::time::timeout(WAIT, server)
        .await
        .expect("the server stops");
    assert!(matches!(result, Ok(Ok(()))), "{result:?}");
    assert!(!socket.exists(), "socket removed");
}
