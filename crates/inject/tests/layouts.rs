//! Layout variants: native sidecars, holdApplicationUntilProxyStarts, interception modes,
//! status port 0, Prometheus merge, image pull secrets. Results validate strictly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use common::*;
use lateen_inject::yaml::{parse_documents, write_documents};
use lateen_inject::{InjectConfig, inject_object};
use serde_json::{Value, json};

/// hello.yaml (or another fixture) with extra pod-template annotations, injected with `cfg`.
fn inject_with(file: &str, annotations: Value, cfg: &InjectConfig) -> Value {
    let mut doc = parse_documents(&read(&inject_dir().join(file)))
        .unwrap()
        .remove(0);
    let meta = doc.pointer_mut("/spec/template/metadata").unwrap();
    meta["annotations"] = annotations;
    inject_object(&mut doc, cfg).unwrap();
    doc
}

fn spec(doc: &Value) -> &Value {
    &doc["spec"]["template"]["spec"]
}

fn status(doc: &Value) -> Value {
    let text = doc["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/status"]
        .as_str()
        .unwrap();
    serde_json::from_str(text).unwrap()
}

#[test]
fn layouts_inject_as_documented_and_validate() {
    let cfg = InjectConfig::default();
    let mut outputs = Vec::new();

    let native = inject_with(
        "multi-init.yaml",
        json!({"sidecar.istio.io/nativeSidecar": "true"}),
        &cfg,
    );
    let inits = names(&spec(&native)["initContainers"]);
    assert_eq!(&inits[..2], ["lateen-init", "lateen-proxy"], "{inits:?}");
    assert!(inits.len() > 2, "the app's init containers follow");
    assert!(!names(&spec(&native)["containers"]).contains(&"lateen-proxy"));
    assert_eq!(
        container(&spec(&native)["initContainers"], "lateen-proxy")["restartPolicy"],
        "Always"
    );
    assert_eq!(
        status(&native)["initContainers"],
        json!(["lateen-init", "lateen-proxy"])
    );
    assert_eq!(status(&native)["containers"], Value::Null);
    outputs.push(native);

    let mut native_cfg = InjectConfig::default();
    native_cfg.values.native_sidecars = true;
    let native_by_values = inject_with("hello.yaml", json!({}), &native_cfg);
    assert_eq!(names(&spec(&native_by_values)["containers"]), ["hello"]);
    outputs.push(native_by_values);

    let hold = inject_with(
        "hello.yaml",
        json!({"proxy.istio.io/config": "holdApplicationUntilProxyStarts: true"}),
        &cfg,
    );
    assert_eq!(names(&spec(&hold)["containers"]), ["lateen-proxy", "hello"]);
    assert_eq!(
        spec(&hold)["containers"][0]["lifecycle"]["postStart"]["exec"]["command"],
        json!(["lateen-proxy", "wait"])
    );
    outputs.push(hold);

    let none = inject_with(
        "hello.yaml",
        json!({"sidecar.istio.io/interceptionMode": "NONE"}),
        &cfg,
    );
    assert!(spec(&none)["initContainers"].is_null());
    assert_eq!(status(&none)["initContainers"], json!([]));
    outputs.push(none);

    let tproxy = inject_with(
        "hello.yaml",
        json!({"sidecar.istio.io/interceptionMode": "TPROXY"}),
        &cfg,
    );
    let init = container(&spec(&tproxy)["initContainers"], "lateen-init");
    assert!(
        init["args"]
            .as_array()
            .unwrap()
            .windows(2)
            .any(|w| w[0] == "-m" && w[1] == "TPROXY")
    );
    let proxy = container(&spec(&tproxy)["containers"], "lateen-proxy");
    assert_eq!(
        proxy["securityContext"]["capabilities"]["add"],
        json!(["NET_ADMIN"])
    );
    outputs.push(tproxy);

    let no_status = inject_with(
        "hello-probes.yaml",
        json!({"status.sidecar.istio.io/port": "0"}),
        &cfg,
    );
    let proxy = container(&spec(&no_status)["containers"], "lateen-proxy");
    assert!(proxy["readinessProbe"].is_null());
    assert_eq!(
        container(&spec(&no_status)["containers"], "hello")["livenessProbe"]["httpGet"]["port"],
        "http"
    );
    assert!(
        no_status["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"].is_null()
    );
    let init = container(&spec(&no_status)["initContainers"], "lateen-init");
    assert!(
        init["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "15090,15021")
    );
    outputs.push(no_status);

    let prom = inject_with(
        "hello.yaml",
        json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}),
        &cfg,
    );
    let annotations = &prom["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], "15020");
    let proxy = container(&spec(&prom)["containers"], "lateen-proxy");
    let env = proxy["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "ISTIO_PROMETHEUS_ANNOTATIONS")
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(env["value"].as_str().unwrap()).unwrap(),
        json!({"scrape": "true", "port": "9090"})
    );
    outputs.push(prom);

    let mut secrets_cfg = InjectConfig::default();
    secrets_cfg.values.image_pull_secrets = vec!["regcred".into()];
    let secrets = inject_with("hello.yaml", json!({}), &secrets_cfg);
    assert_eq!(
        spec(&secrets)["imagePullSecrets"],
        json!([{"name": "regcred"}])
    );
    assert_eq!(status(&secrets)["imagePullSecrets"], json!(["regcred"]));
    outputs.push(secrets);

    let dir = temp_dir("layouts");
    let file = dir.join("layouts.yaml");
    std::fs::write(&file, write_documents(&outputs).unwrap()).unwrap();
    validate_strict(&[file]);
}

#[test]
fn scrape_false_is_left_alone() {
    let doc = parse_documents(&read(&inject_dir().join("prometheus-scrape.yaml"))).unwrap();
    let mut pod = doc[0].clone();
    inject_object(&mut pod, &InjectConfig::default()).unwrap();
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "false");
    assert!(annotations["prometheus.io/port"].is_null());
}

#[test]
fn revisions_pick_their_lateend() {
    let input = "kind: Pod\nmetadata: {name: p, labels: {istio.io/rev: canary}}\nspec: {containers: [{name: a, image: x}]}\n";
    let args_of = |cfg: &InjectConfig| {
        let mut doc = parse_documents(input).unwrap().remove(0);
        inject_object(&mut doc, cfg).unwrap();
        let proxy = container(&doc["spec"]["containers"], "lateen-proxy").clone();
        (
            doc["metadata"]["annotations"]["istio.io/rev"].clone(),
            proxy["args"][2].clone(),
        )
    };
    // The pod's label chooses the revision when none is configured.
    assert_eq!(
        args_of(&InjectConfig::default()),
        (
            json!("canary"),
            json!("lateend-canary.istio-system.svc:15012")
        )
    );
    // A configured revision wins.
    let cfg = InjectConfig {
        revision: "stable".into(),
        ..InjectConfig::default()
    };
    assert_eq!(
        args_of(&cfg),
        (
            json!("stable"),
            json!("lateend-stable.istio-system.svc:15012")
        )
    );
    let cfg = InjectConfig {
        revision: "default".into(),
        ..InjectConfig::default()
    };
    assert_eq!(
        args_of(&cfg),
        (json!("default"), json!("lateend.istio-system.svc:15012"))
    );
}
