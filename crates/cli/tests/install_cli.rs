//! `lateen profile ...` and `lateen manifest generate`, run as the built binary; the manifests
//! of every profile are checked with `kubernetes-validate --strict` against two Kubernetes
//! versions.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Kubernetes versions the manifests must validate against.
const KUBERNETES_VERSIONS: &[&str] = &["1.33.0", "1.34.0"];

fn lateen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lateen"))
        .args(args)
        .output()
        .expect("running lateen")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn ok(args: &[&str]) -> String {
    let output = lateen(args);
    assert!(
        output.status.success(),
        "lateen {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

fn fails(args: &[&str]) -> String {
    let output = lateen(args);
    assert!(
        !output.status.success(),
        "lateen {args:?} succeeded: {}",
        stdout(&output)
    );
    stderr(&output)
}

fn shared(path: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures")
        .join(path)
        .display()
        .to_string()
}

/// A fresh directory for one test under the system temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("lateen-install-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating scratch dir");
    dir
}

fn kubernetes_validate() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin");
    on_path
        .chain(std::iter::once(venv))
        .map(|dir| dir.join("kubernetes-validate"))
        .find(|candidate| candidate.is_file())
}

/// Runs kubernetes-validate on `files`; custom resources (which it has no schema for) are
/// reported as warnings, so any warning or error line fails: we render only built-in kinds.
fn validate(files: &[PathBuf]) {
    let Some(tool) = kubernetes_validate() else {
        if std::env::var_os("LATEEN_REQUIRE_TOOLS").is_some_and(|v| !v.is_empty()) {
            panic!("kubernetes-validate is required (LATEEN_REQUIRE_TOOLS is set) but not found");
        }
        eprintln!("NOTICE: kubernetes-validate not found; skipping schema validation of manifests");
        return;
    };
    for version in KUBERNETES_VERSIONS {
        let output = Command::new(&tool)
            .args(["--strict", "--quiet", "-k", version])
            .args(files)
            .output()
            .expect("running kubernetes-validate");
        let report = format!("{}{}", stdout(&output), stderr(&output));
        assert!(
            output.status.success(),
            "kubernetes-validate {version} failed:\n{report}"
        );
        let problems: Vec<&str> = report
            .lines()
            .filter(|line| line.starts_with("ERROR") || line.starts_with("WARN"))
            .collect();
        assert!(
            problems.is_empty(),
            "kubernetes-validate {version}:\n{}",
            problems.join("\n")
        );
    }
}

const PROFILES: &[&str] = &["default", "demo", "empty", "minimal", "preview", "remote"];

const SAMPLE_SETS: &[&str] = &[
    "meshConfig.accessLogFile=/dev/stdout",
    "components.ingressGateways[name:istio-ingressgateway].k8s.resources.requests.cpu=100m",
    "values.global.proxy.resources.requests.cpu=50m",
    "components.pilot.k8s.replicaCount=2",
    "components.pilot.k8s.nodeSelector.disk=ssd",
    "components.pilot.k8s.podDisruptionBudget.maxUnavailable=1",
    "components.ingressGateways[name:istio-ingressgateway].k8s.service.type=NodePort",
    "components.egressGateways[name:istio-egressgateway].k8s.hpaSpec.maxReplicas=3",
    "values.pilot.traceSampling=10.5",
];

const SETTINGS_FILE: &str = r#"apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata:
  name: settings
spec:
  components:
    pilot:
      k8s:
        env:
        - name: EXTRA
          value: "1"
        tolerations:
        - key: dedicated
          operator: Equal
          value: mesh
          effect: NoSchedule
        affinity:
          nodeAffinity:
            requiredDuringSchedulingIgnoredDuringExecution:
              nodeSelectorTerms:
              - matchExpressions:
                - key: zone
                  operator: In
                  values: [a]
        podAnnotations:
          team: mesh
        securityContext:
          fsGroup: 1337
        overlays:
        - kind: Deployment
          name: lateend
          patches:
          - path: spec.template.spec.containers.[name:discovery].args[1]
            value: --monitoringAddr=:9999
    ingressGateways:
    - name: istio-ingressgateway
      enabled: true
      k8s:
        service:
          ports:
          - name: http2
            port: 80
            targetPort: 8080
    - name: internal-gateway
      enabled: true
      label:
        istio: internal
