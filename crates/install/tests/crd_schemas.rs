//! The CRD schemas are structural and accept Istio's Bookinfo networking configs, and reject
//! broken ones the way an API server with strict field validation would.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;

use lateen_install::render::crds;
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/istio/samples/bookinfo/networking")
}

/// A small validator for Kubernetes structural schemas: types, enums, required fields, maps,
/// int-or-string, and unknown fields (rejected unless `x-kubernetes-preserve-unknown-fields`).
fn validate(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if schema["x-kubernetes-int-or-string"] == json!(true) {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(format!("{path}: expected an integer or a string"));
        }
        return;
    }
    let type_ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        errors.push(format!("{path}: expected {}, got {value}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        errors.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    match value {
        Value::Object(map) => {
            for required in schema["required"].as_array().into_iter().flatten() {
                if let Some(name) = required.as_str()
                    && !map.contains_key(name)
                {
                    errors.push(format!("{path}.{name}: required"));
                }
            }
            for (key, item) in map {
                let child = format!("{path}.{key}");
                if let Some(property) = schema["properties"].get(key) {
                    validate(property, item, &child, errors);
                } else if schema["additionalProperties"].is_object() {
                    validate(&schema["additionalProperties"], item, &child, errors);
                } else if schema["x-kubernetes-preserve-unknown-fields"] != json!(true) {
                    errors.push(format!("{child}: unknown field"));
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                validate(&schema["items"], item, &format!("{path}[{index}]"), errors);
            }
        }
        _ => {}
    }
}

/// Structural: every node has a type (or is int-or-string), arrays have items, and an object
/// does not have both properties and additionalProperties.
fn check_structural(schema: &Value, path: &str, problems: &mut Vec<String>) {
    if schema["x-kubernetes-int-or-string"] == json!(true) {
        return;
    }
    match schema["type"].as_str() {
        Some("object") => {
            if schema.get("properties").is_some() && schema.get("additionalProperties").is_some() {
                problems.push(format!(
                    "{path}: properties and additionalProperties together"
                ));
            }
            for (key, property) in schema["properties"].as_object().into_iter().flatten() {
                check_structural(property, &format!("{path}.{key}"), problems);
            }
            if schema["additionalProperties"].is_object() {
                check_structural(
                    &schema["additionalProperties"],
                    &format!("{path}.*"),
                    problems,
                );
            }
        }
        Some("array") => match schema.get("items") {
            Some(items) => check_structural(items, &format!("{path}[]"), problems),
            None => problems.push(format!("{path}: array without items")),
        },
        Some("string" | "integer" | "number" | "boolean") => {}
        other => problems.push(format!("{path}: missing or bad type {other:?}")),
    }
}

fn check_instance(object: &Value) -> Vec<String> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let group = api_version.split('/').next().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let Some(schema) = crds::schema(group, kind) else {
        return vec![format!("no CRD for {group}/{kind}")];
    };
    let mut body = object.clone();
    if let Value::Object(map) = &mut body {
        for key in ["apiVersion", "kind", "metadata"] {
            map.remove(key);
        }
    }
    let mut errors = Vec::new();
    validate(&schema, &body, kind, &mut errors);
    errors
}

