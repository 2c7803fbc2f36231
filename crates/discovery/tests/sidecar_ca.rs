//! `lateen-proxy sidecar` gets its own workload certificate from lateend's CA as pilot-agent
//! does for Envoy: the built binaries as child processes, ADS in plaintext on one machine, the
//! CA from Istio's injected settings (`CA_ADDR` on lateend's TLS port, `XDS_ROOT_CA`,
//! `ISTIOD_SAN`, `JWT_PATH`). While the CA refuses its token the sidecar has its
//! configuration but is not ready; once the token file holds its bootstrap token (re-read on
//! every attempt, as a rotated projected token is) it gets
//! `spiffe://cluster.local/ns/default/sa/reviews`, becomes ready, and — having told lateend
//! it holds a certificate (`LATEEN_MTLS`) — serves Istio's PERMISSIVE inbound listener.
//! Over TLS ADS, lateend knows a sidecar by its token or the certificate it presents, and
//! auto-registers it only when that identity's namespace is the one its metadata claims.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;
#[path = "common/dataplane.rs"]
mod dataplane;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::lateend::{Local, local};
use common::{Process, free_port, get, wait_until, write_config};

const ADDRESS: &str = "127.0.67.1";

/// A Sidecar giving the workload an inbound listener on its own address (interception NONE).
const SIDECAR: &str = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: reviews, namespace: default}\nspec:\n  workloadSelector: {labels: {app: reviews}}\n  ingress:\n  - port: {number: 9080, name: http, protocol: HTTP}\n    bind: 127.0.67.1\n    defaultEndpoint: 127.0.0.1:19999\n";

/// How a test starts one `lateen-proxy sidecar` of default/reviews.
struct Sidecar<'a> {
    /// Its log file's name and POD_NAME.
    name: &'a str,
    /// INSTANCE_IP.
    address: &'a str,
    /// `http://` (plaintext) or `https://` (TLS) and lateend's address.
    discovery: String,
    /// lateend's TLS port as `CA_ADDR`; `None`: the CA is the (TLS) control plane.
    ca: Option<u16>,
    /// JWT_PATH.
    token: &'a Path,
    /// Istio's file-mounted certificate folder (`--cert-dir`).
    cert_dir: Option<&'a Path>,
    /// ISTIO_META_AUTO_REGISTER_GROUP.
    group: Option<&'a str>,
}

