//! What the tests of lateend's Kubernetes source share: lateend on an empty folder plus a
//! `TestCluster`, kubectl that fails loudly, and Istio's CRDs installed.

use lateen_test_support::kube::TestCluster;
use serde_json::json;

use super::lateend::{Lateend, start_lateend};

/// lateend on an empty folder plus the cluster.
pub async fn lateend(cluster: &TestCluster, work: &std::path::Path) -> Lateend {
    let config = work.join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let kubeconfig = cluster.kubeconfig().as_os_str().to_owned();
    start_lateend(
        &config,
        work,
        &["--kubeconfig".as_ref(), kubeconfig.as_os_str()],
    )
    .await
}

/// Runs kubectl; panics with its stderr when it fails.
pub fn kubectl_ok(cluster: &TestCluster, args: &[&str], stdin: Option<&[u8]>) {
    let out = cluster.kubectl(args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Istio's CRDs as `lateen install` renders them.
pub async fn install_crds(cluster: &TestCluster) {
    let crds = lateen_install::render::crds::all();
    let text = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "List", "items": crds}))
        .expect("crds");
    kubectl_ok(cluster, &["apply", "--server-side", "-f", "-"], Some(&text));
    let wait = [
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd",
        "--all",
    ];
    kubectl_ok(cluster, &wait, None);
}
