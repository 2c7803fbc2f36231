//! Admission against a real kube-apiserver (with etcd and kube-controller-manager, from
//! `lateen-test-support`): the CRDs and webhook configurations `lateen install` renders, lateend
//! reading the cluster with the admin kubeconfig and serving its webhooks on 127.0.0.1 where the
//! API server's `lateend.istio-system.svc:443` leads, and the seed's walk done with the real
//! kubectl:
//! - `kubectl label namespace default istio-injection=enabled` and the seed's nginx Deployment:
//!   kube-controller-manager creates the Pod and the API server stores it injected (the webhook
//!   trusts the API server's namespace selection; it cannot see namespace labels);
//! - the seed's Deployment with `sidecar.istio.io/inject: "false"` is stored untouched;
//! - `kubectl apply` of an invalid VirtualService is refused with lateen-api's message naming
//!   the field, a valid one is stored, and istiod's always-reject probe (a dry run) is refused.
//!
//! And native sidecars (`ENABLE_NATIVE_SIDECARS=auto`): lateend reading the cluster
//! (`--kubeconfig`) answers from its own Node watch, so the API server stores the proxy as a
//! restartable init container while every kubelet is >= 1.33, and in the classic place once an
//! older Node joins.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::lateend::Lateend;
use common::lateend::start_lateend;
use lateen_install::{Inputs, merge_inputs, render};
use lateen_test_support::kube::{TestCluster, kubelet};
use serde_json::{Value, json};

const WEBHOOK_HOST: &str = "lateend.istio-system.svc";
const WAIT: Duration = Duration::from_secs(90);

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

/// What `lateen install` would apply that admission needs: the namespace, the CRDs and the
/// webhook configurations, with `caBundle` set to lateend's CA.
fn install_objects(ca_pem: &str, kinds: &[&str]) -> Value {
    let merged = merge_inputs(&Inputs::default()).unwrap_or_else(|e| panic!("{e}"));
    let rendered = render(&merged.operator).unwrap_or_else(|e| panic!("{e}"));
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut items = Vec::new();
    for object in rendered {
        let kind = object.kind().to_string();
        let mut value = object.object;
        if !kinds.contains(&kind.as_str()) {
            continue;
        }
        for hook in value["webhooks"].as_array_mut().into_iter().flatten() {
            hook["clientConfig"]["caBundle"] = json!(bundle);
        }
        items.push(value);
    }
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

fn text(out: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kubectl_ok(cluster: &TestCluster, args: &[&str], stdin: Option<&[u8]>) -> String {
    cluster
        .kubectl_ok(args, stdin)
        .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.log_tails(20)))
}

