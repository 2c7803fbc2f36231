//! The admission path: AdmissionReviews built from the fixtures' pods, patched with the
//! returned JSON Patch, give the same pod as `kube-inject`; malformed reviews and bad pods get
//! error responses according to the failure policy.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use base64::Engine;
use common::*;
use lateen_inject::config::FailurePolicy;
use lateen_inject::decision::SkipReason;
use lateen_inject::native::{NativeSidecarMode, NativeSidecars, NodeTable};
use lateen_inject::webhook::{ReviewOutcome, WebhookStats, review};
use lateen_inject::yaml::parse_documents;
use lateen_inject::{InjectConfig, inject_object, patch};
use serde_json::{Value, json};

/// lateend without a cluster: classic sidecars.
fn no_cluster() -> NativeSidecars {
    NativeSidecars::default()
}

fn admission_review(pod: &Value, namespace: &str) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "object": pod,
        }
    })
    .to_string()
    .into_bytes()
}

fn decode_patch(response: &Value) -> Vec<Value> {
    let b64 = response["response"]["patch"].as_str().expect("patch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// A Pod made from a fixture workload's pod template.
fn pod_from_fixture(file: &str) -> Value {
    let docs = parse_documents(&read(&inject_dir().join(file))).unwrap();
    let doc = &docs[0];
    let template = match doc["kind"].as_str().unwrap() {
        "Pod" => return doc.clone(),
        "CronJob" => &doc["spec"]["jobTemplate"]["spec"]["template"],
        _ => &doc["spec"]["template"],
    };
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": template["metadata"].clone(), "spec": template["spec"].clone()});
    if pod["metadata"].is_null() {
        pod["metadata"] = json!({});
    }
    pod["metadata"]["name"] = doc["metadata"]["name"].clone();
    pod
}

#[test]
fn webhook_patch_equals_kube_inject_and_validates() {
    let cfg = InjectConfig::default();
    let dir = temp_dir("webhook");
    let mut files = Vec::new();
    let inputs = [
        "hello.yaml",
        "hello-probes.yaml",
        "traffic-annotations.yaml",
        "resource_annotations.yaml",
        "pod.yaml",
        "cronjob.yaml",
        "multi-init.yaml",
        "proxy-override.yaml",
    ];
    for file in inputs {
        let pod = pod_from_fixture(file);
        let reviewed = review(&admission_review(&pod, "apps"), &cfg, "", &no_cluster());
        assert_eq!(reviewed.outcome, ReviewOutcome::Injected, "{file}");
        let resp = &reviewed.response;
        assert_eq!(resp["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(resp["kind"], "AdmissionReview");
        assert_eq!(
            resp["response"]["uid"],
            "705ab4f5-6393-11e8-b7cc-42010a800002"
        );
        assert_eq!(resp["response"]["allowed"], true);
        assert_eq!(resp["response"]["patchType"], "JSONPatch");
        let mut patched = pod.clone();
        patch::apply(&mut patched, &decode_patch(resp)).unwrap();

        // The same pod through kube-inject's path, in the same namespace.
        let mut expected = pod.clone();
        expected["metadata"]["namespace"] = json!("apps");
        inject_object(&mut expected, &cfg).unwrap();
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
        assert_eq!(patched, expected, "{file}");

        let out = dir.join(file);
        std::fs::write(&out, serde_saphyr::to_string(&patched).unwrap()).unwrap();
        files.push(out);
    }
    validate_strict(&files);
}

/// The API server calls the webhook only for pods its selectors matched, so the webhook
/// injects whatever namespace the pod is in (it cannot see, and must not re-check, namespace
/// labels); the injector's own opt-outs still hold.
#[test]
fn called_means_selected_and_opt_outs_leave_pods_alone() {
    let cfg = InjectConfig::default();
    let pod = pod_from_fixture("hello.yaml");
    for ns in ["apps", "unlabelled", "default"] {
        let reviewed = review(&admission_review(&pod, ns), &cfg, "", &no_cluster());
        assert_eq!(reviewed.outcome, ReviewOutcome::Injected, "{ns}");
    }
    // The canary injector (path /inject/canary) writes its revision.
    let reviewed = review(
        &admission_review(&pod, "canary-ns"),
        &cfg,
        "canary",
        &no_cluster(),
    );
    assert_eq!(reviewed.outcome, ReviewOutcome::Injected);
    let mut patched = pod.clone();
    patch::apply(&mut patched, &decode_patch(&reviewed.response)).unwrap();
    assert_eq!(patched["metadata"]["annotations"]["istio.io/rev"], "canary");

    for (file, reason) in [
        ("hello-ignore.yaml", SkipReason::PodOptOut),
        ("hello-host-network.yaml", SkipReason::HostNetwork),
    ] {
        let reviewed = review(
            &admission_review(&pod_from_fixture(file), "apps"),
            &cfg,
            "",
            &no_cluster(),
        );
        assert_eq!(reviewed.outcome, ReviewOutcome::Skipped(reason), "{file}");
        assert_eq!(reviewed.response["response"]["allowed"], true);
        assert!(reviewed.response["response"].get("patch").is_none());
    }
    let seed = parse_documents(&read(
        &fixtures().join("seed/deployment-nginx-inject-false.yaml"),
    ))
    .unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": seed[0]["spec"]["template"]["metadata"], "spec": seed[0]["spec"]["template"]["spec"]});
    let reviewed = review(&admission_review(&pod, "apps"), &cfg, "", &no_cluster());
    assert_eq!(
        reviewed.outcome,
        ReviewOutcome::Skipped(SkipReason::PodOptOut)
    );
    // Already injected (a reinvocation, or a pod injected by kube-inject): left as it is.
    let mut injected = pod_from_fixture("hello.yaml");
    injected["metadata"]["annotations"] = json!({"sidecar.istio.io/status": "{}"});
    let reviewed = review(
        &admission_review(&injected, "apps"),
        &cfg,
        "",
        &no_cluster(),
    );
    assert_eq!(
        reviewed.outcome,
        ReviewOutcome::Skipped(SkipReason::AlreadyInjected)
    );
}

/// Istio's `ENABLE_NATIVE_SIDECARS=auto`: the native layout (proxy as a restartable init
/// container) when every node's kubelet is >= 1.33, the classic one otherwise or without a
/// cluster; the pod's `sidecar.istio.io/nativeSidecar` annotation still wins.
#[test]
fn native_sidecars_follow_the_cluster() {
    let cfg = InjectConfig::default();
    let pod = pod_from_fixture("hello.yaml");
    let layout = |native: &NativeSidecars, pod: &Value| -> &'static str {
        let reviewed = review(&admission_review(pod, "apps"), &cfg, "", native);
        assert_eq!(reviewed.outcome, ReviewOutcome::Injected);
        let mut patched = pod.clone();
        patch::apply(&mut patched, &decode_patch(&reviewed.response)).unwrap();
        let in_init = patched["spec"]["initContainers"]
            .as_array()
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["name"] == "lateen-proxy" && c["restartPolicy"] == "Always")
            });
        let in_containers = patched["spec"]["containers"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["name"] == "lateen-proxy"));
        match (in_init, in_containers) {
            (true, false) => "native",
            (false, true) => "classic",
            other => panic!("proxy placement {other:?}"),
        }
    };
    assert_eq!(layout(&no_cluster(), &pod), "classic");
    let nodes = std::sync::Arc::new(NodeTable::default());
    nodes.upsert("n1", "v1.34.2");
    let auto = NativeSidecars {
        mode: NativeSidecarMode::Auto,
        nodes: Some(nodes.clone()),
    };
    assert_eq!(layout(&auto, &pod), "native");
    nodes.upsert("n0", "v1.32.4");
    assert_eq!(layout(&auto, &pod), "classic");
    let mut scheduled = pod.clone();
    scheduled["spec"]["nodeName"] = json!("n1");
    assert_eq!(layout(&auto, &scheduled), "native");
    let mut annotated = pod.clone();
    annotated["metadata"]["annotations"] = json!({"sidecar.istio.io/nativeSidecar": "true"});
    assert_eq!(layout(&auto, &annotated), "native");
    let forced = NativeSidecars {
        mode: NativeSidecarMode::Enabled,
        nodes: None,
    };
    assert_eq!(layout(&forced, &pod), "native");
}