"#;

#[test]
fn profile_list_names_every_profile() {
    let listed = ok(&["profile", "list"]);
    for profile in PROFILES {
        assert!(
            listed.lines().any(|line| line.trim() == *profile),
            "{profile} missing from:\n{listed}"
        );
    }
}

#[test]
fn profile_dump_prints_the_merged_document() {
    let dumped = ok(&["profile", "dump", "demo"]);
    let tree: serde_json::Value = serde_saphyr::from_str(&dumped).expect("dump is YAML");
    assert_eq!(tree["kind"], "IstioOperator");
    assert_eq!(tree["spec"]["profile"], "demo");
    assert_eq!(tree["spec"]["meshConfig"]["accessLogFile"], "/dev/stdout");

    let seed = shared("seed/istio-operator-ingress.yaml");
    let resources = ok(&[
        "profile",
        "dump",
        "-f",
        &seed,
        "--config-path",
        "components.ingressGateways[name:istio-ingressgateway].k8s.resources.requests",
        "-o",
        "json",
    ]);
    let requests: serde_json::Value =
        serde_json::from_str(&resources).expect("dump -o json is JSON");
    assert_eq!(
        requests,
        serde_json::json!({"cpu": "100m", "memory": "400Mi"})
    );

    let pilot = ok(&[
        "profile",
        "dump",
        "--set",
        "profile=minimal",
        "--set",
        "components.pilot.k8s.replicaCount=3",
        "--config-path",
        "components.pilot",
    ]);
    let pilot: serde_json::Value = serde_saphyr::from_str(&pilot).unwrap();
    assert_eq!(pilot["k8s"]["replicaCount"], 3);
    assert_eq!(pilot["enabled"], true);

    let tag = ok(&[
        "profile",
        "dump",
        "--set",
        "tag=1.20",
        "--config-path",
        "tag",
        "-o",
        "json",
    ]);
    assert_eq!(tag.trim(), "\"1.20\"");
}

#[test]
fn profile_errors_are_clear_and_fail() {
    let message = fails(&["profile", "dump", "ambient"]);
    assert!(
        message.contains("\"ambient\" is not supported"),
        "{message}"
    );
    assert!(
        message.contains("default, demo, empty, minimal, preview, remote"),
        "{message}"
    );

    let message = fails(&[
        "profile",
        "dump",
        "--set",
        "components.pilot.k8s.replicaCount=lots",
    ]);
    assert!(
        message.contains("spec.components.pilot.k8s.replicaCount"),
        "{message}"
    );

    let dir = scratch("errors");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "spec:\n  meshConfig:\n    enableTracing: sometimes\n").unwrap();
    let message = fails(&["profile", "dump", "-f", bad.to_str().unwrap()]);
    assert!(
        message.contains("bad.yaml: spec.meshConfig.enableTracing"),
        "{message}"
    );

    let message = fails(&[
        "manifest",
        "generate",
        "-f",
        dir.join("absent.yaml").to_str().unwrap(),
    ]);
    assert!(message.contains("absent.yaml"), "{message}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn profile_diff_is_a_plain_unified_diff_off_a_terminal() {
    let diff = ok(&["profile", "diff", "default", "demo"]);
    assert!(
        diff.contains("--- default") && diff.contains("+++ demo"),
        "{diff}"
    );
    assert!(diff.lines().any(|l| l.starts_with("@@ ")), "{diff}");
    assert!(
        diff.lines()
            .any(|l| l.starts_with('+') && l.contains("accessLogFile: /dev/stdout")),
        "{diff}"
    );
    assert!(!diff.contains('\x1b'), "colour codes off a terminal");

    let same = ok(&["profile", "diff", "minimal", "minimal"]);
    assert!(same.contains("are the same"), "{same}");
    fails(&["profile", "diff", "default", "ambient"]);
}

