//! `lateen install -y --set profile=demo` into a real API server (test-support's `TestCluster`,
//! RBAC on), then lateend started exactly as the rendered Deployment starts it: the
//! container's args and env read back from the API server, downward-API values filled in as a
//! kubelet would, the ServiceAccount's token and CA bind-mounted at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in a private mount namespace and
//! `KUBERNETES_SERVICE_HOST/PORT` pointing at the API server — so every write is checked by the
//! RBAC `install` renders. Only the listen addresses are overridden (appended `--grpcAddr
//! 127.0.0.1:0 ...`, the last value wins as with istiod's flags), so two replicas and other
//! tests can share the machine.
//!
//! Needs root (`unshare --mount`), the Kubernetes test binaries (`scripts/kube-test-bins.sh`)
//! and `lateend` built beside `lateen` (`cargo build --bins -p lateen-discovery`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use lateen_test_support::kube::{TestCluster, kubelet};
use lateen_test_support::probe::{http_status, logged_address};
use lateen_test_support::process::ChildGuard;
use lateen_test_support::wait::{self, until_some};
use serde_json::Value;

const NS: &str = "istio-system";
const ROOT_CERT: &str = "istio-ca-root-cert";
const ROOT_CERT_LEASE: &str = "istio-namespace-controller-election";
const WEBHOOK_LEASE: &str = "istio-validation-controller-election";
/// Every listener on loopback, port 0 (appended after the rendered args).
const LOOPBACK_LISTENERS: &[&str] = &[
    "--grpcAddr=127.0.0.1:0",
    "--secureGRPCAddr=127.0.0.1:0",
    "--monitoringAddr=127.0.0.1:0",
    "--httpAddr=127.0.0.1:0",
    "--httpsAddr=127.0.0.1:0",
];

fn lateen() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lateen"))
}

