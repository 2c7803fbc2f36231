//! lateend's Kubernetes source and bad Telemetry, on a cluster of its own (the `istio`
//! ConfigMap other tests write would change the mesh in force): a Telemetry naming a
//! provider MeshConfig does not declare is refused with the field and the name (logged, and
//! IST0106 in its `status.validationMessages`), and lateend keeps its last accepted version.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use common::get;
use common::kube_source::{install_crds, kubectl_ok, lateend};
use common::lateend::Lateend;
use kube::api::Api;
use lateen_test_support::kube::TestCluster;
use serde_json::json;

const NS: &str = "default";

/// The Telemetry `default/logs`, naming `provider` (it selects no workload).
fn telemetry(provider: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "telemetry.istio.io/v1",
        "kind": "Telemetry",
        "metadata": {"name": "logs", "namespace": NS},
        "spec": {
            "selector": {"matchLabels": {"app": "nobody"}},
            "accessLogging": [{"providers": [{"name": provider}]}]
        }
    }))
    .expect("telemetry")
}

/// The `accessLogging[0].providers[0].name` of the Telemetry lateend holds, from
/// /debug/configz.
async fn telemetry_provider(lateend: &Lateend) -> Option<String> {
    let (_, body) = get(lateend.debug, "x", "/debug/configz", &[]).await?;
    let config: serde_json::Value = serde_json::from_str(&body).ok()?;
    config["resources"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == "Telemetry" && r["name"] == "logs")
        .and_then(|r| r["spec"]["accessLogging"][0]["providers"][0]["name"].as_str())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_with_an_unknown_provider_is_refused_and_the_last_good_stays() {
    let Some(cluster) = TestCluster::start_or_skip("kube_telemetry") else {
        return;
    };
    install_crds(&cluster).await;
    // lateend's Leases (the status writer's among them) live in its namespace.
    kubectl_ok(&cluster, &["create", "namespace", "istio-system"], None);
    let work = tempfile::tempdir().expect("tempdir");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    common::write_config(
        &config,
        "mesh.yaml",
        "extensionProviders:\n- name: file-logs\n  envoyFileAccessLog: {path: /dev/stdout}\n",
    );
    let lateend = lateend(&cluster, work.path()).await;
    kubectl_ok(
        &cluster,
        &["apply", "-f", "-"],
        Some(&telemetry("file-logs")),
    );
    common::wait_until("the Telemetry accepted", || async {
        telemetry_provider(&lateend).await.as_deref() == Some("file-logs")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", lateend.process.log_tail()));

    kubectl_ok(&cluster, &["apply", "-f", "-"], Some(&telemetry("no-such")));
    common::wait_until("the refusal in lateend's log", || async {
        lateend.process.log().lines().any(|l| {
            l.contains("config rejected")
                && l.contains("Telemetry default/logs")
                && l.contains("spec.accessLogging[0].providers[0].name")
                && l.contains("unknown provider \"no-such\"")
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", lateend.process.log_tail()));
    assert_eq!(
        telemetry_provider(&lateend).await.as_deref(),
        Some("file-logs"),
        "the last accepted version stays"
    );
    let gvk = kube::core::GroupVersionKind::gvk("telemetry.istio.io", "v1", "Telemetry");
    let resource = kube::core::ApiResource::from_gvk_with_plural(&gvk, "telemetries");
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(cluster.client().await, NS, &resource);
    common::wait_until("IST0106 in the Telemetry's status", || async {
        api.get("logs")
            .await
            .is_ok_and(|t| t.data["status"]["validationMessages"][0]["type"]["code"] == "IST0106")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", lateend.process.log_tail()));
    let _ = cluster.kubectl(&["delete", "telemetry", "logs", "-n", NS], None);
}
