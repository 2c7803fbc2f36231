//! An injected pod's sidecar reaches lateend over TLS on 15012, as in a cluster: the seed's
//! nginx Deployment (`../shared/fixtures/seed/deployment-nginx.yaml`) goes through the
//! injector (`lateen-inject`, what `lateen kube-inject` and the webhook run); its
//! `lateen-proxy` container is started with the pod's own arguments and environment
//! (downward-API values filled as a kubelet would), as UID 1337, in a network namespace of its
//! own with a pod IP from 198.18.0.0/15, and in a private mount namespace where its volumes
//! are bound at their mount paths: the `istio-ca-root-cert` ConfigMap at
//! `/var/run/secrets/istio/root-cert.pem`, the projected token at
//! `/var/run/secrets/tokens/istio-token`, the labels and annotations under `/etc/istio/pod`,
//! and an `/etc/hosts` naming `lateend.istio-system.svc`. With the test cluster
//! (`TestCluster`, `scripts/kube-test-bins.sh`), the pod is created through the real API
//! server first (what it stores is what is run) and the token is a real TokenRequest token
//! for the pod's ServiceAccount with audience `istio-ca`; without it, the pod as injected
//! and a made-up token. lateend runs in the same network
//! namespace on 127.0.0.7 (its serving certificate is for `lateend.istio-system.svc`).
//!
//! The sidecar also gets its workload certificate as pilot-agent would: from `CA_ADDR` (the
//! injector sets it to lateend's 15012), trusting the mounted root and proving itself with
//! the mounted token, then tells lateend it holds one (`LATEEN_MTLS`) and is ready only with
//! it. lateend, inside the namespace, cannot reach the test API server for a TokenReview, so
//! the pod's token is given to it as that pod's bootstrap token (`--bootstrap-token-dir`).
//!
//! Needs root, `ip`, `unshare`, `setpriv`, `curl`, overlayfs and lateend built beside
//! lateen-proxy (`cargo build -p lateen-discovery --bin lateend`); skips with a NOTICE
//! without them, fails instead under `LATEEN_REQUIRE_TOOLS`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lateen_identity::MeshCa;
use lateen_inject::{InjectConfig, Outcome, inject_object, yaml::parse_documents};
use lateen_test_support::kube::container::{ContainerProcess, Pod};
use lateen_test_support::kube::{
    PodRun, TestCluster, VolumeSource, kubelet, pod_container_command,
};
use lateen_test_support::netns::{self, Netns};
use lateen_test_support::process::Children;
use lateen_test_support::wait;
use serde_json::{Value, json};

const PROXY: &str = env!("CARGO_BIN_EXE_lateen-proxy");
const LATEEND_ADDRESS: &str = "127.0.0.7";
/// A JWT's shape, when no test cluster gives a real one (lateend gets it as a bootstrap
/// token).
const MADE_UP_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsiaXN0aW8tY2EiXX0.c2lnbmF0dXJl";
const TOOLS: [&str; 5] = ["ip", "unshare", "setpriv", "curl", "mount"];

/// lateend, built beside lateen-proxy.
fn lateend() -> Option<PathBuf> {
    let path = Path::new(PROXY).with_file_name("lateend");
    path.is_file().then_some(path)
}

fn missing() -> Option<String> {
    netns::missing(&TOOLS).or_else(|| {
        lateend().is_none().then(|| {
            "lateend is not built beside lateen-proxy (cargo build -p lateen-discovery --bin lateend)"
                .to_string()
        })
    })
}

/// The seed's nginx Deployment, injected, as the Pod its ReplicaSet would create.
fn injected_nginx_pod(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/seed/deployment-nginx.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut docs = parse_documents(&text).expect("seed YAML");
    let deployment = &mut docs[0];
    let outcome = inject_object(deployment, &InjectConfig::default()).expect("inject");
    assert!(matches!(outcome, Outcome::Injected), "{outcome:?}");
    let template = &deployment["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    labels["pod-template-hash"] = json!("7c79c4bf97");
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": labels,
            "annotations": template["metadata"]["annotations"].clone(),
        },
        "spec": template["spec"].clone(),
    })
}

/// A "cluster" in one network namespace: lateend on 127.0.0.7 and an injected nginx pod's
/// sidecar trusting `root_pem`.
struct Lab {
    // Field order is drop order: processes, then the namespace, then the files.
    _children: Children,
    netns: Netns,
    dir: tempfile::TempDir,
    pod_ip: String,
    node_id: String,
}