#[test]
fn malformed_reviews_get_error_responses() {
    let cfg = InjectConfig::default();
    let bodies: [&[u8]; 7] = [
        b"",
        b"not json",
        b"[]",
        br#"{"apiVersion":"v1","kind":"AdmissionReview"}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"Other","request":{"uid":"x"}}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}"#,
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"kind":"Pod"},"object":"nope"}}"#,
    ];
    let stats = WebhookStats::default();
    for body in bodies {
        let reviewed = review(body, &cfg, "", &no_cluster());
        assert!(
            matches!(reviewed.outcome, ReviewOutcome::Malformed(_)),
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(reviewed.response["response"]["allowed"], false);
        assert!(reviewed.response["response"]["status"]["message"].is_string());
        stats.record(&reviewed.outcome);
    }
    assert_eq!(
        stats.malformed.load(std::sync::atomic::Ordering::Relaxed),
        7
    );
    // A non-Pod object or a non-CREATE is allowed untouched.
    let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u2","kind":{"kind":"Service"},"object":{}}}"#;
    let reviewed = review(body, &cfg, "", &no_cluster());
    assert_eq!(reviewed.outcome, ReviewOutcome::Ignored);
    assert_eq!(reviewed.response["response"]["uid"], "u2");
}

#[test]
fn failure_policy_decides_for_pods_that_cannot_be_injected() {
    let pod = pod_from_fixture("traffic-annotations-bad-includeipranges.yaml");
    let mut cfg = InjectConfig::default();
    let reviewed = review(&admission_review(&pod, "apps"), &cfg, "", &no_cluster());
    let ReviewOutcome::FailedDenied(reason) = &reviewed.outcome else {
        panic!("{:?}", reviewed.outcome)
    };
    assert!(
        reason.contains("traffic.sidecar.istio.io/includeOutboundIPRanges"),
        "{reason}"
    );
    assert_eq!(reviewed.response["response"]["allowed"], false);
    assert!(
        reviewed.response["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("\"bad\"")
    );

    cfg.failure_policy = FailurePolicy::Ignore;
    let reviewed = review(&admission_review(&pod, "apps"), &cfg, "", &no_cluster());
    assert!(matches!(reviewed.outcome, ReviewOutcome::FailedAllowed(_)));
    assert_eq!(reviewed.response["response"]["allowed"], true);
    assert!(reviewed.response["response"].get("patch").is_none());
    let stats = WebhookStats::default();
    stats.record(&reviewed.outcome);
    assert_eq!(
        stats
            .failed_allowed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn deployment_pods_are_named_after_their_deployment() {
    let mut pod = pod_from_fixture("hello.yaml");
    pod["metadata"] = json!({
        "generateName": "hello-7d9f8c6b5-",
        "labels": {"app": "hello", "pod-template-hash": "7d9f8c6b5"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "hello-7d9f8c6b5", "controller": true, "uid": "u"}],
    });
    let reviewed = review(
        &admission_review(&pod, "apps"),
        &InjectConfig::default(),
        "",
        &no_cluster(),
    );
    let mut patched = pod.clone();
    patch::apply(&mut patched, &decode_patch(&reviewed.response)).unwrap();
    let proxy = patched["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "lateen-proxy")
        .unwrap();
    let env = |n: &str| {
        proxy["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(env("ISTIO_META_WORKLOAD_NAME"), "hello");
    assert_eq!(
        env("ISTIO_META_OWNER"),
        "kubernetes://apis/apps/v1/namespaces/apps/deployments/hello"
    );
}

/// Every field of a real review replaced by every wrong type: always a response, never a panic.
#[test]
fn every_field_with_a_wrong_type_gets_a_response() {
    let cfg = InjectConfig::default();
    let pod = pod_from_fixture("hello-probes.yaml");
    let review_doc: Value = serde_json::from_slice(&admission_review(&pod, "apps")).unwrap();
    for_each_wrong_type(&review_doc, |pointer, doc| {
        let reviewed = review(doc.to_string().as_bytes(), &cfg, "", &no_cluster());
        assert_eq!(reviewed.response["kind"], "AdmissionReview", "{pointer}");
        assert!(
            reviewed.response["response"]["allowed"].is_boolean(),
            "{pointer}"
        );
    });
}