/// A namespace labelled `istio-injection=enabled`, ready for pods.
async fn injected_namespace(cluster: &TestCluster, name: &str) {
    cluster
        .create_namespace(name, &[("istio-injection", "enabled")])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// The first pod labelled `app=nginx` in `namespace`, waiting (bounded) for the ReplicaSet
/// controller to create it.
async fn nginx_pod(cluster: &TestCluster, namespace: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = cluster.kubectl(
            &[
                "get",
                "pods",
                "-n",
                namespace,
                "-l",
                "app=nginx",
                "-o",
                "json",
            ],
            None,
        );
        if out.status.success() {
            let list: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if let Some(pod) = list["items"].as_array().and_then(|i| i.first()) {
                return pod.clone();
            }
        }
        if Instant::now() > deadline {
            let events = cluster.kubectl(&["get", "events", "-n", namespace], None);
            panic!(
                "no nginx pod in {namespace} within {WAIT:?}\n{}",
                text(&events)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn container_names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_walk_injects_and_validates_through_the_api_server() {
    let Some(cluster) = TestCluster::start_or_skip("admission_kube") else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let kinds = [
        "Namespace",
        "CustomResourceDefinition",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ];
    let lateend = lateend_on_the_cluster(&cluster, work.path(), &kinds).await;
    cluster
        .wait_crds_established()
        .unwrap_or_else(|e| panic!("{e:#}"));

    // The seed's walk: label the namespace, apply the Deployment.
    kubectl_ok(
        &cluster,
        &["label", "namespace", "default", "istio-injection=enabled"],
        None,
    );
    let nginx = std::fs::read(fixtures().join("seed/deployment-nginx.yaml")).expect("seed");
    kubectl_ok(
        &cluster,
        &["apply", "-n", "default", "-f", "-"],
        Some(&nginx),
    );
    let pod = nginx_pod(&cluster, "default").await;
    let init = container_names(&pod, "initContainers");
    assert!(
        init.contains(&"lateen-init".to_string()),
        "stored pod is not injected: init containers {init:?}\n{}",
        lateend.process.log_tail()
    );
    // This cluster has no Nodes: as in Istio, that counts as every kubelet supporting native
    // sidecars.
    assert_eq!(proxy_layout(&pod), "native");
    assert!(
        pod["metadata"]["annotations"]["sidecar.istio.io/status"].is_string(),
        "{}",
        pod["metadata"]
    );

    // The opted-out Deployment, in another namespace selected the same way.
    injected_namespace(&cluster, "optout").await;
    let opted_out =
        std::fs::read(fixtures().join("seed/deployment-nginx-inject-false.yaml")).expect("seed");
    kubectl_ok(
        &cluster,
        &["apply", "-n", "optout", "-f", "-"],
        Some(&opted_out),
    );
    let pod = nginx_pod(&cluster, "optout").await;
    assert_eq!(container_names(&pod, "containers"), ["nginx"]);
    assert!(container_names(&pod, "initContainers").is_empty());
    assert!(pod["metadata"]["annotations"]["sidecar.istio.io/status"].is_null());

    // Validation: the invalid VirtualService of Istio's own istioctl tests is refused with the
    // field named; a valid one is stored.
    let invalid = std::fs::read(fixtures().join(
        "istio/corpus/validation/invalid/istioctl-validate--invalid-virtual-service-negative-weight.yaml",
    ))
    .expect("corpus");
    let out = cluster.kubectl(&["apply", "-n", "default", "-f", "-"], Some(&invalid));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "invalid VirtualService stored: {}",
        text(&out)
    );
    eprintln!(
        "kubectl apply of an invalid VirtualService: {}",
        stderr.trim()
    );
    assert!(
        stderr.contains("denied the request: configuration is invalid:")
            && stderr.contains("spec.http[0].route[1].weight"),
        "{}\n{}",
        text(&out),
        lateend.process.log_tail()
    );
    let valid = std::fs::read(
        fixtures()
            .join("istio/corpus/validation/valid/istioctl-validate--valid-virtual-service.yaml"),
    )
    .expect("corpus");
    kubectl_ok(
        &cluster,
        &["apply", "-n", "default", "-f", "-"],
        Some(&valid),
    );
    kubectl_ok(
        &cluster,
        &[
            "delete",
            "virtualservice",
            "valid-virtual-service",
            "-n",
            "default",
        ],
        None,
    );

    // Valid for Istio, with fields lateend does not act on yet: stored, and kubectl shows which.
    let unmodelled =
        std::fs::read(fixtures().join("istio/corpus/validation/valid/crd-authz--full.yaml"))
            .expect("corpus");
    let out = cluster.kubectl(&["apply", "-n", "default", "-f", "-"], Some(&unmodelled));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && stderr.contains("Warning:")
            && stderr.contains("notTrustDomains: accepted, but not yet acted on by lateen"),
        "{}",
        text(&out)
    );

    // istiod's probe of a live validating webhook: a server-side dry run of an invalid Gateway
    // carrying the always-reject annotation must be denied.
    let probe = json!({
        "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
        "metadata": {"name": "invalid-gateway", "namespace": "istio-system",
                     "labels": {"istio.io/rev": "default"},
                     "annotations": {"internal.istio.io/webhook-always-reject": "true"}},
        "spec": {"servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]},
    });
    let probe = serde_json::to_vec(&probe).expect("json");
    let out = cluster.kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&probe));
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("denied the request"),
        "{}",
        text(&out)
    );
    let (_, metrics) = common::get(lateend.debug, "x", "/metrics", &[])
        .await
        .expect("lateend /metrics");
    assert!(
        metrics.contains("sidecar_injection_success_total 1")
            && metrics.contains("galley_validation_failed "),
        "{metrics}"
    );
    drop(lateend);
}