impl Lab {
    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "--- sidecar log:\n{}\n--- lateend log:\n{}",
            self.file("sidecar.log"),
            self.file("lateend.log")
        )
    }

    fn ready_status(&self) -> String {
        self.netns
            .http_status(&format!("http://{}:15021/healthz/ready", self.pod_ip))
    }

    fn lateend_debug(&self, path: &str) -> String {
        self.netns
            .http_body(&format!("http://{LATEEND_ADDRESS}:15014{path}"))
    }
}

/// Where the sidecar runs: its pod's name, IP and node, the mesh root it trusts, the
/// `/etc/hosts` it sees, and where its volumes' files go.
struct Placement<'a> {
    pod_name: &'a str,
    pod_ip: &'a str,
    node: &'a str,
    root_pem: &'a str,
    hosts: PathBuf,
    volumes: PathBuf,
    /// lateen-proxy, copied where UID 1337 can read it.
    program: PathBuf,
}

/// The sidecar of `pod` as the command a kubelet would run, as UID 1337 with the hosts file
/// bound over `/etc/hosts`. With the test cluster (`cluster_test` names the test): the pod as
/// the API server stores it (defaults and admission applied), bound and reported running
/// with its IP, the `istio-ca-root-cert` ConfigMap holding `root_pem`, and a TokenRequest
/// token bound to the pod with the audience its `istio-token` volume asks for. Without a
/// cluster (its binaries not built, or not asked for): the pod as injected, its status filled
/// in here, and a made-up token.
async fn sidecar_command(
    pod: Value,
    at: &Placement<'_>,
    cluster_test: Option<&str>,
) -> (Command, ContainerProcess) {
    let program = at.program.as_path();
    let mut run = PodRun {
        volumes: VolumeSource::Supplied {
            config_maps: &BTreeMap::new(),
            token: MADE_UP_TOKEN,
        },
        dir: at.volumes.clone(),
        base_env: Vec::new(),
        extra_binds: vec![(at.hosts.clone(), "/etc/hosts".to_string())],
        run_as: Some(1337),
    };
    let cluster = cluster_test.and_then(TestCluster::shared);
    let result = match cluster {
        Some(cluster) => {
            let pod = stored_running(cluster, pod, at).await;
            run.volumes = VolumeSource::Cluster(cluster);
            run.base_env = cluster.kubernetes_service_env();
            pod_container_command(&pod, lateen_inject::PROXY_CONTAINER, program, &run).await
        }
        None => {
            let mut pod = pod;
            pod["spec"]["nodeName"] = json!(at.node);
            pod["status"] = json!({
                "phase": "Running", "podIP": at.pod_ip, "podIPs": [{"ip": at.pod_ip}],
                "hostIP": at.pod_ip, "hostIPs": [{"ip": at.pod_ip}],
            });
            let pod: Pod = serde_json::from_value(pod).expect("injected pod as a Pod");
            let config_maps = BTreeMap::from([(
                "istio-ca-root-cert".to_string(),
                BTreeMap::from([("root-cert.pem".to_string(), at.root_pem.to_string())]),
            )]);
            run.volumes = VolumeSource::Supplied {
                config_maps: &config_maps,
                token: MADE_UP_TOKEN,
            };
            pod_container_command(&pod, lateen_inject::PROXY_CONTAINER, program, &run).await
        }
    };
    result.unwrap_or_else(|e| panic!("the sidecar's command: {e:#}"))
}

