//! `lateen analyze --use-kube` against a real API server (test-support's `TestCluster`): the
//! CRDs `lateen install` renders are applied, Istio resources are created with kubectl, and
//! the `lateen` binary analyzes the cluster with istioctl's messages and exit codes — alone,
//! and with files on the command line that override the cluster's objects. An unreachable API
//! server is an error (exit 1, istioctl's `ExitUnknownError`); that test needs no cluster.
//!
//! Run: `cargo test -p lateen-cli --test analyze_kube` (the cluster test needs the binaries of
//! `scripts/kube-test-bins.sh` and skips with a NOTICE without them; about 20 s with them).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::Output;

use lateen_install::render::crds;
use lateen_test_support::kube::TestCluster;

const NS: &str = "shop";

/// VirtualService `shop/reviews` routing to `reviews`, to `subset` when given.
fn virtual_service(subset: Option<&str>) -> String {
    let subset = subset.map_or(String::new(), |s| format!("\n        subset: {s}"));
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews{subset}
"
    )
}

/// DestinationRule `shop/reviews` defining one subset.
fn destination_rule(subset: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: shop
spec:
  host: reviews
  subsets:
  - name: {subset}
    labels: {{version: {subset}}}
"
    )
}

const MISSING_SUBSET: &str = "Error [IST0101] (VirtualService shop/reviews) Referenced host+subset in destinationrule not found: \"reviews+v1\"";

