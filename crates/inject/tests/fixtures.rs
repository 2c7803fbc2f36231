//! `kube-inject` on Istio's injection inputs and the seed's examples: every workload injects,
//! bad annotations are refused, the results pass strict Kubernetes schema validation.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use common::*;
use lateen_inject::yaml::{inject_documents, parse_documents};
use lateen_inject::{InjectConfig, Outcome, inject_object, inject_yaml};
use serde_json::Value;

/// Istio inputs that must inject (every non-bad `*.yaml` in the folder).
fn good_inputs() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(inject_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("traffic-annotations-bad-")
        })
        .collect();
    files.sort();
    assert!(files.len() > 20, "fixtures missing: {files:?}");
    files.push(fixtures().join("istio/samples/bookinfo/platform/kube/bookinfo.yaml"));
    files.push(fixtures().join("seed/deployment-nginx.yaml"));
    files
}

fn pod_templates(doc: &Value) -> Vec<&Value> {
    match doc["kind"].as_str() {
        Some("List") => doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(pod_templates)
            .collect(),
        Some("Pod") => vec![doc],
        Some("CronJob") => vec![&doc["spec"]["jobTemplate"]["spec"]["template"]],
        Some(
            "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "ReplicaSet"
            | "ReplicationController"
            | "Job",
        ) => {
            vec![&doc["spec"]["template"]]
        }
        _ => vec![],
    }
}

#[test]
fn every_fixture_injects_and_validates_strictly() {
    let cfg = InjectConfig::default();
    let dir = temp_dir("fixtures");
    let mut written = Vec::new();
    for input in good_inputs() {
        let name = input.file_name().unwrap().to_string_lossy().to_string();
        let mut docs = parse_documents(&read(&input)).unwrap();
        let outcomes = inject_documents(&mut docs, &cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (doc, outcome) in docs.iter().zip(&outcomes) {
            let skipped = matches!(outcome, Outcome::Skipped(_));
            for tpl in pod_templates(doc) {
                let spec = &tpl["spec"];
                let has_proxy = names(&spec["containers"]).contains(&"lateen-proxy");
                assert_eq!(has_proxy, !skipped, "{name}: {outcome:?}");
                if has_proxy {
                    assert!(
                        names(&spec["initContainers"]).contains(&"lateen-init"),
                        "{name}"
                    );
                    assert!(
                        tpl["metadata"]["annotations"]["sidecar.istio.io/status"].is_string(),
                        "{name}"
                    );
                    assert_eq!(
                        tpl["metadata"]["labels"]["security.istio.io/tlsMode"], "istio",
                        "{name}"
                    );
                }
            }
        }
        let out = dir.join(&name);
        std::fs::write(&out, lateen_inject::yaml::write_documents(&docs).unwrap()).unwrap();
        written.push(out);
    }
    // Istio's injection inputs include one object Kubernetes itself would reject (a Deployment
    // named `statusPort`, not a DNS-1123 name); the schema does not check names, so all pass.
    validate_strict(&written);
}

#[test]
fn bad_traffic_annotations_are_refused_naming_annotation_and_value() {
    let cases = [
        (
            "traffic-annotations-bad-excludeinboundports.yaml",
            "traffic.sidecar.istio.io/excludeInboundPorts",
            "\"*\"",
        ),
        (
            "traffic-annotations-bad-excludeipranges.yaml",
            "traffic.sidecar.istio.io/excludeOutboundIPRanges",
            "\"*\"",
        ),
        (
            "traffic-annotations-bad-excludeoutboundports.yaml",
            "traffic.sidecar.istio.io/excludeOutboundPorts",
            "\"bad\"",
        ),
        (
            "traffic-annotations-bad-includeinboundports.yaml",
            "traffic.sidecar.istio.io/includeInboundPorts",
            "\"bad\"",
        ),
        (
            "traffic-annotations-bad-includeipranges.yaml",
            "traffic.sidecar.istio.io/includeOutboundIPRanges",
            "\"bad\"",
        ),
    ];
    for (file, annotation, value) in cases {
        let err = inject_yaml(&read(&inject_dir().join(file)), &InjectConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(annotation) && err.contains(value),
            "{file}: {err}"
        );
        assert!(err.contains("document 0 (Deployment"), "{file}: {err}");
    }
}

#[test]
fn seed_nginx_gets_sidecar_and_init_container() {
    let out = inject_yaml(
        &read(&fixtures().join("seed/deployment-nginx.yaml")),
        &InjectConfig::default(),
    )
    .unwrap();
    let docs = parse_documents(&out).unwrap();
    let spec = &docs[0]["spec"]["template"]["spec"];
    assert_eq!(names(&spec["containers"]), ["nginx", "lateen-proxy"]);
    assert_eq!(names(&spec["initContainers"]), ["lateen-init"]);
}

#[test]
fn opted_out_host_network_and_injected_objects_come_back_unchanged() {
    let cfg = InjectConfig::default();
    let files = [
        fixtures().join("seed/deployment-nginx-inject-false.yaml"),
        inject_dir().join("hello-ignore.yaml"),
        inject_dir().join("hello-host-network.yaml"),
    ];
    for file in files {
        let original = parse_documents(&read(&file)).unwrap();
        let injected = parse_documents(&inject_yaml(&read(&file), &cfg).unwrap()).unwrap();
        assert_eq!(original, injected, "{}", file.display());
    }
    // Idempotent: injecting an injected object changes nothing.
    let once = inject_yaml(&read(&inject_dir().join("hello.yaml")), &cfg).unwrap();
    let twice = inject_yaml(&once, &cfg).unwrap();
    assert_eq!(
        parse_documents(&once).unwrap(),
        parse_documents(&twice).unwrap()
    );
}

fn injected_template(file: &str) -> Value {
    let out = inject_yaml(&read(&inject_dir().join(file)), &InjectConfig::default()).unwrap();
    let docs = parse_documents(&out).unwrap();
    pod_templates(&docs[0])[0].clone()
}

fn args_of(c: &Value) -> Vec<&str> {
    c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

fn env<'a>(c: &'a Value, name: &str) -> Option<&'a str> {
    c["env"].as_array()?.iter().find(|e| e["name"] == name)?["value"].as_str()
}