/// `pod` created through the API server and reported running on `at.node` with `at.pod_ip`,
/// as stored; `istio-ca-root-cert` in its namespace holds `at.root_pem`.
async fn stored_running(cluster: &TestCluster, pod: Value, at: &Placement<'_>) -> Pod {
    // kube-controller-manager creates the namespace's default ServiceAccount soon after
    // start; the API server refuses pods of a ServiceAccount that does not exist yet.
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = cluster.service_account_token("default", "default", &["istio-ca"]) {
        assert!(Instant::now() < deadline, "{e:#}");
        eprintln!("waiting for the default ServiceAccount: {e:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let root = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "istio-ca-root-cert", "namespace": "default"},
        "data": {"root-cert.pem": at.root_pem},
    });
    cluster
        .apply(&root.to_string())
        .unwrap_or_else(|e| panic!("{e:#}"));
    let json = serde_json::to_vec(&pod).expect("pod JSON");
    let created = cluster.kubectl(&["create", "-f", "-"], Some(&json));
    assert!(
        created.status.success(),
        "the API server refused the injected pod: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let client = cluster.client().await;
    let ip = at.pod_ip.parse().expect("pod IP");
    if let Err(e) = kubelet::create_node(&client, at.node, &[], ip).await {
        eprintln!("node {}: {e}", at.node);
    }
    kubelet::set_pod_running(&client, "default", at.pod_name, at.node, ip)
        .await
        .unwrap_or_else(|e| panic!("pod {} running: {e}", at.pod_name))
}

/// Starts an injected pod's sidecar and lateend in a fresh namespace. lateend's CA (kept in
/// `--ca-dir`, made here first so its root can go into the pod's `istio-ca-root-cert`) is its
/// one-machine CA: lateend in the namespace cannot reach the test API server for a
/// TokenReview, so the token the pod was given (a TokenRequest token with the test cluster)
/// is handed to lateend as the pod's bootstrap token for `default/SERVICE_ACCOUNT`.
/// `root_pem` chooses the root the sidecar trusts (given lateend's); `cluster_test` names
/// the test when the pod and its token come from the test cluster.
fn start(
    test: &str,
    pod_ip: &str,
    root_pem: impl FnOnce(&str) -> String,
    cluster_test: Option<&str>,
) -> Lab {
    let dir = tempfile::tempdir().expect("temp dir");
    // UID 1337 reads the binary and the volumes below it.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod lab dir");
    let ca = MeshCa::self_signed("cluster.local").expect("mesh CA");
    let ca_dir = dir.path().join("ca");
    ca.files().write_dir(&ca_dir).expect("write the CA");
    let lateend_ca = ca.root_cert_pem().to_string();

    let pod_name = "nginx-deployment-7c79c4bf97-x2x7k";
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        format!(
            "127.0.0.1 localhost\n{pod_ip} {pod_name}\n{LATEEND_ADDRESS} lateend.istio-system.svc\n"
        ),
    )
    .expect("hosts");
    let root_pem = root_pem(&lateend_ca);
    let program = dir.path().join("lateen-proxy");
    std::fs::copy(PROXY, &program).expect("copy lateen-proxy");
    let placement = Placement {
        pod_name,
        pod_ip,
        node: "kind-worker",
        root_pem: &root_pem,
        hosts,
        volumes: dir.path().join("volumes"),
        program,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (command, sidecar) = runtime.block_on(sidecar_command(
        injected_nginx_pod(pod_name),
        &placement,
        cluster_test,
    ));
    // The image's entrypoint is lateen-proxy (docker/proxy.Dockerfile); the pod gives args.
    assert!(sidecar.command.is_empty(), "{sidecar:?}");
    assert_eq!(sidecar.args[0], "sidecar", "{sidecar:?}");
    let account = command
        .get_envs()
        .find(|(key, _)| *key == "SERVICE_ACCOUNT")
        .and_then(|(_, value)| value)
        .map(|value| value.to_string_lossy().into_owned())
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| "default".into());
    let token = find_file(&placement.volumes, "istio-token").expect("the pod's istio-token");
    let tokens = dir.path().join("tokens");
    let token_dir = tokens.join("default").join(&account);
    std::fs::create_dir_all(&token_dir).expect("token dir");
    std::fs::copy(&token, token_dir.join("istio-token")).expect("bootstrap token");

    let netns = Netns::create(&format!("lateen-{test}-{}", std::process::id() % 100_000));
    netns.add_address(pod_ip);
    let mut children = Children::default();
    let config_dir = dir.path().join("config");
    std::fs::create_dir_all(&config_dir).expect("config dir");
    let ca_file = dir.path().join("lateend-ca.pem");
    let lateend = lateend().expect("checked before");
    let lateend = lateend.to_string_lossy();
    let address = |port: u16| format!("{LATEEND_ADDRESS}:{port}");
    children.push(
        netns
            .spawn(
                &[
                    &lateend,
                    "--config-dir",
                    &config_dir.to_string_lossy(),
                    "--ca-dir",
                    &ca_dir.to_string_lossy(),
                    "--cacerts-dir",
                    &dir.path().join("no-cacerts").to_string_lossy(),
                    "--bootstrap-token-dir",
                    &tokens.to_string_lossy(),
                    "--webhook-ca-out",
                    &ca_file.to_string_lossy(),
                    "--xds-address",
                    &address(15010),
                    "--xds-tls-address",
                    &address(15012),
                    "--debug-address",
                    &address(15014),
                    "--webhook-address",
                    &address(15017),
                    "--http-address",
                    &address(8080),
                ],
                &dir.path().join("lateend.log"),
                |_| {},
            )
            .expect("start lateend"),
    );
    let pem = wait::poll(Duration::from_secs(30), || {
        std::fs::read_to_string(&ca_file)
            .ok()
            .filter(|pem| pem.contains("END CERTIFICATE"))
    })
    .unwrap_or_else(|| {
        panic!(
            "lateend wrote no CA: {}",
            std::fs::read_to_string(dir.path().join("lateend.log")).unwrap_or_default()
        )
    });
    assert_eq!(
        pem.trim(),
        lateend_ca.trim(),
        "lateend serves with its --ca-dir"
    );

    let words: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|w| w.to_string_lossy().into_owned())
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    children.push(
        netns
            .spawn(&words, &dir.path().join("sidecar.log"), |cmd| {
                cmd.env_clear().env(
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                );
                for (key, value) in command.get_envs() {
                    if let Some(value) = value {
                        cmd.env(key, value);
                    }
                }
            })
            .expect("start the sidecar"),
    );
    Lab {
        _children: children,
        netns,
        dir,
        pod_ip: pod_ip.to_string(),
        node_id: format!("sidecar~{pod_ip}~{pod_name}.default~default.svc.cluster.local"),
    }
}

