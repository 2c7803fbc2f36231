//! Profiles, layering of `-f` files and `--set` flags, and schema errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;

use lateen_install::{InputFile, Inputs, InstallError, config_path, merge_inputs, profiles};
use serde_json::{Value, json};

fn seed() -> InputFile {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/seed/istio-operator-ingress.yaml");
    InputFile {
        name: path.display().to_string(),
        text: std::fs::read_to_string(&path).unwrap(),
    }
}

fn file(name: &str, text: &str) -> InputFile {
    InputFile {
        name: name.to_owned(),
        text: text.to_owned(),
    }
}

fn merged(profile: Option<&str>, files: Vec<InputFile>, sets: &[&str]) -> Value {
    let inputs = Inputs {
        profile: profile.map(str::to_owned),
        files,
        sets: sets.iter().map(|s| (*s).to_owned()).collect(),
    };
    match merge_inputs(&inputs) {
        Ok(merged) => merged.tree,
        Err(err) => panic!("{err}"),
    }
}

fn error(profile: Option<&str>, files: Vec<InputFile>, sets: &[&str]) -> String {
    let inputs = Inputs {
        profile: profile.map(str::to_owned),
        files,
        sets: sets.iter().map(|s| (*s).to_owned()).collect(),
    };
    match merge_inputs(&inputs) {
        Ok(_) => panic!("expected an error for {sets:?}"),
        Err(err) => err.to_string(),
    }
}

fn at<'a>(tree: &'a Value, path: &str) -> &'a Value {
    config_path(tree, path).unwrap_or_else(|err| panic!("{err}"))
}

#[test]
fn every_supported_profile_merges_and_validates() {
    for name in profiles::SUPPORTED {
        let tree = merged(Some(name), vec![], &[]);
        assert_eq!(tree["spec"]["profile"], json!(name));
        assert_eq!(tree["apiVersion"], json!("install.istio.io/v1alpha1"));
        assert_eq!(tree["spec"]["hub"], json!("docker.io/lateen"));
    }
}

#[test]
fn profiles_keep_istio_intent() {
    let enabled = |tree: &Value, path: &str| at(tree, path)["enabled"] == json!(true);
    let default = merged(None, vec![], &[]);
    assert!(enabled(&default, "components.pilot"));
    assert!(enabled(&default, "components.base"));
    assert!(enabled(
        &default,
        "components.ingressGateways[name:istio-ingressgateway]"
    ));
    assert!(!enabled(
        &default,
        "components.egressGateways[name:istio-egressgateway]"
    ));

    let demo = merged(Some("demo"), vec![], &[]);
    assert!(enabled(
        &demo,
        "components.egressGateways[name:istio-egressgateway]"
    ));
    assert!(enabled(
        &demo,
        "components.ingressGateways[name:istio-ingressgateway]"
    ));
    assert_eq!(*at(&demo, "meshConfig.accessLogFile"), json!("/dev/stdout"));
    assert_eq!(*at(&demo, "values.pilot.traceSampling"), json!(100));
    assert_eq!(
        *at(&demo, "components.pilot.k8s.resources.requests.cpu"),
        json!("10m")
    );

    let minimal = merged(Some("minimal"), vec![], &[]);
    assert!(enabled(&minimal, "components.pilot"));
    assert!(!enabled(
        &minimal,
        "components.ingressGateways[name:istio-ingressgateway]"
    ));

    let empty = merged(Some("empty"), vec![], &[]);
    assert!(!enabled(&empty, "components.pilot"));
    assert!(!enabled(&empty, "components.base"));

    let remote = merged(Some("remote"), vec![], &[]);
    assert_eq!(*at(&remote, "values.istiodRemote.enabled"), json!(true));

    let preview = merged(Some("preview"), vec![], &[]);
    assert_eq!(
        *at(
            &preview,
            "meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE"
        ),
        json!("true")
    );
}

#[test]
fn istio_profiles_lateen_does_not_ship_are_refused_by_name() {
    for name in [
        "ambient",
        "openshift",
        "stable",
        "openshift-ambient",
        "nonsense",
    ] {
        let message = error(Some(name), vec![], &[]);
        assert!(message.contains(&format!("{name:?}")), "{message}");
        assert!(
            message.contains("default, demo, empty, minimal, preview, remote"),
            "{message}"
        );
    }
    let message = error(None, vec![], &["profile=ambient"]);
    assert!(message.contains("not supported"), "{message}");
    assert!(matches!(
        profiles::source("stable"),
        Err(InstallError::UnsupportedProfile { .. })
    ));
}

#[test]
fn seed_overlay_resizes_the_ingress_gateway_of_demo() {
    let tree = merged(None, vec![seed()], &[]);
    assert_eq!(tree["spec"]["profile"], json!("demo"));
    assert_eq!(tree["metadata"]["name"], json!("example-istiocontrolplane"));
    let gateway = at(
        &tree,
        "components.ingressGateways[name:istio-ingressgateway]",
    );
    assert_eq!(
        gateway["k8s"]["resources"]["requests"],
        json!({"cpu": "100m", "memory": "400Mi"})
    );
    // Merged by name: the profile's other settings of the gateway stay.
    assert_eq!(gateway["k8s"]["resources"]["limits"]["cpu"], json!("2000m"));
    assert_eq!(gateway["k8s"]["service"]["type"], json!("LoadBalancer"));
    // And the profile's other gateway stays too.
    assert!(
        at(&tree, "components.egressGateways[name:istio-egressgateway]")["enabled"] == json!(true)
    );
}