fn lateend() -> PathBuf {
    let path = lateen().with_file_name("lateend");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins -p lateen-discovery` first",
        path.display()
    );
    path
}

fn get_json(cluster: &TestCluster, args: &[&str]) -> Option<Value> {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    let out = cluster.kubectl(&full, None);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn lease_holder(cluster: &TestCluster, lease: &str) -> Option<String> {
    get_json(cluster, &["lease", lease, "-n", NS])?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_string)
}

fn root_cert(cluster: &TestCluster, namespace: &str) -> Option<String> {
    get_json(cluster, &["configmap", ROOT_CERT, "-n", namespace])?["data"]["root-cert.pem"]
        .as_str()
        .map(str::to_string)
}

/// The caBundles (PEM) of every webhook in a webhook configuration.
fn ca_bundles(cluster: &TestCluster, kind: &str, name: &str) -> Vec<String> {
    let config = get_json(cluster, &[kind, name]).unwrap_or(Value::Null);
    config["webhooks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|hook| {
            let b64 = hook["clientConfig"]["caBundle"].as_str().unwrap_or("");
            let pem = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default();
            String::from_utf8_lossy(&pem).into_owned()
        })
        .collect()
}

/// The container's env as the kubelet resolves it for pod `pod` of ServiceAccount `account`.
fn resolved_env(container: &Value, pod: &str, account: &str) -> Vec<(String, String)> {
    let mut env = vec![];
    for var in container["env"].as_array().into_iter().flatten() {
        let name = var["name"].as_str().expect("env name").to_string();
        let value = if let Some(v) = var["value"].as_str() {
            v.to_string()
        } else {
            match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => pod.to_string(),
                Some("metadata.namespace") => NS.to_string(),
                Some("spec.serviceAccountName") => account.to_string(),
                other => panic!("env {name}: cannot resolve {other:?} as a kubelet would"),
            }
        };
        env.push((name, value));
    }
    env
}

/// One lateend process run as a pod of the Deployment; killed on drop.
struct Replica {
    child: ChildGuard,
    log: PathBuf,
}

impl Replica {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn address(&self, message: &str) -> std::net::SocketAddr {
        until_some(
            &format!("lateend to log {message:?}"),
            Duration::from_secs(20),
            || logged_address(&self.log(), message),
        )
    }

    /// SIGTERM (a pod's shutdown), then wait for the exit.
    fn terminate(mut self) {
        self.child.signal("TERM");
        if self.child.wait_exit(Duration::from_secs(10)).is_none() {
            panic!("lateend did not stop on SIGTERM:\n{}", self.log());
        }
    }
}

fn start_replica(
    cluster: &TestCluster,
    container: &Value,
    pod: &str,
    account: &str,
    work: &Path,
) -> Replica {
    let token = cluster
        .service_account_token(NS, account, &[])
        .expect("ServiceAccount token");
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("container args")
        .iter()
        .map(|a| a.as_str().expect("string arg"))
        .collect();
    assert_eq!(args.first(), Some(&"discovery"), "istiod's form: {args:?}");
    let log = work.join(format!("{pod}.log"));
    let mut command = cluster
        .in_cluster_command(&lateend(), NS, &token)
        .expect("in-cluster command");
    command
        .args(&args)
        .args(LOOPBACK_LISTENERS)
        .envs(resolved_env(container, pod, account))
        .stdout(Stdio::from(std::fs::File::create(&log).expect("log")))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&log)
                .expect("log"),
        ));
    let child = command.spawn().expect("spawn lateend");
    Replica {
        child: ChildGuard::new(child),
        log,
    }
}

fn wait_ready(replica: &Replica, what: &str) -> Duration {
    let started = Instant::now();
    let http = replica.address("serving readiness (/ready)");
    wait::until_or(
        &format!("{what} to become ready"),
        Duration::from_secs(30),
        || http_status(http, "/ready", Duration::from_secs(2)) == Some(200),
        || replica.log(),
    );
    started.elapsed()
}

#[test]
fn lateend_runs_as_installed_and_writes_what_istiod_writes() {
    let Some(cluster) = TestCluster::start_or_skip("install_kube") else {
        return;
    };
    let work = cluster.dir().join("install_kube");
    std::fs::create_dir_all(&work).expect("work dir");
    // A namespace labelled for injection before lateend runs, and default as it is.
    cluster
        .kubectl_ok(&["create", "namespace", "labelled"], None)
        .expect("kubectl");
    cluster
        .kubectl_ok(
            &["label", "namespace", "labelled", "istio-injection=enabled"],
            None,
        )
        .expect("kubectl");

    let install = Command::new(lateen())
        .args(["install", "-y", "--set", "profile=demo", "--kubeconfig"])
        .arg(cluster.kubeconfig())
        // Nothing runs the gateways' pods, so waiting for them would only time out.
        .args(["--readiness-timeout", "1s"])
        .output()
        .expect("running lateen install");
    let deployment =
        get_json(&cluster, &["deployment", "lateend", "-n", NS]).unwrap_or_else(|| {
            panic!(
                "lateen install did not create the lateend Deployment:\n{}\n{}",
                String::from_utf8_lossy(&install.stdout),
                String::from_utf8_lossy(&install.stderr)
            )
        });
    let spec = &deployment["spec"]["template"]["spec"];
    let account = spec["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    let container = spec["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "discovery"))
        .expect("the discovery container")
        .clone();
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"], "/ready",
        "the probe lateend answers"
    );
    // kube-controller-manager made the ReplicaSet and its Pod: that Pod's name is POD_NAME.
    let pod_a = until_some("the lateend Pod", Duration::from_secs(60), || {
        get_json(&cluster, &["pods", "-n", NS, "-l", "app=lateend"])?["items"][0]["metadata"]
            ["name"]
            .as_str()
            .map(str::to_string)
    });

    // An Istio object the CRD accepts but Istio's validation refuses (a mesh-bound wildcard
    // host), stored before lateend runs (the validating webhook is failurePolicy Ignore then).
    let wildcard = br#"{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "wildcard", "namespace": "labelled"},
        "spec": {"hosts": ["*"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}"#;
    cluster
        .kubectl_ok(&["create", "-f", "-"], Some(wildcard))
        .expect("kubectl");

    let a = start_replica(&cluster, &container, &pod_a, account, &work);
    let took = wait_ready(&a, "replica A");
    println!("replica A ready (/ready 200) {took:?} after start");
    // Its readiness probe passes, so a kubelet reports the Pod ready: the Deployment is
    // available.
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let client = cluster.client().await;
            kubelet::create_node(&client, "node-a", &[], "198.18.0.1".parse().unwrap())
                .await
                .expect("node");
            kubelet::set_pod_running(
                &client,
                NS,
                &pod_a,
                "node-a",
                "198.18.0.10".parse().unwrap(),
            )
            .await
            .expect("pod running and ready");
        });
    until_some(
        "the lateend Deployment available",
        Duration::from_secs(30),
        || {
            let status =
                get_json(&cluster, &["deployment", "lateend", "-n", NS])?["status"].clone();
            (status["availableReplicas"] == 1).then_some(())
        },
    );

    // It holds the Leases and publishes the root certificate everywhere.
    for lease in [ROOT_CERT_LEASE, WEBHOOK_LEASE] {
        until_some(
            &format!("{lease} held by {pod_a}"),
            Duration::from_secs(20),
            || (lease_holder(&cluster, lease).as_deref() == Some(pod_a.as_str())).then_some(()),
        );
    }
    let ca_a = until_some(
        "istio-ca-root-cert in labelled",
        Duration::from_secs(20),
        || root_cert(&cluster, "labelled"),
    );
    assert!(ca_a.contains("BEGIN CERTIFICATE"), "{ca_a}");
    for ns in ["default", NS, "kube-system"] {
        let ca = until_some(
            &format!("{ROOT_CERT} in {ns}"),
            Duration::from_secs(20),
            || root_cert(&cluster, ns),
        );
        assert_eq!(ca, ca_a, "{ns}");
    }
    assert_eq!(
        root_cert(&cluster, "kube-public"),
        None,
        "istiod skips kube-public"
    );

    // The refused VirtualService carries Istio's status, written by the status Lease's holder.
    let status = until_some(
        "IST0106 on the wildcard VirtualService",
        Duration::from_secs(20),
        || {
            let vs = get_json(&cluster, &["virtualservice", "wildcard", "-n", "labelled"])?;
            vs["status"]["validationMessages"]
                .is_array()
                .then(|| vs["status"].clone())
        },
    );
    assert_eq!(status["validationMessages"][0]["type"]["code"], "IST0106");
    assert_eq!(status["observedGeneration"], "1");
    assert_eq!(
        lease_holder(&cluster, "istio-analyze-leader").as_deref(),
        Some(pod_a.as_str())
    );
    // Everything it watches and writes, the rendered RBAC allows.
    assert!(
        !a.log().to_lowercase().contains("forbidden"),
        "RBAC refused lateend something:\n{}",
        a.log()
    );

    // Its webhooks' caBundle is that CA...
    until_some("the injector's caBundle", Duration::from_secs(20), || {
        let bundles = ca_bundles(
            &cluster,
            "mutatingwebhookconfiguration",
            "istio-sidecar-injector",
        );
        (!bundles.is_empty() && bundles.iter().all(|b| *b == ca_a)).then_some(())
    });
    until_some("the validator's caBundle", Duration::from_secs(20), || {
        let bundles = ca_bundles(
            &cluster,
            "validatingwebhookconfiguration",
            "istio-validator-istio-system",
        );
        (!bundles.is_empty() && bundles.iter().all(|b| *b == ca_a)).then_some(())
    });
    // ... and the API server, calling the injection webhook through lateend's Service name with
    // that bundle, gets through TLS (failurePolicy Fail: a bad bundle would refuse the Pod).
    let webhook = a.address("serving the sidecar-injection webhook");
    cluster.set_host_port("lateend.istio-system.svc", 443, webhook);
    until_some(
        "labelled's default ServiceAccount",
        Duration::from_secs(30),
        || get_json(&cluster, &["serviceaccount", "default", "-n", "labelled"]),
    );
    let pod = br#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": "labelled"},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]}}"#;
    cluster
        .kubectl_ok(&["create", "-f", "-"], Some(pod))
        .expect("kubectl");

    // Once the API server reaches /validate and it refuses istiod's always-reject probe, both
    // validating configurations are switched to failurePolicy Fail, and an object Istio
    // refuses stays out of the cluster.
    for name in ["istio-validator-istio-system", "istiod-default-validator"] {
        until_some(
            &format!("{name} fail-closed"),
            Duration::from_secs(40),
            || {
                let config = get_json(&cluster, &["validatingwebhookconfiguration", name])?;
                let hooks = config["webhooks"].as_array()?.clone();
                hooks
                    .iter()
                    .all(|h| h["failurePolicy"] == "Fail")
                    .then_some(())
            },
        );
    }
    let second = String::from_utf8_lossy(wildcard).replace("\"wildcard\"", "\"wildcard-2\"");
    let refused = cluster.kubectl(&["create", "-f", "-"], Some(second.as_bytes()));
    assert!(
        !refused.status.success(),
        "a second wildcard VirtualService was stored after validation went fail-closed"
    );

    // A new namespace gets the ConfigMap; a deleted one comes back; an edited one is corrected.
    cluster
        .kubectl_ok(&["create", "namespace", "fresh"], None)
        .expect("kubectl");
    let fresh = until_some(
        "istio-ca-root-cert in fresh",
        Duration::from_secs(10),
        || root_cert(&cluster, "fresh"),
    );
    assert_eq!(fresh, ca_a);
    cluster
        .kubectl_ok(&["delete", "configmap", ROOT_CERT, "-n", "fresh"], None)
        .expect("kubectl");
    until_some(
        "istio-ca-root-cert back in fresh",
        Duration::from_secs(10),
        || root_cert(&cluster, "fresh").filter(|c| *c == ca_a),
    );
    cluster
        .kubectl_ok(
            &[
                "patch",
                "configmap",
                ROOT_CERT,
                "-n",
                "labelled",
                "--type=merge",
                "-p",
                r#"{"data": {"root-cert.pem": "edited"}}"#,
            ],
            None,
        )
        .expect("kubectl");
    until_some(
        "istio-ca-root-cert corrected in labelled",
        Duration::from_secs(10),
        || root_cert(&cluster, "labelled").filter(|c| *c == ca_a),
    );

    // A second replica serves with its own certificate from the shared mesh CA (the
    // Secret replica A created), so the one caBundle trusts both; it does not write: after a
    // full retry period the Leases are still A's.
    assert!(
        get_json(&cluster, &["secret", "istio-ca-secret", "-n", NS]).is_some(),
        "the shared mesh CA, which signs every replica's serving certificate"
    );
    let pod_b = format!("{pod_a}-b");
    let b = start_replica(&cluster, &container, &pod_b, account, &work);
    let took = wait_ready(&b, "replica B");
    println!("replica B ready {took:?} after start");
    std::thread::sleep(Duration::from_secs(9));
    for lease in [ROOT_CERT_LEASE, WEBHOOK_LEASE] {
        assert_eq!(
            lease_holder(&cluster, lease).as_deref(),
            Some(pod_a.as_str()),
            "{lease}"
        );
    }
    // The API server trusts B's webhook certificate with the bundle A patched in.
    cluster.set_host_port(
        "lateend.istio-system.svc",
        443,
        b.address("serving the sidecar-injection webhook"),
    );
    let pod = br#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe-b", "namespace": "labelled"},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]}}"#;
    cluster
        .kubectl_ok(&["create", "-f", "-"], Some(pod))
        .expect("kubectl");

    // Replica A stops (SIGTERM): it releases its Leases and B takes over the writing.
    let stopped = Instant::now();
    a.terminate();
    for lease in [ROOT_CERT_LEASE, WEBHOOK_LEASE] {
        until_some(
            &format!("{lease} taken over by {pod_b}"),
            Duration::from_secs(20),
            || (lease_holder(&cluster, lease).as_deref() == Some(pod_b.as_str())).then_some(()),
        );
    }
    println!("replica B leads {:?} after A stopped", stopped.elapsed());
    cluster
        .kubectl_ok(&["delete", "configmap", ROOT_CERT, "-n", "fresh"], None)
        .expect("kubectl");
    until_some(
        "B to put istio-ca-root-cert back",
        Duration::from_secs(10),
        || root_cert(&cluster, "fresh").filter(|c| *c == ca_a),
    );
    drop(b);
}