#[test]
fn profile_diff_is_coloured_on_a_terminal() {
    // `script` gives the command a pseudo-terminal as stdout.
    let Ok(output) = Command::new("script")
        .args([
            "-qec",
            &format!("{} profile diff default demo", env!("CARGO_BIN_EXE_lateen")),
            "/dev/null",
        ])
        .output()
    else {
        if std::env::var_os("LATEEN_REQUIRE_TOOLS").is_some_and(|v| !v.is_empty()) {
            panic!("`script` (util-linux) is required (LATEEN_REQUIRE_TOOLS is set) but not found");
        }
        eprintln!("NOTICE: `script` is not available; skipping the terminal colour check");
        return;
    };
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("\x1b[32m+"),
        "expected green additions in:\n{text}"
    );
}

fn generate_to(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let mut all = vec!["manifest", "generate"];
    all.extend_from_slice(args);
    let manifest = ok(&all);
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, manifest).unwrap();
    path
}

#[test]
fn manifests_of_every_profile_pass_kubernetes_validate() {
    let dir = scratch("validate");
    let settings = dir.join("settings.yaml");
    std::fs::write(&settings, SETTINGS_FILE).unwrap();
    let seed = shared("seed/istio-operator-ingress.yaml");
    let mut files = Vec::new();
    for profile in PROFILES {
        let profile_flag = format!("profile={profile}");
        files.push(generate_to(&dir, profile, &["--set", &profile_flag]));
        let mut args = vec!["--set", profile_flag.as_str()];
        for set in SAMPLE_SETS {
            args.extend(["--set", set]);
        }
        files.push(generate_to(&dir, &format!("{profile}-sets"), &args));
    }
    files.push(generate_to(&dir, "seed", &["-f", &seed]));
    files.push(generate_to(
        &dir,
        "settings",
        &["-f", settings.to_str().unwrap()],
    ));
    files.push(generate_to(
        &dir,
        "revision",
        &["-f", &seed, "--set", "revision=canary"],
    ));

    let seed_manifest = std::fs::read_to_string(dir.join("seed.yaml")).unwrap();
    assert!(
        seed_manifest.contains("memory: 400Mi"),
        "seed's gateway resources are rendered"
    );
    let settings_manifest = std::fs::read_to_string(dir.join("settings.yaml")).unwrap();
    assert!(settings_manifest.contains("name: internal-gateway"));
    assert!(settings_manifest.contains("--monitoringAddr=:9999"));
    let revision_manifest = std::fs::read_to_string(dir.join("revision.yaml")).unwrap();
    assert!(revision_manifest.contains("name: lateend-canary"));
    let empty = std::fs::read_to_string(dir.join("empty.yaml")).unwrap();
    assert!(
        empty.trim().is_empty(),
        "the empty profile installs nothing:\n{empty}"
    );

    validate(&files);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn manifest_stream_is_ordered_for_one_apply_pass() {
    let manifest = ok(&["manifest", "generate"]);
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&manifest).expect("manifest is YAML");
    let kinds: Vec<&str> = documents
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    let position = |kind: &str| {
        kinds
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let last = |kind: &str| {
        kinds
            .iter()
            .rposition(|k| *k == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    assert_eq!(kinds[0], "Namespace");
    assert!(last("CustomResourceDefinition") < position("ServiceAccount"));
    assert!(last("ConfigMap") < position("Deployment"));
    assert!(last("Service") < position("Deployment"));
    assert!(last("Deployment") < position("MutatingWebhookConfiguration"));
    assert_eq!(
        kinds.last().copied(),
        Some("ValidatingWebhookConfiguration")
    );
}

#[test]
fn manifest_generate_writes_a_directory_per_component() {
    let dir = scratch("output");
    let out = dir.join("out");
    ok(&[
        "manifest",
        "generate",
        "--set",
        "profile=demo",
        "-o",
        out.to_str().unwrap(),
    ]);
    for component in ["Base", "Pilot", "IngressGateways", "EgressGateways"] {
        let file = out.join(component).join(format!("{component}.yaml"));
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        assert!(
            text.contains(&format!("operator.istio.io/component: {component}")),
            "{}",
            file.display()
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A stub Kubernetes API server (plain HTTP/1.1 on 127.0.0.1, one thread per connection) that
/// stores server-side applied objects by URL path and answers get and delete.
mod stub_api {
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};

    pub type Objects = Arc<Mutex<BTreeMap<String, Value>>>;

    /// Connections served at most, so the accept loop is bounded.
    const MAX_CONNECTIONS: usize = 2000;

    pub fn start() -> (String, Objects) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the stub API server");
        let address = format!("http://{}", listener.local_addr().expect("stub address"));
        let objects: Objects = Arc::default();
        let shared = objects.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(MAX_CONNECTIONS).flatten() {
                let objects = shared.clone();
                std::thread::spawn(move || serve(stream, objects));
            }
        });
        (address, objects)
    }

    fn serve(stream: TcpStream, objects: Objects) {
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                return;
            }
            let mut parts = request_line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_owned();
            let target = parts.next().unwrap_or_default().to_owned();
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 {
                    return;
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let path = target.split('?').next().unwrap_or_default().to_owned();
            let (code, reply) = answer(&method, &path, &target, &body, &objects);
            let text = reply.to_string();
            let response = format!(
                "HTTP/1.1 {code} Stub\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            );
            if writer.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn answer(
        method: &str,
        path: &str,
        target: &str,
        body: &[u8],
        objects: &Objects,
    ) -> (u16, Value) {
        let not_found = || {
            (
                404,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
            )
        };
        let mut objects = objects.lock().expect("stub store");
        match method {
            "PATCH" if target.contains("fieldManager=lateen") => {
                match serde_json::from_slice::<Value>(body) {
                    Ok(object) => {
                        objects.insert(path.to_owned(), object.clone());
                        (200, object)
                    }
                    Err(_) => (400, json!({"kind": "Status", "code": 400})),
                }
            }
            "GET" => objects
                .get(path)
                .map_or_else(not_found, |object| (200, object.clone())),
            "DELETE" => match objects.remove(path) {
                Some(_) => (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
                ),
                None => not_found(),
            },
            _ => (
                400,
                json!({"kind": "Status", "code": 400, "message": "unexpected request"}),
            ),
        }
    }
}

#[test]
fn install_verify_and_uninstall_against_a_stub_api_server() {
    let (server, objects) = stub_api::start();
    let args = |command: &str| -> Vec<String> {
        [
            "manifest",
            command,
            "--server",
            &server,
            "--set",
            "profile=minimal",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |command: &str| lateen(&args(command).iter().map(String::as_str).collect::<Vec<_>>());

    let installed = run("install");
    assert!(installed.status.success(), "{}", stderr(&installed));
    assert!(
        stdout(&installed).contains("applied Deployment/istio-system/lateend"),
        "{}",
        stdout(&installed)
    );
    assert!(stdout(&installed).contains("Installation complete"));
    let deployment = "/apis/apps/v1/namespaces/istio-system/deployments/lateend";
    assert!(objects.lock().unwrap().contains_key(deployment));

    let unready = run("verify-install");
    assert!(!unready.status.success());
    assert!(
        stdout(&unready).contains("not ready Deployment/istio-system/lateend"),
        "{}",
        stdout(&unready)
    );

    if let Some(object) = objects.lock().unwrap().get_mut(deployment) {
        object["status"] = serde_json::json!({"readyReplicas": 1});
    }
    let ready = run("verify-install");
    assert!(
        ready.status.success(),
        "{}{}",
        stdout(&ready),
        stderr(&ready)
    );

    let removed = run("uninstall");
    assert!(removed.status.success(), "{}", stderr(&removed));
    let left: Vec<String> = objects.lock().unwrap().keys().cloned().collect();
    assert!(
        left.iter()
            .all(|p| p.contains("customresourcedefinitions")
                || p == "/api/v1/namespaces/istio-system"),
        "{left:?}"
    );
}
