//! Auto-registration only for proxies a WorkloadGroup admits (issue #16 item 7), with real
//! ADS clients on lateend's plaintext port and on its TLS port presenting mesh certificates
//! or bearer tokens.
//! Each client is a raw HTTP/2 gRPC stream holding one DiscoveryRequest open, at an instance
//! address on 127.0.90.0/24 that nothing dials: whether it is an endpoint is read from the
//! EDS an observer proxy receives.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lateen_xds::pb::envoy::config::core::v3::Node;
use lateen_xds::pb::envoy::service::discovery::v3::DiscoveryRequest;
use lateen_xds::pb::google::protobuf::{Struct, Value, value::Kind};
use lateen_xds::prost::Message;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::common::lateend::{Local, local};
use super::common::{get, wait_until};
use super::{SOTW, grpc_frame};

const CONFIG: &str = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: reviews, namespace: default}
spec:
  metadata: {labels: {app: reviews}}
  template: {serviceAccount: reviews, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: elsewhere, namespace: other}
spec:
  template: {labels: {app: reviews}}
"#;

const SUBSET_V1: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";
const TLS_SERVER_NAME: &str = "lateend.istio-system.svc";

/// An open ADS stream; dropping it ends the stream and its connection.
struct AdsStream(tokio::task::JoinHandle<()>);

impl Drop for AdsStream {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A string as a protobuf `Value`.
fn text(value: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(value.to_string())),
    }
}

/// The node of a sidecar at `ip` in namespace `default` with `labels`, naming `group`.
fn node(ip: &str, name: &str, labels: &[(&str, &str)], group: Option<&str>) -> Node {
    let labels = Struct {
        fields: labels
            .iter()
            .map(|(k, v)| (k.to_string(), text(v)))
            .collect(),
    };
    let mut fields = std::collections::BTreeMap::from([
        ("NAMESPACE".to_string(), text("default")),
        ("INSTANCE_IPS".to_string(), text(ip)),
        ("INTERCEPTION_MODE".to_string(), text("NONE")),
        (
            "LABELS".to_string(),
            Value {
                kind: Some(Kind::StructValue(labels)),
            },
        ),
    ]);
    if let Some(group) = group {
        fields.insert("AUTO_REGISTER_GROUP".to_string(), text(group));
    }
    Node {
        id: format!("sidecar~{ip}~{name}.default~default.svc.cluster.local"),
        metadata: Some(Struct {
            fields: fields.into_iter().collect(),
        }),
        ..Default::default()
    }
}

/// Opens a SotW stream over `io` whose first request carries `node`, and keeps it open
/// (reading what lateend sends) until the returned handle is dropped.
async fn open_ads<IO>(io: IO, node: Node) -> AdsStream
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    open_ads_as(io, node, None).await.0
}

