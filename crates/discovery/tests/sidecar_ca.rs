//! `lateen-proxy sidecar` gets its own workload certificate from lateend's CA as pilot-agent
//! does for Envoy: the built binaries as child processes, ADS in plaintext on one machine, the
//! CA from Istio's injected settings (`CA_ADDR` on lateend's TLS port, `XDS_ROOT_CA`,
//! `ISTIOD_SAN`, `JWT_PATH`). While the CA refuses its token the sidecar has its
//! configuration but is not ready; once the token file holds its bootstrap token (re-read on
//! every attempt, as a rotated projected token is) it gets
//! `spiffe://cluster.local/ns/default/sa/reviews`, becomes ready, and — having told lateend
//! it holds a certificate (`LATEEN_MTLS`) — serves Istio's PERMISSIVE inbound listener.
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

/// `lateen-proxy sidecar` as the injector would start it for default/reviews, with lateend
/// at `xds` (plaintext) and its CA at `ca` (TLS, trusting `root`), the token at `token`.
fn start_sidecar(work: &Path, xds: u16, ca: u16, root: &Path, token: &Path) -> (Process, u16, u16) {
    let (admin, health) = (free_port(), free_port());
    let log = work.join("sidecar.log");
    let local = |port: u16| format!("127.0.0.1:{port}");
    let child = Command::new(dataplane::lateen_proxy_binary())
        .arg("sidecar")
        // `http://`: plaintext ADS although XDS_ROOT_CA is set (it is for the CA here).
        .args(["--discovery-address", &format!("http://{}", local(xds))])
        .args(["--admin-address", &local(admin)])
        .args(["--health-address", &local(health)])
        .args(["--metrics-address", &local(free_port())])
        .args(["--concurrency", "1", "--labels-file", "/nonexistent"])
        .env("POD_NAME", "reviews-1")
        .env("POD_NAMESPACE", "default")
        .env("INSTANCE_IP", ADDRESS)
        .env("SERVICE_ACCOUNT", "reviews")
        .env("ISTIO_META_INTERCEPTION_MODE", "NONE")
        .env(
            "ISTIO_METAJSON_LABELS",
            r#"{"app":"reviews","version":"v1"}"#,
        )
        .env("CA_ADDR", local(ca))
        .env("XDS_ROOT_CA", root)
        .env("ISTIOD_SAN", "lateend.istio-system.svc")
        .env("JWT_PATH", token)
        .env("LATEEN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("sidecar log"))
        .spawn()
        .expect("spawn lateen-proxy sidecar");
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
        lateend.xds,
        lateend.xds_tls,
        &mesh.root,
        &token,
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
