//! `lateen operator dump|init|run|remove`, run as the built binary against a stub API server:
//! the manifests pass `kubernetes-validate --strict`, init applies and waits, the reconcile loop
//! writes RECONCILING then HEALTHY to an IstioOperator's status (and ERROR with the reason for an
//! invalid one), prunes what a changed resource no longer wants, and remove undoes init.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};

#[path = "../../install/tests/support/stub_api.rs"]
mod stub_api;

#[path = "../../install/tests/support/kubernetes_validate.rs"]
mod kubernetes_validate;

fn lateen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lateen"))
        .args(args)
        .output()
        .expect("running lateen")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

const IOP: &str = "/apis/install.istio.io/v1alpha1/namespaces/istio-system/istiooperators/example";
const CONTROL_PLANE: &str = "/apis/apps/v1/namespaces/istio-system/deployments/lateend";
const INGRESS: &str = "/apis/apps/v1/namespaces/istio-system/deployments/istio-ingressgateway";
const OPERATOR: &str = "/apis/apps/v1/namespaces/lateen-operator/deployments/lateen-operator";
const OPERATOR_CRD: &str =
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/istiooperators.install.istio.io";

#[test]
fn operator_dump_prints_valid_manifests() {
    let output = lateen(&[
        "operator",
        "dump",
        "--hub",
        "registry.example/mesh",
        "--tag",
        "1.2.3",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let manifest = String::from_utf8_lossy(&output.stdout).into_owned();
    let documents: Vec<Value> = serde_saphyr::from_multiple(&manifest).expect("dump is YAML");
    let kinds: Vec<&str> = documents
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment"
        ]
    );
    let deployment = &documents[5];
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example/mesh/lateen-cli:1.2.3");
    assert_eq!(
        container["args"],
        json!(["operator", "run", "--watched-namespace", "istio-system"])
    );
    assert_eq!(deployment["metadata"]["namespace"], "lateen-operator");

    let dir = std::env::temp_dir().join(format!("lateen-operator-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("operator.yaml");
    std::fs::write(&file, &manifest).unwrap();
    let all_namespaces = lateen(&["operator", "dump", "--watched-namespace", ""]);
    assert!(all_namespaces.status.success());
    let all_file = dir.join("operator-all.yaml");
    std::fs::write(&all_file, &all_namespaces.stdout).unwrap();
    assert!(!String::from_utf8_lossy(&all_namespaces.stdout).contains("--watched-namespace"));
    kubernetes_validate::validate(&[file, all_file] as &[PathBuf]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn operator_init_waits_and_remove_undoes_it() {
    let (server, store) = stub_api::start(1);
    let init = lateen(&[
        "operator",
        "init",
        "--server",
        &server,
        "--readiness-timeout",
        "20s",
    ]);
    let output = text(&init);
    assert!(init.status.success(), "{output}");
    assert!(output.contains("- Waiting for Lateen operator: Deployment/lateen-operator/lateen-operator: 0/1 replicas ready"), "{output}");
    assert!(output.contains("✔ Lateen operator installed"), "{output}");
    assert!(store.lock().unwrap().objects.contains_key(OPERATOR));

    let removed = lateen(&["operator", "remove", "--server", &server]);
    assert!(removed.status.success(), "{}", text(&removed));
    let left: Vec<String> = store.lock().unwrap().objects.keys().cloned().collect();
    assert_eq!(left, [OPERATOR_CRD], "only the CRD stays");
    let purged = lateen(&["operator", "remove", "--server", &server, "--purge"]);
    assert!(purged.status.success(), "{}", text(&purged));
    assert!(store.lock().unwrap().objects.is_empty());
}

fn run_passes(server: &str, passes: &str) -> String {
    let output = lateen(&[
        "operator",
        "run",
        "--server",
        server,
        "--interval",
        "100ms",
        "--max-passes",
        passes,
    ]);
    assert!(output.status.success(), "{}", text(&output));
    text(&output)
}

fn statuses(store: &stub_api::Shared) -> Vec<(String, String)> {
    store
        .lock()
        .unwrap()
        .status_writes
        .iter()
        .map(|(_, status)| {
            (
                status["status"].as_str().unwrap_or_default().to_owned(),
                status["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Changes the resource's spec as `kubectl apply` would: a new generation.
fn edit_spec(store: &stub_api::Shared, spec: Value) {
    let mut store = store.lock().unwrap();
    let mut object = store.objects[IOP].clone();
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
    object["metadata"]["generation"] = json!(generation + 1);
    object["spec"] = spec;
    store.insert(IOP, object);
}

#[test]
fn operator_reconciles_istio_operators_and_reports_status() {
    // Deployments are not ready on their first read, ready from the second.
    let (server, store) = stub_api::start(1);
    store.lock().unwrap().insert(
        IOP,
        json!({
            "apiVersion": "install.istio.io/v1alpha1",
            "kind": "IstioOperator",
            "metadata": {"name": "example", "namespace": "istio-system", "annotations": {"note": "from kubectl"}},
            "spec": {"profile": "minimal"},
        }),
    );

    // Pass 1 applies and finds the control plane not ready; pass 2 finds it ready; pass 3 is idle.
    let log = run_passes(&server, "3");
    let written = statuses(&store);
    assert_eq!(written.len(), 3, "{written:?}\n{log}");
    assert_eq!(
        written[0],
        ("RECONCILING".into(), "applying generation 1".into())
    );
    assert_eq!(written[1].0, "RECONCILING");
    assert!(
        written[1]
            .1
            .contains("waiting for Deployment/istio-system/lateend: 0/1 replicas ready"),
        "{written:?}"
    );
    assert_eq!(written[2], ("HEALTHY".into(), String::new()));
    assert!(
        log.contains("IstioOperator istio-system/example: HEALTHY"),
        "{log}"
    );
    {
        let store = store.lock().unwrap();
        let resource = &store.objects[IOP];
        assert_eq!(resource["status"]["status"], "HEALTHY");
        assert_eq!(
            resource["status"]["componentStatus"]["Pilot"]["status"],
            "HEALTHY"
        );
        let deployment = &store.objects[CONTROL_PLANE];
        assert_eq!(
            deployment["metadata"]["labels"]["install.operator.istio.io/owning-resource"],
            "example"
        );
        assert!(store.bad_applies.is_empty(), "{:?}", store.bad_applies);
        let record = store.objects["/api/v1/namespaces/istio-system/configmaps/lateen-installed-manifest"]
            ["metadata"]["annotations"]["lateen.io/installed-by"]
            .clone();
        assert_eq!(record, "IstioOperator istio-system/example");
    }

    // A resync re-applies an unchanged resource without flickering its status.
    let writes_before = store.lock().unwrap().status_writes.len();
    let resync = lateen(&[
        "operator",
        "run",
        "--server",
        &server,
        "--interval",
        "50ms",
        "--resync",
        "0s",
        "--max-passes",
        "3",
    ]);
    assert!(resync.status.success(), "{}", text(&resync));
    {
        let store = store.lock().unwrap();
        // The new process re-applies once with RECONCILING, then HEALTHY; passes 2 and 3 are quiet.
        assert_eq!(
            store.status_writes.len(),
            writes_before + 2,
            "{}",
            text(&resync)
        );
        let control_plane_applies = store
            .requests("PATCH")
            .iter()
            .filter(|l| l.contains("/deployments/lateend?"))
            .count();
        assert_eq!(
            control_plane_applies,
            1 + 3,
            "applied by the first run, then on every pass"
        );
    }

    // An ingress gateway added, then removed: applied, then pruned.
    edit_spec(
        &store,
        json!({"profile": "minimal", "components": {"ingressGateways": [{"name": "istio-ingressgateway", "enabled": true}]}}),
    );
    run_passes(&server, "2");
    assert!(store.lock().unwrap().objects.contains_key(INGRESS));
    assert_eq!(
        statuses(&store).last().map(|s| s.0.as_str()),
        Some("HEALTHY")
    );
    edit_spec(&store, json!({"profile": "minimal"}));
    run_passes(&server, "1");
    assert!(!store.lock().unwrap().objects.contains_key(INGRESS));

    // An unknown field is an ERROR naming the field; the install stays as it was.
    let before = statuses(&store).len();
    edit_spec(
        &store,
        json!({"profile": "minimal", "components": {"pilot": {"k8s": {"replicas": 2}}}}),
    );
    let log = run_passes(&server, "2");
    let written = statuses(&store)[before..].to_vec();
    assert_eq!(
        written.len(),
        2,
        "no rewrite while nothing changes: {written:?}\n{log}"
    );
    assert_eq!(written[0].0, "RECONCILING");
    assert_eq!(written[1].0, "ERROR");
    assert!(
        written[1].1.contains(
            "IstioOperator istio-system/example: spec.components.pilot.k8s.replicas: unknown field"
        ),
        "{written:?}"
    );
    assert!(store.lock().unwrap().objects.contains_key(CONTROL_PLANE));

    // The operator's finalizer makes deleting the resource uninstall it (CRDs stay).
    {
        let store = store.lock().unwrap();
        assert_eq!(
            store.objects[IOP]["metadata"]["finalizers"],
            json!(["istio-finalizer.install.istio.io"])
        );
    }
    assert!(store.lock().unwrap().delete(IOP));
    assert!(
        store.lock().unwrap().objects.contains_key(IOP),
        "held by the finalizer"
    );
    let log = run_passes(&server, "1");
    assert!(
        log.contains("IstioOperator istio-system/example: REMOVED"),
        "{log}"
    );
    let store = store.lock().unwrap();
    assert!(
        !store.objects.contains_key(IOP),
        "released once uninstalled"
    );
    assert!(!store.objects.contains_key(CONTROL_PLANE));
    assert!(
        store
            .objects
            .keys()
            .any(|p| p.contains("customresourcedefinitions"))
    );
}

#[test]
fn operator_remove_purge_releases_istio_operators() {
    let (server, store) = stub_api::start(0);
    let init = lateen(&["operator", "init", "--server", &server]);
    assert!(init.status.success(), "{}", text(&init));
    store.lock().unwrap().insert(
        IOP,
        json!({
            "apiVersion": "install.istio.io/v1alpha1",
            "kind": "IstioOperator",
            "metadata": {"name": "example", "namespace": "istio-system"},
            "spec": {"profile": "minimal"},
        }),
    );
    run_passes(&server, "1");
    assert!(!store.lock().unwrap().objects[IOP]["metadata"]["finalizers"].is_null());
    let purged = lateen(&["operator", "remove", "--server", &server, "--purge"]);
    assert!(purged.status.success(), "{}", text(&purged));
    assert!(
        text(&purged).contains("released 1 IstioOperator"),
        "{}",
        text(&purged)
    );
    let store = store.lock().unwrap();
    assert_eq!(store.objects[IOP]["metadata"]["finalizers"], json!([]));
    assert!(!store.objects.contains_key(OPERATOR_CRD));
    // The mesh it installed stays: removing the operator is not uninstalling.
    assert!(store.objects.contains_key(CONTROL_PLANE));
}