/// [`open_ads`] sending `token` as `authorization: Bearer`; also the `grpc-status` lateend
/// answered with at once (a refusal), if any.
async fn open_ads_as<IO>(io: IO, node: Node, token: Option<&str>) -> (AdsStream, Option<String>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("HTTP/2 handshake with lateend");
    let (requests, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let first = DiscoveryRequest {
        node: Some(node),
        type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".into(),
        ..Default::default()
    };
    requests
        .send(Ok(Frame::data(grpc_frame(&first.encode_to_vec()))))
        .await
        .expect("queue the first request");
    let mut request = http::Request::post(format!("http://lateend{SOTW}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .body(StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .expect("request");
    let (status_tx, status_rx) = tokio::sync::oneshot::channel();
    let stream = AdsStream(tokio::spawn(async move {
        let _requests = requests; // the stream stays open while this task runs
        tokio::spawn(connection);
        match sender.send_request(request).await {
            Ok(response) => {
                let status = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|s| s.to_str().ok())
                    .map(str::to_string);
                let _ = status_tx.send(status);
                let mut body = response.into_body();
                while let Some(Ok(_)) = body.frame().await {}
            }
            Err(_) => drop(status_tx),
        }
        std::future::pending::<()>().await;
    }));
    let status = tokio::time::timeout(Duration::from_secs(10), status_rx)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    (stream, status)
}

async fn plaintext(port: u16, node: Node) -> AdsStream {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the plaintext xDS port");
    open_ads(tcp, node).await
}

/// A TLS connection to lateend's TLS port, trusting `root`, presenting `client` if given.
async fn tls(
    port: u16,
    root: &std::path::Path,
    client: Option<lateen_identity::WorkloadCertificate>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let roots = lateen_xds::client::transport::read_roots(root).expect("mesh root");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let mut config = match client {
        Some(certificate) => builder
            .with_client_auth_cert(certificate.chain.clone(), certificate.key.clone_key())
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the TLS xDS port");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(TLS_SERVER_NAME).expect("name"), tcp)
        .await
        .expect("TLS handshake with lateend")
}

/// Over TLS, presenting a certificate for `namespace/service_account` signed by lateend's
/// own CA.
async fn with_certificate(
    local: &Local,
    (namespace, service_account): (&str, &str),
    node: Node,
) -> AdsStream {
    let client = local.workload_certificate(namespace, service_account);
    open_ads(
        tls(local.lateend.xds_tls, &local.root, Some(client)).await,
        node,
    )
    .await
}

/// The readable EDS resource `cluster` in `proxy`'s config dump (empty when absent).
async fn endpoints(debug: u16, proxy: &str, cluster: &str) -> String {
    let path = format!("/debug/config_dump?proxyID={proxy}");
    let Some((200, body)) = get(debug, "x", &path, &[]).await else {
        return String::new();
    };
    let dump: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    dump["resources"]["EDS"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == cluster)
        .and_then(|r| r["config"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// lateend (with `extra` arguments) on [`CONFIG`] in `work/config`.
async fn with_config(work: &std::path::Path, extra: &[&str]) -> Local {
    let config = work.join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(config.join("reviews.yaml"), CONFIG).expect("config");
    local(work, extra).await
}

/// Waits until every one of `ips` is an endpoint of the v1 subset `observer` receives.
async fn admitted(lateend: &super::common::lateend::Lateend, observer: &str, ips: &[&str]) {
    let all = wait_until("the admitted proxies in the v1 subset", || async {
        let eds = endpoints(lateend.debug, observer, SUBSET_V1).await;
        ips.iter().all(|ip| eds.contains(ip))
    })
    .await;
    if let Err(e) = all {
        panic!("{e}\n{}", lateend.process.log_tail());
    }
}

/// None of `refused` (instance IPs) is in `eds`.
fn no_endpoints(eds: &str, refused: &[&str]) {
    for refused in refused {
        assert!(!eds.contains(refused), "{refused} is no endpoint: {eds}");
    }
}

/// Each `(proxy, reason)`: lateend's log refuses the proxy's registration in exactly one line,
/// giving `reason`.
fn refused_once(log: &str, expected: &[(&str, &str)]) {
    for (proxy, reason) in expected {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("auto-registration refused") && l.contains(proxy))
            .collect();
        assert_eq!(lines.len(), 1, "{proxy} refused once:\n{log}");
        assert!(lines[0].contains(reason), "{proxy}: {}", lines[0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_proxies_a_workload_group_admits_become_endpoints() {
    let work = tempfile::tempdir().expect("work dir");
    let local = with_config(work.path(), &[]).await;
    let config = work.path().join("config");
    let lateend = &local.lateend;
    let app = [("app", "reviews")];

    // Refused: no group (the labels match the selector), a group that does not exist, a
    // group of another namespace, a certificate of another namespace than the metadata's.
    let observer = node("127.0.90.10", "observer", &[], None);
    let _observer = plaintext(lateend.xds, observer.clone()).await;
    let _no_group = plaintext(lateend.xds, node("127.0.90.1", "bare", &app, None)).await;
    let _missing = plaintext(
        lateend.xds,
        node("127.0.90.2", "missing", &app, Some("missing")),
    )
    .await;
    let _elsewhere = plaintext(
        lateend.xds,
        node("127.0.90.3", "elsewhere", &app, Some("elsewhere")),
    )
    .await;
    let other_namespace = node("127.0.90.4", "impostor", &[], Some("reviews"));
    let _impostor = with_certificate(&local, ("other", "reviews"), other_namespace.clone()).await;
    // Admitted: on the plaintext port, and with a certificate of its own namespace. Neither
    // sends the `app` or `version` label: both come from the group.
    let _admitted = plaintext(
        lateend.xds,
        node("127.0.90.5", "vm-1", &[("tier", "x")], Some("reviews")),
    )
    .await;
    let _verified = with_certificate(
        &local,
        ("default", "reviews"),
        node("127.0.90.6", "vm-2", &[], Some("reviews")),
    )
    .await;

    admitted(lateend, &observer.id, &["127.0.90.5", "127.0.90.6"]).await;
    // Config changes rebuild the registry; refusals are still logged once per proxy.
    std::fs::write(
        config.join("more.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: spare, namespace: default}\nspec: {template: {}}\n",
    )
    .expect("more config");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let eds = endpoints(lateend.debug, &observer.id, SUBSET_V1).await;
    no_endpoints(
        &eds,
        &["127.0.90.1", "127.0.90.2", "127.0.90.3", "127.0.90.4"],
    );
    let log = lateend.process.log();
    refused_once(
        &log,
        &[
            ("127.0.90.2", "WorkloadGroup default/missing"),
            ("127.0.90.3", "WorkloadGroup default/elsewhere"),
            ("127.0.90.4", "is for namespace other"),
        ],
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("auto-registration refused") && l.contains("sidecar~127.0.90.1~")),
        "a proxy naming no group is not a refusal:\n{log}"
    );
    // istiod's counters: one per verdict, however many rebuilds.
    let (_, metrics) = get(lateend.debug, "x", "/metrics", &[])
        .await
        .expect("/metrics");
    let count = |name| lateen_test_support::metrics_text::sum(&metrics, name, &[]);
    assert_eq!(count("auto_registration_success_total"), 2.0, "{metrics}");
    assert_eq!(count("auto_registration_errors_total"), 3.0, "{metrics}");
    // A refused proxy still gets its configuration.
    let impostor_config = endpoints(lateend.debug, &other_namespace.id, SUBSET_V1).await;
    assert!(impostor_config.contains("127.0.90.5"), "{impostor_config}");
}

/// On the TLS port a stream's bearer token proves who the proxy is, checked as the
/// certificate API checks it (here lateend's bootstrap tokens): a token of another namespace
/// or service account than the metadata's is refused for auto-registration, a matching one
/// is admitted, a token lateend did not issue refuses the stream with UNAUTHENTICATED (one log
/// line), and a verified certificate decides before the token (as istiod's authenticators).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_on_the_tls_port_say_who_the_proxy_is() {
    let work = tempfile::tempdir().expect("work dir");
    let local = with_config(work.path(), &["--bootstrap-identity", "other/reviews"]).await;
    let lateend = &local.lateend;
    let token = |namespace, service_account| {
        std::fs::read_to_string(local.token(namespace, service_account)).expect("token")
    };
    let over_tls = |node: Node, token: Option<String>, client| {
        let root = local.root.clone();
        async move {
            let io = tls(lateend.xds_tls, &root, client).await;
            open_ads_as(io, node, token.as_deref()).await
        }
    };

    let observer = node("127.0.91.10", "observer", &[], None);
    let _observer = plaintext(lateend.xds, observer.clone()).await;
    let (_matching, status) = over_tls(
        node("127.0.91.1", "vm-1", &[], Some("reviews")),
        Some(token("default", "reviews")),
        None,
    )
    .await;
    assert_eq!(status, None, "a good token opens the stream");
    let (_other_namespace, _) = over_tls(
        node("127.0.91.2", "impostor", &[], Some("reviews")),
        Some(token("other", "reviews")),
        None,
    )
    .await;
    let (_other_account, _) = over_tls(
        node("127.0.91.3", "ratings", &[], Some("reviews")),
        Some(token("default", "ratings")),
        None,
    )
    .await;
    let (_certified, status) = over_tls(
        node("127.0.91.4", "vm-2", &[], Some("reviews")),
        Some("stale-token".to_string()),
        Some(local.workload_certificate("default", "reviews")),
    )
    .await;
    assert_eq!(status, None, "a verified certificate decides first");
    let (_refused, status) = over_tls(
        node("127.0.91.5", "forged", &[], Some("reviews")),
        Some("forged-token".to_string()),
        None,
    )
    .await;
    assert_eq!(status.as_deref(), Some("16"), "UNAUTHENTICATED");

    admitted(lateend, &observer.id, &["127.0.91.1", "127.0.91.4"]).await;
    let eds = endpoints(lateend.debug, &observer.id, SUBSET_V1).await;
    no_endpoints(&eds, &["127.0.91.2", "127.0.91.3", "127.0.91.5"]);
    let log = lateend.process.log();
    refused_once(
        &log,
        &[
            ("127.0.91.2", "is for namespace other"),
            ("127.0.91.3", "is for service account ratings"),
        ],
    );
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ADS stream refused"))
        .collect();
    assert_eq!(refusals.len(), 1, "one line per refused stream:\n{log}");
    assert!(
        refusals[0].contains("not one lateend issued"),
        "{}",
        refusals[0]
    );
    assert!(
        !log.contains("sidecar~127.0.91.5~"),
        "a refused stream never reaches the control plane:\n{log}"
    );
}