fn analyze(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lateen"))
        .arg("analyze")
        .args(args)
        .output()
        .expect("running lateen analyze")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit 79 and the one IST0101 of the VirtualService, named without a file.
fn assert_only_missing_subset(out: &Output) {
    assert_eq!(out.status.code(), Some(79), "{}", describe(out));
    assert_eq!(stdout(out).trim_end(), MISSING_SUBSET, "{}", describe(out));
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a test file");
    path
}

fn install_crds(cluster: &TestCluster) {
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": crds::all()});
    let bytes = serde_json::to_vec(&list).expect("CRDs as JSON");
    cluster
        .kubectl_ok(&["apply", "--server-side", "-f", "-"], Some(&bytes))
        .expect("applying the CRDs");
    cluster.wait_crds_established().expect("CRDs established");
}

#[test]
fn analyzes_the_clusters_istio_resources_with_files_overriding_them() {
    let Some(cluster) = TestCluster::start_or_skip("analyze_kube") else {
        return;
    };
    install_crds(&cluster);
    cluster
        .kubectl_ok(&["create", "namespace", NS], None)
        .expect("creating the namespace");
    let kubeconfig = cluster.kubeconfig().to_str().expect("a UTF-8 path");
    let kube = ["-k", "--kubeconfig", kubeconfig, "-n", NS];
    let files = tempfile::tempdir().expect("a temporary folder");

    // A VirtualService routing to a subset no DestinationRule defines.
    cluster
        .apply(&virtual_service(Some("v1")))
        .expect("creating the VirtualService");
    let out = analyze(&kube);
    assert_only_missing_subset(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("Error: Analyzers found issues when analyzing namespace: shop."),
        "{}",
        describe(&out)
    );

    // JSON names the resource and leaves out the file reference it does not have.
    let out = analyze(&[&kube[..], &["-o", "json"]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(list[0]["code"], "IST0101", "{}", describe(&out));
    assert_eq!(list[0]["origin"], "VirtualService shop/reviews");
    assert!(list[0].get("reference").is_none(), "{list}");

    // Another namespace's messages are not reported (-n scopes the output), -A reports them.
    let out = analyze(&["-k", "--kubeconfig", kubeconfig, "-n", "default"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = analyze(&["-k", "--kubeconfig", kubeconfig, "-A"]);
    assert_eq!(out.status.code(), Some(79), "{}", describe(&out));
    assert!(stdout(&out).contains(MISSING_SUBSET), "{}", describe(&out));

    // A file holding the missing DestinationRule completes the cluster's configuration...
    let dr_file = write(files.path(), "dr.yaml", &destination_rule("v1"));
    let dr_file = dr_file.to_str().expect("a UTF-8 path");
    let out = analyze(&[&kube[..], &[dr_file]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    // ...and a file's VirtualService replaces the cluster's one.
    let vs_file = write(files.path(), "vs.yaml", &virtual_service(None));
    let vs_file = vs_file.to_str().expect("a UTF-8 path");
    let out = analyze(&[&kube[..], &[vs_file]].concat());
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stdout(&out).is_empty(), "{}", describe(&out));

    // Without -n, the kubeconfig context's namespace is the one reported, as in istioctl.
    let in_shop = files.path().join("shop.kubeconfig");
    std::fs::copy(cluster.kubeconfig(), &in_shop).expect("copying the kubeconfig");
    let in_shop = in_shop.to_str().expect("a UTF-8 path");
    let set = std::process::Command::new(cluster.bin_dir().join("kubectl"))
        .args(["config", "set-context", "--current", "--namespace", NS])
        .args(["--kubeconfig", in_shop])
        .output()
        .expect("running kubectl config");
    assert!(set.status.success(), "{}", describe(&set));
    let out = analyze(&["-k", "--kubeconfig", in_shop]);
    assert_only_missing_subset(&out);

    // With the DestinationRule in the cluster, nothing is wrong.
    cluster
        .apply(&destination_rule("v1"))
        .expect("creating the DestinationRule");
    let out = analyze(&kube);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stdout(&out).is_empty(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("No validation issues found when analyzing namespace: shop."),
        "{}",
        describe(&out)
    );

    // A file replacing the cluster's DestinationRule by one without v1 brings the error back,
    // on the cluster's VirtualService (no file, no line).
    let dr_v2_file = write(files.path(), "dr-v2.yaml", &destination_rule("v2"));
    let dr_v2_file = dr_v2_file.to_str().expect("a UTF-8 path");
    let out = analyze(&[&kube[..], &[dr_v2_file]].concat());
    assert_only_missing_subset(&out);

    // A context the kubeconfig does not have is an error, as in istioctl.
    let out = analyze(&[&kube[..], &["--context", "nowhere"]].concat());
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nowhere"),
        "{}",
        describe(&out)
    );

    // An account RBAC does not let list Istio resources gets an error, not a clean bill.
    cluster
        .kubectl_ok(&["create", "serviceaccount", "reader", "-n", NS], None)
        .expect("creating a ServiceAccount");
    let token = cluster
        .service_account_token(NS, "reader", &[])
        .expect("a token");
    let reader = cluster.kubeconfig_for_token(&token).expect("a kubeconfig");
    let reader = reader.to_str().expect("a UTF-8 path");
    let out = analyze(&["-k", "--kubeconfig", reader, "-n", NS]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot list virtualservices") && stderr.contains("forbidden"),
        "{}",
        describe(&out)
    );

    // Without -k the cluster is not read: files only, as before.
    let out = analyze(&["-n", NS, vs_file]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
}

#[test]
fn an_unreachable_api_server_is_an_error() {
    // A loopback port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let kubeconfig = write(
        dir.path(),
        "kubeconfig",
        &format!(
            "apiVersion: v1
kind: Config
clusters:
- name: gone
  cluster:
    server: https://127.0.0.1:{port}
    insecure-skip-tls-verify: true
users:
- name: nobody
  user:
    token: not-a-token
contexts:
- name: gone
  context: {{cluster: gone, user: nobody}}
current-context: gone
"
        ),
    );
    let started = std::time::Instant::now();
    let out = analyze(&[
        "-k",
        "--kubeconfig",
        kubeconfig.to_str().expect("a UTF-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot analyze the cluster (--use-kube): API server https://127.0.0.1:"),
        "{}",
        describe(&out)
    );
    assert!(stdout(&out).is_empty(), "{}", describe(&out));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