fn proxy_layout(pod: &Value) -> &'static str {
    let proxy_in = |list: &str| {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == "lateen-proxy")
            .cloned()
    };
    match (proxy_in("initContainers"), proxy_in("containers")) {
        (Some(init), None) if init["restartPolicy"] == "Always" => "native",
        (None, Some(_)) => "classic",
        other => panic!("lateen-proxy placement {other:?} in {}", pod["spec"]),
    }
}

/// lateend reading the cluster (`--kubeconfig`), its webhook behind
/// `lateend.istio-system.svc:443`, with the rendered objects of `kinds` applied.
async fn lateend_on_the_cluster(cluster: &TestCluster, work: &Path, kinds: &[&str]) -> Lateend {
    let config = work.join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let ca = work.join("webhook-ca.pem");
    let kubeconfig = cluster.kubeconfig().as_os_str().to_owned();
    let lateend = start_lateend(
        &config,
        work,
        &[
            "--kubeconfig".as_ref(),
            kubeconfig.as_os_str(),
            "--webhook-ca-out".as_ref(),
            ca.as_os_str(),
        ],
    )
    .await;
    let ca_pem = std::fs::read_to_string(&ca).expect("lateend wrote its CA");
    cluster.set_host_port(
        WEBHOOK_HOST,
        443,
        SocketAddr::from(([127, 0, 0, 1], lateend.webhook)),
    );
    let objects = install_objects(&ca_pem, kinds);
    kubectl_ok(
        cluster,
        &["apply", "-f", "-"],
        Some(&serde_json::to_vec(&objects).expect("json")),
    );
    lateend
}

/// The layout of the proxy in the nginx pod of a fresh namespace `ns`; when it is not `want`
/// yet (lateend's Node watch may lag the Node write by a moment), the pod is deleted and the
/// ReplicaSet's next one looked at, for a bounded time.
async fn layout_becomes(cluster: &TestCluster, ns: &str, want: &str) {
    let nginx = std::fs::read(fixtures().join("seed/deployment-nginx.yaml")).expect("seed");
    injected_namespace(cluster, ns).await;
    kubectl_ok(cluster, &["apply", "-n", ns, "-f", "-"], Some(&nginx));
    let deadline = Instant::now() + WAIT;
    loop {
        let pod = nginx_pod(cluster, ns).await;
        let layout = proxy_layout(&pod);
        if layout == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ns}: still {layout}, want {want}"
        );
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        kubectl_ok(
            cluster,
            &["delete", "pod", "-n", ns, name, "--wait=false"],
            None,
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_sidecars_follow_the_clusters_kubelets() {
    let Some(cluster) = TestCluster::start_or_skip("admission_kube native sidecars") else {
        return;
    };
    let client = cluster.client().await;
    kubelet::create_node(&client, "new-node", &[], "198.18.70.1".parse().expect("ip"))
        .await
        .unwrap_or_else(|e| panic!("node: {e}"));
    let work = tempfile::tempdir().expect("tempdir");
    let lateend =
        lateend_on_the_cluster(&cluster, work.path(), &["MutatingWebhookConfiguration"]).await;
    layout_becomes(&cluster, "native", "native").await;

    // A kubelet older than 1.33 joins: no pod may get the native layout any more.
    kubelet::create_node(&client, "old-node", &[], "198.18.70.2".parse().expect("ip"))
        .await
        .unwrap_or_else(|e| panic!("node: {e}"));
    kubectl_ok(
        &cluster,
        &[
            "patch",
            "node",
            "old-node",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"nodeInfo":{"kubeletVersion":"v1.31.4"}}}"#,
        ],
        None,
    );
    layout_becomes(&cluster, "classic", "classic").await;
    drop(lateend);
}