#[test]
fn layers_apply_in_istio_order() {
    let first = file(
        "first.yaml",
        "spec:\n  meshConfig:\n    accessLogFile: /first\n  tag: one\n",
    );
    let second = file(
        "second.yaml",
        "spec:\n  meshConfig:\n    accessLogFile: /second\n",
    );
    let tree = merged(Some("demo"), vec![first.clone(), second.clone()], &[]);
    assert_eq!(*at(&tree, "meshConfig.accessLogFile"), json!("/second"));
    assert_eq!(*at(&tree, "tag"), json!("one"));
    let tree = merged(
        Some("demo"),
        vec![first, second],
        &["meshConfig.accessLogFile=/set", "spec.tag=two"],
    );
    assert_eq!(*at(&tree, "meshConfig.accessLogFile"), json!("/set"));
    assert_eq!(*at(&tree, "tag"), json!("two"));
}

#[test]
fn set_flags_are_typed_by_the_schema() {
    let tree = merged(
        None,
        vec![],
        &[
            "tag=1.20",
            "hub=5",
            "components.pilot.k8s.replicaCount=3",
            "components.pilot.enabled=true",
            "components.ingressGateways[name:istio-ingressgateway].k8s.resources.requests.cpu=100m",
            "values.global.proxy.resources.requests.cpu=50m",
            "values.pilot.traceSampling=2.5",
            "meshConfig.enableTracing=true",
            "meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE=true",
            "values.global.custom.unknownKnob=7",
        ],
    );
    assert_eq!(*at(&tree, "tag"), json!("1.20"));
    assert_eq!(*at(&tree, "hub"), json!("5"));
    assert_eq!(*at(&tree, "components.pilot.k8s.replicaCount"), json!(3));
    assert_eq!(*at(&tree, "components.pilot.enabled"), json!(true));
    assert_eq!(
        *at(
            &tree,
            "components.ingressGateways[name:istio-ingressgateway].k8s.resources.requests.cpu"
        ),
        json!("100m")
    );
    assert_eq!(
        *at(&tree, "values.global.proxy.resources.requests.cpu"),
        json!("50m")
    );
    assert_eq!(*at(&tree, "values.pilot.traceSampling"), json!(2.5));
    assert_eq!(*at(&tree, "meshConfig.enableTracing"), json!(true));
    // proxyMetadata values are strings in the schema.
    assert_eq!(
        *at(
            &tree,
            "meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE"
        ),
        json!("true")
    );
    // Fields the schema does not know keep the type their spelling gives.
    assert_eq!(*at(&tree, "values.global.custom.unknownKnob"), json!(7));
}

#[test]
fn set_selector_can_add_a_gateway() {
    let tree = merged(
        None,
        vec![],
        &["components.ingressGateways[name:second-gateway].enabled=true"],
    );
    assert_eq!(
        at(&tree, "components.ingressGateways[name:second-gateway]")["enabled"],
        json!(true)
    );
    assert_eq!(
        tree["spec"]["components"]["ingressGateways"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn unknown_fields_and_wrong_types_name_their_path() {
    let message = error(
        None,
        vec![],
        &["components.pilot.k8s.resourcs.requests.cpu=1"],
    );
    assert!(
        message.contains("spec.components.pilot.k8s.resourcs"),
        "{message}"
    );
    assert!(message.contains("unknown field"), "{message}");

    let message = error(None, vec![], &["components.pilot.k8s.replicaCount=many"]);
    assert!(
        message.contains("spec.components.pilot.k8s.replicaCount"),
        "{message}"
    );

    let message = error(None, vec![], &["meshConfig.defaultConfig.concurrency=lots"]);
    assert!(
        message.contains("spec.meshConfig.defaultConfig.concurrency"),
        "{message}"
    );

    let bad = file(
        "bad.yaml",
        "spec:\n  components:\n    ingressGateways:\n    - name: x\n      enabled: true\n      k8s:\n        hpaSpec:\n          minReplicas: many\n",
    );
    let message = error(None, vec![bad], &[]);
    assert!(
        message.starts_with("bad.yaml: spec.components.ingressGateways[0].k8s.hpaSpec.minReplicas"),
        "{message}"
    );

    let typo = file("typo.yaml", "spec:\n  componets: {}\n");
    let message = error(None, vec![typo], &[]);
    assert!(
        message.contains("typo.yaml: spec.componets: unknown field"),
        "{message}"
    );

    let wrong_kind = file(
        "kind.yaml",
        "apiVersion: install.istio.io/v1alpha1\nkind: Deployment\n",
    );
    assert!(error(None, vec![wrong_kind], &[]).contains("kind"));

    let not_yaml = file("broken.yaml", "spec: [unclosed\n");
    assert!(error(None, vec![not_yaml], &[]).starts_with("broken.yaml: invalid YAML"));

    let message = error(None, vec![], &["no-equals-sign"]);
    assert!(message.contains("path=value"), "{message}");
}

#[test]
fn config_path_selects_a_subtree() {
    let tree = merged(None, vec![], &[]);
    assert_eq!(at(&tree, "components.pilot")["enabled"], json!(true));
    assert_eq!(at(&tree, "spec.components.pilot")["enabled"], json!(true));
    assert!(config_path(&tree, "components.nothing").is_err());
}