fn documents(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

#[test]
fn every_crd_is_structural_with_one_storage_version() {
    let all = crds::all();
    assert!(all.len() >= 12);
    for crd in &all {
        let name = crd["metadata"]["name"].as_str().unwrap();
        let versions = crd["spec"]["versions"].as_array().unwrap();
        assert_eq!(
            versions
                .iter()
                .filter(|v| v["storage"] == json!(true))
                .count(),
            1,
            "{name}"
        );
        for version in versions {
            let mut problems = Vec::new();
            check_structural(&version["schema"]["openAPIV3Schema"], name, &mut problems);
            assert!(problems.is_empty(), "{name}: {problems:?}");
        }
    }
    let names: Vec<&str> = all
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    for expected in [
        "virtualservices.networking.istio.io",
        "destinationrules.networking.istio.io",
        "gateways.networking.istio.io",
        "serviceentries.networking.istio.io",
        "workloadentries.networking.istio.io",
        "workloadgroups.networking.istio.io",
        "sidecars.networking.istio.io",
        "peerauthentications.security.istio.io",
        "authorizationpolicies.security.istio.io",
        "requestauthentications.security.istio.io",
        "istiooperators.install.istio.io",
    ] {
        assert!(names.contains(&expected), "missing CRD {expected}");
    }
    let vs = all
        .iter()
        .find(|c| c["spec"]["names"]["kind"] == json!("VirtualService"))
        .unwrap();
    let served: Vec<&str> = vs["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    // Istio's order, and Istio's storage version.
    assert_eq!(served, ["v1", "v1alpha3", "v1beta1"]);
    let storage: Vec<&str> = vs["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(storage, ["v1"]);
    for expected in [
        "envoyfilters.networking.istio.io",
        "proxyconfigs.networking.istio.io",
        "telemetries.telemetry.istio.io",
    ] {
        assert!(names.contains(&expected), "missing CRD {expected}");
    }
}

#[test]
fn bookinfo_networking_configs_are_accepted() {
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        for doc in documents(&path) {
            let errors = check_instance(&doc);
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} documents checked");
}

fn first_doc(file: &str) -> Value {
    documents(&fixtures().join(file)).remove(0)
}

#[test]
fn broken_configs_are_rejected() {
    let mut broken = Vec::new();

    let mut vs = first_doc("virtual-service-reviews-80-20.yaml");
    vs["spec"]["http"][0]["route"][0]["weight"] = json!("eighty");
    broken.push(("weight as text", vs, "weight"));

    let mut vs = first_doc("virtual-service-reviews-80-20.yaml");
    vs["spec"]["http"][0]["route"][0]["destination"]
        .as_object_mut()
        .unwrap()
        .remove("host");
    broken.push(("destination without host", vs, "destination.host"));

    let mut vs = first_doc("virtual-service-all-v1.yaml");
    let http = vs["spec"]["http"].take();
    vs["spec"]["htp"] = http;
    broken.push(("misspelt http", vs, "htp"));

    let mut vs = first_doc("virtual-service-ratings-test-delay.yaml");
    vs["spec"]["http"][0]["fault"]["delay"]["percentage"]["value"] = json!("all");
    broken.push(("fault percentage as text", vs, "percentage.value"));

    let mut vs = first_doc("virtual-service-all-v1.yaml");
    vs["spec"]["hosts"] = json!("productpage");
    broken.push(("hosts not a list", vs, "hosts"));

    let mut dr = first_doc("destination-rule-all-mtls.yaml");
    dr["spec"]["trafficPolicy"]["tls"]["mode"] = json!("MUTUALLY");
    broken.push(("unknown TLS mode", dr, "tls.mode"));

    let mut dr = first_doc("destination-rule-all.yaml");
    dr["spec"].as_object_mut().unwrap().remove("host");
    broken.push(("rule without host", dr, "host"));

    let mut dr = first_doc("destination-rule-all.yaml");
    dr["spec"]["subsets"][0]["lables"] = json!({"version": "v1"});
    broken.push(("misspelt labels", dr, "lables"));

    let mut gw = first_doc("bookinfo-gateway.yaml");
    gw["spec"]["servers"][0]["port"]["number"] = json!("eighty");
    broken.push(("gateway port as text", gw, "port.number"));

    let mut se = first_doc("egress-rule-google-apis.yaml");
    se["spec"]["resolution"] = json!("SOMETIMES");
    broken.push(("unknown resolution", se, "resolution"));

    for (what, doc, needle) in broken {
        let errors = check_instance(&doc);
        assert!(!errors.is_empty(), "{what}: accepted");
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{what}: {errors:?} does not name {needle}"
        );
    }
}

/// Every Istio kind has a fully typed spec, as Istio's CRDs do: only EnvoyFilter's patch value
/// (a `google.protobuf.Struct`) and the IstioOperator spec keep unknown fields.
#[test]
fn specs_are_typed_down_to_their_leaves() {
    fn open_paths(schema: &Value, path: &str, found: &mut Vec<String>) {
        if schema["x-kubernetes-preserve-unknown-fields"] == json!(true) {
            found.push(path.to_owned());
        }
        for (key, property) in schema["properties"].as_object().into_iter().flatten() {
            open_paths(property, &format!("{path}.{key}"), found);
        }
        if schema["items"].is_object() {
            open_paths(&schema["items"], &format!("{path}[]"), found);
        }
        if schema["additionalProperties"].is_object() {
            open_paths(&schema["additionalProperties"], &format!("{path}.*"), found);
        }
    }
    for crd in crds::all() {
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_owned();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut found = Vec::new();
        open_paths(&schema["properties"]["spec"], "spec", &mut found);
        let expected: &[&str] = match kind.as_str() {
            "EnvoyFilter" => &["spec.configPatches[].patch.value"],
            "IstioOperator" => &["spec"],
            _ => &[],
        };
        assert_eq!(found, expected, "{kind}");
        let rules = serde_json::to_string(schema).unwrap();
        if kind != "IstioOperator" {
            assert!(
                schema["properties"]["status"]["properties"]["validationMessages"].is_object(),
                "{kind}: status without validationMessages"
            );
        }
        if ["ServiceEntry", "WorkloadEntry", "PeerAuthentication"].contains(&kind.as_str()) {
            assert!(
                rules.contains("port must be between 1-65535"),
                "{kind}: no port range rule"
            );
        }
    }
}