#[test]
fn traffic_annotations_become_capture_flags_and_proxy_config() {
    let tpl = injected_template("traffic-annotations.yaml");
    let init = container(&tpl["spec"]["initContainers"], "lateen-init");
    let args = args_of(init);
    assert_eq!(
        args,
        [
            "capture",
            "-p",
            "15001",
            "-z",
            "15006",
            "-u",
            "1337",
            "-m",
            "REDIRECT",
            "-i",
            "127.0.0.1/24,10.96.0.1/24",
            "-x",
            "10.96.0.2/24,10.96.0.3/24",
            "-b",
            "1,2,3",
            "-d",
            "15090,15021,4,5,6,15020",
            "-o",
            "7,8,9"
        ]
    );
    assert_eq!(env(init, "FOO"), Some("bar"));
    let proxy = container(&tpl["spec"]["containers"], "lateen-proxy");
    assert_eq!(
        proxy["resources"],
        serde_json::json!({"requests": {"cpu": "4000m"}})
    );
    assert!(
        proxy["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "foo:123")
    );
    let pc: Value = serde_json::from_str(env(proxy, "PROXY_CONFIG").unwrap()).unwrap();
    assert_eq!(pc["discoveryAddress"], "foo:123");
    assert_eq!(pc["proxyMetadata"]["FOO"], "bar");
}

#[test]
fn default_capture_flags_match_istio() {
    let tpl = injected_template("hello.yaml");
    let init = container(&tpl["spec"]["initContainers"], "lateen-init");
    let args = args_of(init);
    assert_eq!(
        args,
        [
            "capture",
            "-p",
            "15001",
            "-z",
            "15006",
            "-u",
            "1337",
            "-m",
            "REDIRECT",
            "-i",
            "*",
            "-x",
            "",
            "-b",
            "*",
            "-d",
            "15090,15021,15020"
        ]
    );
    assert_eq!(
        init["securityContext"]["capabilities"]["add"],
        serde_json::json!(["NET_ADMIN", "NET_RAW"])
    );
    assert_eq!(init["securityContext"]["runAsUser"], 0);
    let proxy = container(&tpl["spec"]["containers"], "lateen-proxy");
    assert_eq!(
        proxy["image"],
        format!("docker.io/lateen/proxy:{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(proxy["securityContext"]["runAsUser"], 1337);
    assert_eq!(env(proxy, "ISTIO_META_WORKLOAD_NAME"), Some("hello"));
    assert_eq!(
        env(proxy, "ISTIO_META_OWNER"),
        Some("kubernetes://apis/apps/v1/namespaces/default/deployments/hello")
    );
    let annotations = &tpl["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/port"], "15020");
    assert_eq!(annotations["prometheus.io/path"], "/stats/prometheus");
    assert_eq!(annotations["istio.io/rev"], "default");
    let status: Value =
        serde_json::from_str(annotations["sidecar.istio.io/status"].as_str().unwrap()).unwrap();
    assert_eq!(status["initContainers"], serde_json::json!(["lateen-init"]));
    assert_eq!(status["containers"], serde_json::json!(["lateen-proxy"]));
    assert_eq!(
        tpl["metadata"]["labels"]["service.istio.io/canonical-name"],
        "hello"
    );
    assert_eq!(
        tpl["metadata"]["labels"]["service.istio.io/canonical-revision"],
        "latest"
    );
}

#[test]
fn probes_go_through_the_agent_port() {
    let tpl = injected_template("hello-probes.yaml");
    let hello = container(&tpl["spec"]["containers"], "hello");
    assert_eq!(
        hello["livenessProbe"]["httpGet"],
        serde_json::json!({"path": "/app-health/hello/livez", "port": 15020})
    );
    assert_eq!(
        hello["readinessProbe"]["httpGet"],
        serde_json::json!({"path": "/app-health/hello/readyz", "port": 15020})
    );
    assert_eq!(
        hello["lifecycle"]["preStop"]["httpGet"]["path"],
        "/app-lifecycle/hello/prestopz"
    );
    let world = container(&tpl["spec"]["containers"], "world");
    assert!(world["readinessProbe"]["exec"].is_object());
    let proxy = container(&tpl["spec"]["containers"], "lateen-proxy");
    let probers: Value =
        serde_json::from_str(env(proxy, "ISTIO_KUBE_APP_PROBERS").unwrap()).unwrap();
    assert_eq!(
        probers,
        serde_json::json!({
            "/app-health/hello/livez": {"httpGet": {"port": 80}},
            "/app-health/hello/readyz": {"httpGet": {"port": 3333}},
            "/app-health/world/livez": {"httpGet": {"port": 90}},
            "/app-lifecycle/hello/poststartz": {"tcpSocket": {"port": 93}},
            "/app-lifecycle/hello/prestopz": {"httpGet": {"port": 91}},
        })
    );
    let tcp = injected_template("tcp-probes.yaml");
    let hello = container(&tcp["spec"]["containers"], "hello");
    assert_eq!(
        hello["livenessProbe"],
        serde_json::json!({"httpGet": {"path": "/app-health/hello/livez", "port": 15020}})
    );
    let proxy = container(&tcp["spec"]["containers"], "lateen-proxy");
    let probers: Value =
        serde_json::from_str(env(proxy, "ISTIO_KUBE_APP_PROBERS").unwrap()).unwrap();
    assert_eq!(
        probers["/app-health/hello/livez"],
        serde_json::json!({"tcpSocket": {"port": 80}})
    );
}

#[test]
fn resource_annotations_and_proxy_override() {
    let tpl = injected_template("resource_annotations.yaml");
    let proxy = container(&tpl["spec"]["containers"], "lateen-proxy");
    assert_eq!(
        proxy["resources"],
        serde_json::json!({"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": "1000m", "memory": "2Gi"}})
    );
    let tpl = injected_template("proxy-override.yaml");
    assert_eq!(names(&tpl["spec"]["containers"]), ["hello", "lateen-proxy"]);
    let proxy = container(&tpl["spec"]["containers"], "lateen-proxy");
    assert_eq!(proxy["resources"]["requests"]["cpu"], "123m");
    assert_eq!(proxy["securityContext"]["runAsUser"], 1234);
    assert!(proxy["image"].as_str().unwrap().contains("lateen/proxy"));
    let init = container(&tpl["spec"]["initContainers"], "lateen-init");
    assert_eq!(init["image"], "fake/custom-image");
}

#[test]
fn list_and_multi_document_order_is_kept() {
    let out = inject_yaml(
        &read(&inject_dir().join("frontend.yaml")),
        &InjectConfig::default(),
    )
    .unwrap();
    let docs = parse_documents(&out).unwrap();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Service", "Deployment"]);
    let original = parse_documents(&read(&inject_dir().join("frontend.yaml"))).unwrap();
    assert_eq!(docs[0], original[0], "the Service passes through unchanged");
    let out = inject_yaml(
        &read(&inject_dir().join("list.yaml")),
        &InjectConfig::default(),
    )
    .unwrap();
    let docs = parse_documents(&out).unwrap();
    for tpl in pod_templates(&docs[0]) {
        assert!(names(&tpl["spec"]["containers"]).contains(&"lateen-proxy"));
    }
}

/// The init container's arguments are exactly what `lateen-proxy capture` accepts.
#[test]
fn capture_args_parse_with_the_capture_crate() {
    let cfg = InjectConfig::default();
    let mut checked = 0;
    // proxy-override.yaml pre-declares istio-init with its own args, which win.
    let inputs = good_inputs()
        .into_iter()
        .filter(|p| !p.ends_with("proxy-override.yaml"));
    for input in inputs {
        let mut docs = parse_documents(&read(&input)).unwrap();
        inject_documents(&mut docs, &cfg).unwrap();
        for doc in &docs {
            for tpl in pod_templates(doc) {
                let Some(inits) = tpl["spec"]["initContainers"].as_array() else {
                    continue;
                };
                for init in inits.iter().filter(|c| c["name"] == "lateen-init") {
                    let args = args_of(init);
                    assert_eq!(args[0], "capture");
                    let parsed = lateen_capture::cli::parse_flags(&args)
                        .unwrap_or_else(|e| panic!("{}: {args:?}: {e}", input.display()));
                    parsed
                        .to_config()
                        .unwrap_or_else(|e| panic!("{}: {args:?}: {e}", input.display()));
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 25, "{checked}");
}

/// Objects of the wrong shape are refused with the field's path, never a panic.
#[test]
fn malformed_objects_name_the_field() {
    let cases = [
        (
            "kind: Deployment\nmetadata: {name: d}\nspec: {}\n",
            "spec.template",
        ),
        (
            "kind: Deployment\nmetadata: {name: d}\nspec: {template: []}\n",
            "spec.template",
        ),
        (
            "kind: Pod\nmetadata: {name: p}\nspec: {containers: x}\n",
            "spec.containers",
        ),
        (
            "kind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n",
            "spec.containers",
        ),
        (
            "kind: Pod\nmetadata: {name: p}\nspec: {containers: [3]}\n",
            "spec.containers[0]",
        ),
        (
            "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{image: x}]}\n",
            "spec.containers[0].name",
        ),
        (
            "kind: Pod\nmetadata: {name: p, annotations: {a: 1}}\nspec: {containers: [{name: a}]}\n",
            "metadata.annotations.a",
        ),
        (
            "kind: Pod\nmetadata: {name: p, labels: []}\nspec: {containers: [{name: a}]}\n",
            "metadata.labels",
        ),
        (
            "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, readinessProbe: 5}]}\n",
            "spec.containers[0].readinessProbe",
        ),
        (
            "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a}], volumes: {}}\n",
            "spec.volumes",
        ),
        (
            "kind: CronJob\nmetadata: {name: c}\nspec: {jobTemplate: {}}\n",
            "spec.jobTemplate.spec.template",
        ),
        (
            "kind: List\nitems:\n- kind: Pod\n  metadata: {name: p}\n  spec: {containers: 1}\n",
            "items[0] (Pod \"p\")",
        ),
        (
            "kind: Pod\nmetadata: {name: p, annotations: {proxy.istio.io/config: '[1]'}}\nspec: {containers: [{name: a}]}\n",
            "proxy.istio.io/config",
        ),
    ];
    for (input, field) in cases {
        let err = inject_yaml(input, &InjectConfig::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(field) && err.contains("document 0"),
            "{input}: {err}"
        );
    }
    // A pre-declared proxy with a bad lifecycle and holdApplicationUntilProxyStarts.
    let input = "kind: Pod\nmetadata: {name: p, annotations: {proxy.istio.io/config: 'holdApplicationUntilProxyStarts: true'}}\nspec: {containers: [{name: a}, {name: istio-proxy, lifecycle: x}]}\n";
    assert!(inject_yaml(input, &InjectConfig::default()).is_ok());
}

/// Every field of real workloads replaced by every wrong type: an error or a result, no panic.
#[test]
fn every_field_with_a_wrong_type_is_handled() {
    let cfg = InjectConfig::default();
    for file in [
        "hello-probes.yaml",
        "proxy-override.yaml",
        "cronjob.yaml",
        "traffic-annotations.yaml",
    ] {
        let doc = parse_documents(&read(&inject_dir().join(file)))
            .unwrap()
            .remove(0);
        for_each_wrong_type(&doc, |_, mut mutated| {
            let _ = inject_object(&mut mutated, &cfg);
        });
    }
}