/// `lateen-proxy sidecar` as the injector would start it for default/reviews, trusting
/// lateend's `root`; its log in `work/NAME.log`.
fn start_sidecar(work: &Path, root: &Path, sidecar: &Sidecar) -> (Process, u16, u16) {
    let (admin, health) = (free_port(), free_port());
    let log = work.join(format!("{}.log", sidecar.name));
    let local = |port: u16| format!("127.0.0.1:{port}");
    let mut command = Command::new(dataplane::lateen_proxy_binary());
    command
        .arg("sidecar")
        .args(["--discovery-address", &sidecar.discovery])
        .args(["--admin-address", &local(admin)])
        .args(["--health-address", &local(health)])
        .args(["--metrics-address", &local(free_port())])
        .args(["--concurrency", "1", "--labels-file", "/nonexistent"])
        .env("POD_NAME", sidecar.name)
        .env("POD_NAMESPACE", "default")
        .env("INSTANCE_IP", sidecar.address)
        .env("SERVICE_ACCOUNT", "reviews")
        .env("ISTIO_META_INTERCEPTION_MODE", "NONE")
        .env(
            "ISTIO_METAJSON_LABELS",
            r#"{"app":"reviews","version":"v1"}"#,
        )
        .env("XDS_ROOT_CA", root)
        .env("ISTIOD_SAN", "lateend.istio-system.svc")
        .env("JWT_PATH", sidecar.token)
        .env("LATEEN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("sidecar log"));
    if let Some(ca) = sidecar.ca {
        command.env("CA_ADDR", local(ca));
    }
    if let Some(dir) = sidecar.cert_dir {
        command.arg("--cert-dir").arg(dir);
    }
    if let Some(group) = sidecar.group {
        command.env("ISTIO_META_AUTO_REGISTER_GROUP", group);
    }
    let child = command.spawn().expect("spawn lateen-proxy sidecar");
    let process = Process {
        child: lateen_test_support::process::ChildGuard::new(child),
        log,
        admin_path: None,
    };
    (process, admin, health)
}

#[tokio::test]
async fn sidecar_is_ready_only_with_its_certificate_from_the_mesh_ca() {
    let work = tempfile::tempdir().expect("tempdir");
    let mesh: Local = local(work.path(), &[]).await;
    let lateend = &mesh.lateend;
    write_config(&work.path().join("config"), "sidecar.yaml", SIDECAR);
    let token = work.path().join("istio-token");
    std::fs::write(&token, "not-a-token").expect("token");
    let (sidecar, admin, health) = start_sidecar(
        work.path(),
        &mesh.root,
        &Sidecar {
            name: "sidecar",
            address: ADDRESS,
            // `http://`: plaintext ADS although XDS_ROOT_CA is set (it is for the CA here).
            discovery: format!("http://127.0.0.1:{}", lateend.xds),
            ca: Some(lateend.xds_tls),
            token: &token,
            cert_dir: None,
            group: None,
        },
    );

    // Configured, but the CA refuses the token: not ready.
    wait_until("the sidecar's first configuration", || async {
        let log = sidecar.log();
        log.contains("accepted CDS update") && log.contains("accepted LDS update")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", sidecar.log_tail()));
    wait_until("a refused certificate request", || async {
        sidecar
            .log()
            .contains("workload certificate request failed")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", sidecar.log_tail()));
    assert!(
        sidecar.log().contains("Unauthenticated"),
        "{}",
        sidecar.log_tail()
    );
    let status = get(health, "x", "/healthz/ready", &[]).await.map(|r| r.0);
    assert_eq!(status, Some(503), "{}", sidecar.log_tail());

    // Its own bootstrap token: a certificate, then ready.
    let own = mesh.tokens.join("default/reviews/istio-token");
    std::fs::copy(&own, &token).expect("the reviews token");
    let deadline = Instant::now() + Duration::from_secs(40);
    while get(health, "x", "/healthz/ready", &[]).await.map(|r| r.0) != Some(200) {
        assert!(
            Instant::now() < deadline,
            "not ready with its token:\n{}",
            sidecar.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = sidecar.log();
    assert!(
        log.lines()
            .any(|l| l.contains("workload certificate issued")
                && l.contains("spiffe://cluster.local/ns/default/sa/reviews")),
        "{log}"
    );
    let (_, dump) = get(admin, "x", "/config_dump", &[])
        .await
        .expect("config_dump");
    assert!(
        dump.replace(' ', "").contains("\"mtls\":\"permissive\""),
        "LATEEN_MTLS gave it Istio's PERMISSIVE inbound listener:\n{dump}"
    );
}

/// A WorkloadGroup that admits default/reviews (istiod checks the service account against
/// the template's).
const GROUP: &str = "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: reviews, namespace: default}\nspec:\n  template: {serviceAccount: reviews}\n";

/// lateend's log lines about the proxy at `address` (its node id `sidecar~ADDRESS~...`).
fn about(log: &str, address: &str) -> Vec<String> {
    let node = format!("sidecar~{address}~");
    log.lines()
        .filter(|l| l.contains(&node))
        .map(str::to_string)
        .collect()
}

/// lateend knows a sidecar on its TLS port by its token or its certificate, as istiod does:
/// four `lateen-proxy sidecar`s of default/reviews naming the `reviews` WorkloadGroup, ADS over
/// TLS. With its own token it is auto-registered; with the token of other/reviews it is not
/// (the metadata claims `default`); with a file-mounted certificate of other/reviews and a
/// forged token it is known by the certificate it presents and not registered either; with
/// only a forged token its stream is refused with UNAUTHENTICATED and never reaches the
/// control plane. Under a second.
#[tokio::test]
async fn lateend_knows_a_sidecar_on_the_tls_port_by_its_token_or_certificate() {
    let work = tempfile::tempdir().expect("tempdir");
    let mesh: Local = local(work.path(), &["--bootstrap-identity", "other/reviews"]).await;
    let lateend = &mesh.lateend;
    write_config(&work.path().join("config"), "group.yaml", GROUP);
    let forged = work.path().join("forged-token");
    std::fs::write(&forged, "not-a-token").expect("token");
    let cert_dir = work.path().join("other-certs");
    let other = mesh.workload_certificate("other", "reviews");
    std::fs::create_dir_all(&cert_dir).expect("cert dir");
    std::fs::write(cert_dir.join("cert-chain.pem"), other.chain_pem()).expect("chain");
    std::fs::write(cert_dir.join("key.pem"), other.key_pem()).expect("key");
    std::fs::copy(&mesh.root, cert_dir.join("root-cert.pem")).expect("root");
    let (own, other_token) = (
        mesh.token("default", "reviews"),
        mesh.token("other", "reviews"),
    );
    let start = |name, address, token, cert_dir| {
        let sidecar = Sidecar {
            name,
            address,
            discovery: format!("https://127.0.0.1:{}", lateend.xds_tls),
            ca: None,
            token,
            cert_dir,
            group: Some("reviews"),
        };
        start_sidecar(work.path(), &mesh.root, &sidecar).0
    };
    let _matching = start("matching", "127.0.68.1", &own, None);
    let _token_impostor = start("token-impostor", "127.0.68.2", &other_token, None);
    let _cert_impostor = start("cert-impostor", "127.0.68.3", &forged, Some(&cert_dir));
    let refused = start("forged", "127.0.68.4", &forged, None);

    let verdicts = wait_until("lateend's verdicts on the sidecars", || async {
        let log = lateend.process.log();
        ["127.0.68.1", "127.0.68.2", "127.0.68.3"]
            .iter()
            .all(|address| {
                about(&log, address).iter().any(|l| {
                    l.contains("auto-registration refused")
                        || l.contains("workload auto-registered")
                })
            })
            && refused.log().contains("ADS connection failed")
    })
    .await;
    if let Err(e) = verdicts {
        panic!("{e}\n{}", lateend.process.log_tail());
    }
    let log = lateend.process.log();
    let matching = about(&log, "127.0.68.1");
    assert!(
        matching
            .iter()
            .any(|l| l.contains("workload auto-registered")),
        "its own token registers it:\n{log}"
    );
    for address in ["127.0.68.2", "127.0.68.3"] {
        let lines = about(&log, address);
        assert!(
            lines.iter().any(|l| l.contains("auto-registration refused")
                && l.contains("is for namespace other, but its metadata claims namespace default")),
            "{address} is not registered:\n{log}"
        );
        assert!(
            !lines.iter().any(|l| l.contains("workload auto-registered")),
            "{log}"
        );
    }
    // Its token is forged: only the certificate it presented can have let it in.
    assert!(
        about(&log, "127.0.68.3")
            .iter()
            .any(|l| l.contains("proxy connected")
                && l.contains("spiffe://cluster.local/ns/other/sa/reviews")),
        "the sidecar presents its file-mounted certificate:\n{log}"
    );
    assert!(about(&log, "127.0.68.4").is_empty(), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("ADS stream refused") && l.contains("not one lateend issued")),
        "{log}"
    );
    assert!(
        refused
            .log()
            .lines()
            .any(|l| l.contains("ADS connection failed")
                // tonic's words for UNAUTHENTICATED.
                && l.contains("does not have valid authentication credentials")
                && l.contains("not one lateend issued")),
        "{}",
        refused.log_tail()
    );
}
