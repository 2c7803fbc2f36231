//! End to end: the built `lateen` binary's `kube-inject` on the seed's and Istio's fixtures,
//! with stdin/stdout, `-o`, config files, and failures that exit non-zero naming the document.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

fn inject_dir() -> PathBuf {
    fixtures().join("istio/pkg/kube/inject/testdata/inject")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lateen-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lateen(args: &[&str], stdin: Option<&str>) -> Output {
    lateen_env(args, stdin, &[])
}

fn lateen_env(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lateen"))
        .args(args)
        .env_remove("ENABLE_NATIVE_SIDECARS")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lateen");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        // lateen may exit before reading stdin (e.g. a bad config file): ignore a broken pipe.
        let _ = pipe.write_all(text.as_bytes());
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn docs(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap();
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn ok_stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "lateen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .map(|l| l.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn seed_deployment_gets_sidecar_and_opt_out_is_unchanged() {
    let nginx = fixtures().join("seed/deployment-nginx.yaml");
    let out = docs(&ok_stdout(&lateen(
        &["kube-inject", "-f", path_str(&nginx)],
        None,
    )));
    let spec = &out[0]["spec"]["template"]["spec"];
    assert_eq!(names(&spec["containers"]), ["nginx", "lateen-proxy"]);
    assert_eq!(names(&spec["initContainers"]), ["lateen-init"]);

    let off = fixtures().join("seed/deployment-nginx-inject-false.yaml");
    let out = docs(&ok_stdout(&lateen(
        &["kube-inject", "-f", path_str(&off)],
        None,
    )));
    assert_eq!(out, docs(&std::fs::read_to_string(&off).unwrap()));
}

/// As istioctl: offline there is no cluster to ask, so the classic layout, unless
/// `ENABLE_NATIVE_SIDECARS=true` (then the proxy is a restartable init container).
#[test]
fn native_sidecars_only_when_the_environment_says_so() {
    let nginx = fixtures().join("seed/deployment-nginx.yaml");
    let args = ["kube-inject", "-f", path_str(&nginx)];
    for (value, containers, init) in [
        ("auto", vec!["nginx", "lateen-proxy"], vec!["lateen-init"]),
        ("true", vec!["nginx"], vec!["lateen-init", "lateen-proxy"]),
    ] {
        let out = docs(&ok_stdout(&lateen_env(
            &args,
            None,
            &[("ENABLE_NATIVE_SIDECARS", value)],
        )));
        let spec = &out[0]["spec"]["template"]["spec"];
        assert_eq!(names(&spec["containers"]), containers, "{value}");
        assert_eq!(names(&spec["initContainers"]), init, "{value}");
    }
}

#[test]
fn stdin_and_output_file() {
    let hello = std::fs::read_to_string(inject_dir().join("hello-multi.yaml")).unwrap();
    let from_stdin = ok_stdout(&lateen(&["kube-inject", "-f", "-"], Some(&hello)));
    let dir = temp_dir("output");
    let file = dir.join("out.yaml");
    let from_file_arg = inject_dir().join("hello-multi.yaml");
    let out = lateen(
        &[
            "kube-inject",
            "-f",
            path_str(&from_file_arg),
            "-o",
            path_str(&file),
        ],
        None,
    );
    assert!(ok_stdout(&out).is_empty());
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(docs(&from_stdin), docs(&written));
    assert_eq!(docs(&written).len(), 2);
}

#[test]
fn bad_annotations_fail_naming_document_field_and_value() {
    let bad = inject_dir().join("traffic-annotations-bad-excludeoutboundports.yaml");
    let out = lateen(&["kube-inject", "-f", path_str(&bad)], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "document 0",
        "Deployment",
        "spec.template.metadata.annotations",
        "traffic.sidecar.istio.io/excludeOutboundPorts",
        "\"bad\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
    assert!(out.stdout.is_empty());
    let out = lateen(&["kube-inject", "-f", "-"], Some("a: [unclosed"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("YAML"));
}

#[test]
fn bookinfo_injects_and_validates_strictly() {
    let bookinfo = fixtures().join("istio/samples/bookinfo/platform/kube/bookinfo.yaml");
    let dir = temp_dir("bookinfo");
    let file = dir.join("bookinfo-injected.yaml");
    ok_stdout(&lateen(
        &[
            "kube-inject",
            "-f",
            path_str(&bookinfo),
            "-o",
            path_str(&file),
        ],
        None,
    ));
    let out = docs(&std::fs::read_to_string(&file).unwrap());
    let deployments: Vec<&Value> = out.iter().filter(|d| d["kind"] == "Deployment").collect();
    assert_eq!(deployments.len(), 6);
    for d in deployments {
        assert!(names(&d["spec"]["template"]["spec"]["containers"]).contains(&"lateen-proxy"));
    }
    let kinds: Vec<&str> = out.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"Service") && kinds.contains(&"ServiceAccount"));

    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/kubernetes-validate");
    let tool = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("kubernetes-validate"))
        .find(|p| p.is_file())
        .or_else(|| venv.is_file().then_some(venv));
    let Some(tool) = tool else {
        assert!(
            std::env::var("LATEEN_REQUIRE_TOOLS")
                .unwrap_or_default()
                .is_empty(),
            "kubernetes-validate is required"
        );
        eprintln!("NOTICE: kubernetes-validate not found; skipping schema validation");
        return;
    };
    for version in ["1.34.0", "1.37.0"] {
        let v = Command::new(&tool)
            .args(["--strict", "--quiet", "--kubernetes-version", version])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{version}: {}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
    }
}

#[test]
fn istio_config_files_and_revision_are_honoured() {
    let dir = temp_dir("config");
    // Istio's istio-sidecar-injector ConfigMap shape: `config` (YAML text) and `values` (JSON).
    let inject_config = dir.join("inject-config.yaml");
    std::fs::write(
        &inject_config,
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: istio-sidecar-injector
  namespace: istio-system
data:
  config: |-
    policy: enabled
    alwaysInjectSelector: []
    neverInjectSelector:
      - matchExpressions:
        - {key: tier, operator: In, values: [never]}
    injectedAnnotations:
      example.com/injected-by: lateen
    defaultTemplates: [sidecar]
    template: "{{ Template_Version_And_Istio_Version_Mismatched_Check_Installation }}"
  values: |-
    {"global": {"hub": "registry.example.com/mesh", "tag": "1.2.3", "meshID": "mesh1",
     "multiCluster": {"clusterName": "east"}, "proxy": {"statusPort": 15020, "excludeInboundPorts": "9000"}},
     "revision": ""}
"#,
    )
    .unwrap();
    let mesh = dir.join("mesh.yaml");
    std::fs::write(&mesh, "defaultConfig:\n  discoveryAddress: lateend-canary.istio-system.svc:15012\ntrustDomain: example.org\n").unwrap();

    let input = "apiVersion: v1\nkind: Pod\nmetadata: {name: a, labels: {tier: web}}\nspec: {containers: [{name: a, image: x}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, labels: {tier: never}}\nspec: {containers: [{name: b, image: x}]}\n";
    let args = [
        "kube-inject",
        "-f",
        "-",
        "--injectConfigFile",
        path_str(&inject_config),
        "--meshConfigFile",
        path_str(&mesh),
        "--revision",
        "canary",
    ];
    let out = docs(&ok_stdout(&lateen(&args, Some(input))));
    let pod_a = &out[0];
    assert_eq!(
        pod_a["metadata"]["annotations"]["example.com/injected-by"],
        "lateen"
    );
    assert_eq!(pod_a["metadata"]["annotations"]["istio.io/rev"], "canary");
    let proxy = pod_a["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "lateen-proxy")
        .unwrap();
    assert_eq!(proxy["image"], "registry.example.com/mesh/proxy:1.2.3");
    let env = |n: &str| {
        proxy["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .map(|e| e["value"].clone())
    };
    assert_eq!(env("TRUST_DOMAIN"), Some("example.org".into()));
    assert_eq!(env("ISTIO_META_MESH_ID"), Some("mesh1".into()));
    assert_eq!(env("ISTIO_META_CLUSTER_ID"), Some("east".into()));
    assert!(
        proxy["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "lateend-canary.istio-system.svc:15012")
    );
    let init = &pod_a["spec"]["initContainers"][0];
    assert!(
        init["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "15090,15021,9000,15020")
    );
    // neverInjectSelector matches pod b: unchanged.
    assert_eq!(names(&out[1]["spec"]["containers"]), ["b"]);

    // A values file on its own (JSON) and a bad one.
    let values = dir.join("values.json");
    std::fs::write(
        &values,
        r#"{"global": {"proxy": {"includeIPRanges": "not-a-cidr"}}}"#,
    )
    .unwrap();
    let out = lateen(
        &["kube-inject", "-f", "-", "--valuesFile", path_str(&values)],
        Some(input),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("values.json") && err.contains("global.proxy.includeIPRanges"),
        "{err}"
    );
}
