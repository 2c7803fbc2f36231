//! `lateen profile ...` and `lateen manifest generate`, run as the built binary; the manifests
//! of every profile are checked with `kubernetes-validate --strict` against two Kubernetes
//! versions.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

#[path = "../../install/tests/support/kubernetes_validate.rs"]
mod kubernetes_validate;
use kubernetes_validate::validate;

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

#[path = "../../install/tests/support/stub_api.rs"]
mod stub_api;

/// Runs lateen with `input` on stdin (`None`: stdin closed).
fn lateen_with_stdin(args: &[&str], input: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_lateen"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running lateen");
    if let Some(mut stdin) = child.stdin.take()
        && let Some(input) = input
    {
        stdin.write_all(input.as_bytes()).expect("writing stdin");
    }
    child.wait_with_output().expect("waiting for lateen")
}

const EGRESS_DEPLOYMENT: &str =
    "/apis/apps/v1/namespaces/istio-system/deployments/istio-egressgateway";
const CONTROL_PLANE: &str = "/apis/apps/v1/namespaces/istio-system/deployments/lateend";
const RECORD: &str = "/api/v1/namespaces/istio-system/configmaps/lateen-installed-manifest";
const NO_EGRESS: &str = "components.egressGateways[name:istio-egressgateway].enabled=false";