/// The first file called `name` below `dir`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if entry.file_name() == name {
            return Some(path);
        }
    }
    None
}

fn wait_for(lab: &Lab, what: &str, limit: Duration, done: impl FnMut() -> bool) {
    wait::until_or(what, limit, done, || lab.logs());
}

#[test]
fn injected_sidecar_connects_over_tls_and_becomes_ready() {
    if !netns::can_run(
        "injected_sidecar_connects_over_tls_and_becomes_ready",
        missing(),
    ) {
        return;
    }
    let lab = start(
        "tls-ok",
        "198.18.61.10",
        |lateend_ca| lateend_ca.to_string(),
        Some("injected_sidecar_connects_over_tls_and_becomes_ready"),
    );
    wait_for(&lab, "/healthz/ready 200", Duration::from_secs(60), || {
        lab.ready_status() == "200"
    });
    let log = lab.file("sidecar.log");
    assert!(
        log.contains(
            "TLS (root /var/run/secrets/istio/root-cert.pem, server name lateend.istio-system.svc)"
        ),
        "{log}"
    );
    assert!(
        log.contains("workload certificate issued")
            && log.contains("spiffe://cluster.local/ns/default/sa/default"),
        "the sidecar got its certificate from lateend's CA (CA_ADDR):\n{}",
        lab.logs()
    );
    // Holding a certificate, it told lateend (LATEEN_MTLS), which sent Istio's PERMISSIVE
    // inbound chains (TLS and plaintext) for it.
    let dump = lab.netns.http_body("http://127.0.0.1:15000/config_dump");
    assert!(
        dump.replace(' ', "").contains("\"mtls\":\"permissive\""),
        "{dump}\n{}",
        lab.logs()
    );
    let syncz = lab.lateend_debug("/debug/syncz");
    assert!(syncz.contains(&lab.node_id), "{syncz}\n{}", lab.logs());
    let metrics = lab.lateend_debug("/metrics");
    let token_streams: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("lateend_xds_token_streams_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_default();
    assert!(
        token_streams >= 1.0,
        "no stream carried the token:\n{metrics}"
    );
}

#[test]
fn sidecar_trusting_another_ca_fails_the_handshake_and_stays_unready() {
    if !netns::can_run(
        "sidecar_trusting_another_ca_fails_the_handshake_and_stays_unready",
        missing(),
    ) {
        return;
    }
    let other_ca = lateen_inject::webhook::WebhookCert::generate_for_lateend()
        .expect("another CA")
        .ca_pem;
    let lab = start("tls-bad", "198.18.61.11", move |_| other_ca, None);
    wait_for(
        &lab,
        "a failed TLS handshake in the log",
        Duration::from_secs(30),
        || {
            let log = lab.file("sidecar.log");
            log.contains("ADS connection failed") && log.contains("invalid peer certificate")
        },
    );
    // Retried with backoff, never ready, never connected.
    wait_for(&lab, "a second attempt", Duration::from_secs(30), || {
        lab.file("sidecar.log")
            .matches("ADS connection failed")
            .count()
            >= 2
    });
    assert_eq!(lab.ready_status(), "503", "{}", lab.logs());
    let syncz = lab.lateend_debug("/debug/syncz");
    assert!(!syncz.contains(&lab.node_id), "{syncz}");
}