fn recorded(store: &stub_api::Shared) -> String {
    store.lock().unwrap().objects[RECORD]["data"]["objects"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn install_asks_applies_waits_prunes_verifies_and_uninstalls() {
    // Deployments report "not ready" on their first two reads, as right after an apply.
    let (server, store) = stub_api::start(2);
    let base = ["--server", server.as_str(), "--set", "profile=demo"];
    let with = |first: &[&str], extra: &[&str]| -> Vec<String> {
        first
            .iter()
            .chain(base.iter())
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>, input: Option<&str>| {
        lateen_with_stdin(&args.iter().map(String::as_str).collect::<Vec<_>>(), input)
    };

    // No answer on stdin is "no": nothing is applied.
    let refused = run(with(&["install"], &[]), None);
    assert!(!refused.status.success());
    assert!(
        stdout(&refused).contains("This will install the Lateen"),
        "{}",
        stdout(&refused)
    );
    assert!(
        stdout(&refused).contains("\"demo\" profile into namespace istio-system"),
        "{}",
        stdout(&refused)
    );
    assert!(
        stderr(&refused).contains("no answer on stdin"),
        "{}",
        stderr(&refused)
    );
    let declined = run(with(&["install"], &[]), Some("n\n"));
    assert!(!declined.status.success());
    assert!(
        stderr(&declined).contains("cancelled"),
        "{}",
        stderr(&declined)
    );

    // A dry run lists what it would apply and changes nothing.
    let dry = run(with(&["install", "--dry-run"], &[]), None);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(stdout(&dry).contains("would apply Deployment/istio-system/lateend"));
    assert!(store.lock().unwrap().requests("PATCH").is_empty());

    // Install: applied, then waited for; plain progress lines off a terminal.
    let installed = run(
        with(&["install", "-y"], &["--readiness-timeout", "60s"]),
        None,
    );
    let text = stdout(&installed);
    assert!(installed.status.success(), "{text}{}", stderr(&installed));
    for line in [
        "✔ Applied",
        "- Waiting for Lateend: Deployment/istio-system/lateend: 0/1 replicas ready; Available=False (MinimumReplicasUnavailable): Deployment does not have minimum availability.",
        "✔ Istio core installed",
        "✔ Lateend installed",
        "✔ Ingress gateways installed",
        "✔ Egress gateways installed",
        "✔ Installation complete",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    assert!(!text.contains('\x1b'), "no terminal codes off a terminal");
    {
        let store = store.lock().unwrap();
        assert!(store.bad_applies.is_empty(), "{:?}", store.bad_applies);
        let last_apply = store
            .log
            .iter()
            .rposition(|l| {
                l.starts_with("PATCH") && !l.contains("/configmaps/lateen-installed-manifest")
            })
            .unwrap();
        let first_read = store
            .log
            .iter()
            .position(|l| l.starts_with("GET") && l.contains("/deployments/"))
            .unwrap();
        assert!(
            last_apply < first_read,
            "applies everything before waiting: {:?}",
            store.log
        );
        assert!(store.objects.contains_key(EGRESS_DEPLOYMENT));
    }
    assert!(recorded(&store).contains("\"name\":\"istio-egressgateway\""));

    // Disabling the egress gateway prunes its objects (and only those).
    let pruned = run(with(&["install", "-y"], &["--set", NO_EGRESS]), None);
    let text = stdout(&pruned);
    assert!(pruned.status.success(), "{text}{}", stderr(&pruned));
    assert!(
        text.contains("✔ Pruned Deployment/istio-system/istio-egressgateway"),
        "{text}"
    );
    assert!(
        text.contains("✔ Pruned Service/istio-system/istio-egressgateway"),
        "{text}"
    );
    assert!(!text.contains("Egress gateways installed"), "{text}");
    {
        let store = store.lock().unwrap();
        let left: Vec<&String> = store
            .objects
            .keys()
            .filter(|p| p.contains("egressgateway"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(store.objects.contains_key(CONTROL_PLANE));
    }
    assert!(!recorded(&store).contains("istio-egressgateway"));

    // An install the operator owns gets a warning before anything changes.
    store.lock().unwrap().objects.get_mut(RECORD).unwrap()["metadata"]["annotations"]["lateen.io/installed-by"] =
        serde_json::json!("IstioOperator istio-system/mesh");
    let warned = run(with(&["install"], &["--set", NO_EGRESS]), None);
    assert!(!warned.status.success());
    assert!(
        stdout(&warned).contains(
            "warning: this install is managed by the operator (IstioOperator istio-system/mesh)"
        ),
        "{}",
        stdout(&warned)
    );

    // verify-install checks each rendered object; with the old flags it finds the gap.
    let verified = run(with(&["verify-install"], &["--set", NO_EGRESS]), None);
    assert!(
        verified.status.success(),
        "{}{}",
        stdout(&verified),
        stderr(&verified)
    );
    assert!(stdout(&verified).contains("✔ Deployment/istio-system/lateend checked successfully"));
    // A field changed by hand is reported (a warning: an install puts it back).
    store
        .lock()
        .unwrap()
        .objects
        .get_mut(CONTROL_PLANE)
        .unwrap()["spec"]["template"]["spec"]["containers"][0]["image"] =
        serde_json::json!("example/other:1");
    let drifted = run(with(&["verify-install"], &["--set", NO_EGRESS]), None);
    assert!(drifted.status.success(), "{}", stderr(&drifted));
    assert!(
        stdout(&drifted).contains(
            "! Deployment/istio-system/lateend: spec.template.spec.containers[0].image: cluster has \"example/other:1\", the install renders \"docker.io/lateen/lateend:"
        ),
        "{}",
        stdout(&drifted)
    );
    assert!(
        stdout(&drifted).contains("warning: 1 fields differ"),
        "{}",
        stdout(&drifted)
    );
    let stale_flags = run(with(&["verify-install"], &[]), None);
    assert!(!stale_flags.status.success());
    assert!(
        stdout(&stale_flags).contains("✘ Deployment/istio-system/istio-egressgateway: missing"),
        "{}",
        stdout(&stale_flags)
    );

    // Uninstall removes what was recorded but the CRDs and the namespace.
    let log_before = store.lock().unwrap().log.len();
    let removed = run(with(&["uninstall"], &["--set", NO_EGRESS]), None);
    assert!(removed.status.success(), "{}", stderr(&removed));
    {
        let store = store.lock().unwrap();
        let left: Vec<&String> = store.objects.keys().collect();
        assert!(
            left.iter().all(|p| p.contains("customresourcedefinitions")
                || p.as_str() == "/api/v1/namespaces/istio-system"
                || p.as_str() == RECORD),
            "{left:?}"
        );
        assert!(left.iter().any(|p| p.contains("customresourcedefinitions")));
        let first_delete = store.log[log_before..]
            .iter()
            .find(|l| l.starts_with("DELETE"))
            .unwrap();
        assert!(
            first_delete.contains("webhookconfigurations"),
            "webhooks go first: {first_delete}"
        );
    }
    // Purge takes the rest, whatever the flags say (the record knows).
    let purged = run(
        vec![
            "uninstall".into(),
            "--server".into(),
            server.clone(),
            "--purge".into(),
        ],
        None,
    );
    assert!(purged.status.success(), "{}", stderr(&purged));
    let left: Vec<String> = store.lock().unwrap().objects.keys().cloned().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn install_reports_what_is_not_ready_when_time_runs_out() {
    let (server, store) = stub_api::start(usize::MAX);
    let output = lateen_with_stdin(
        &[
            "install",
            "--server",
            &server,
            "--set",
            "profile=minimal",
            "--readiness-timeout",
            "2s",
        ],
        Some("y\n"),
    );
    let text = stdout(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("Proceed? (y/N)"), "{text}");
    assert!(text.contains("✔ Istio core installed"), "{text}");
    assert!(text.contains("✘ Lateend is not ready after 2s:"), "{text}");
    assert!(text.contains("  - Deployment/istio-system/lateend: 0/1 replicas ready; Available=False (MinimumReplicasUnavailable)"), "{text}");
    assert!(
        stderr(&output).contains("did not become ready within 2s"),
        "{}",
        stderr(&output)
    );
    assert!(store.lock().unwrap().objects.contains_key(CONTROL_PLANE));
    // A revision has its own record.
    let revision = lateen_with_stdin(
        &[
            "install",
            "-y",
            "--server",
            &server,
            "--set",
            "profile=minimal",
            "--revision",
            "canary",
            "--readiness-timeout",
            "1s",
        ],
        None,
    );
    assert!(!revision.status.success());
    let canary = "/apis/apps/v1/namespaces/istio-system/deployments/lateend-canary";
    let reader = "/api/v1/namespaces/istio-system/serviceaccounts/lateen-reader-service-account";
    {
        let store = store.lock().unwrap();
        assert!(store.objects.contains_key(canary));
        assert!(store.objects.contains_key(&format!("{RECORD}-canary")));
    }
    // Uninstalling the default revision leaves the canary and what both share.
    let removed = lateen(&["uninstall", "--server", &server, "--set", "profile=minimal"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    {
        let store = store.lock().unwrap();
        assert!(!store.objects.contains_key(CONTROL_PLANE));
        assert!(store.objects.contains_key(canary));
        assert!(store.objects.contains_key(reader), "shared with the canary");
    }
    // The last one out takes the shared objects with it.
    let removed = lateen(&["uninstall", "--server", &server, "--revision", "canary"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    let store = store.lock().unwrap();
    assert!(!store.objects.contains_key(canary));
    assert!(!store.objects.contains_key(reader));
    let left: Vec<&String> = store
        .objects
        .keys()
        .filter(|p| !p.contains("customresourcedefinitions"))
        .collect();
    assert_eq!(
        left,
        [
            "/api/v1/namespaces/istio-system",
            "/api/v1/namespaces/istio-system/configmaps/lateen-installed-manifest-canary",
        ],
        "CRDs and the namespace stay, recorded (once) for a purge"
    );
}

#[test]
fn readiness_timeout_must_be_a_duration() {
    let message = fails(&["install", "--readiness-timeout", "soon", "--dry-run"]);
    assert!(message.contains("\"soon\" is not a duration"), "{message}");
}

#[test]
fn install_shows_a_spinner_on_a_terminal() {
    let (server, _store) = stub_api::start(3);
    // `script` gives the command a pseudo-terminal as stdout.
    let command = format!(
        "{} install -y --server {server} --set profile=minimal --readiness-timeout 20s",
        env!("CARGO_BIN_EXE_lateen")
    );
    let Ok(output) = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
    else {
        if std::env::var_os("LATEEN_REQUIRE_TOOLS").is_some_and(|v| !v.is_empty()) {
            panic!("`script` (util-linux) is required (LATEEN_REQUIRE_TOOLS is set) but not found");
        }
        eprintln!("NOTICE: `script` is not available; skipping the terminal progress check");
        return;
    };
    let text = stdout(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("\r\x1b[2K/ Processing resources for Lateend. Waiting for Deployment/istio-system/lateend: 0/1 replicas ready"),
        "{text:?}"
    );
    assert!(text.contains("\r\x1b[2K✔ Lateend installed"), "{text:?}");
    assert!(text.contains("✔ Installation complete"), "{text:?}");
}
