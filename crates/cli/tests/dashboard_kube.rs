//! `lateen dashboard ADDON` against a real API server (test-support's `TestCluster`), where
//! no addon runs: istioctl's messages and exit code 1 for a missing Prometheus, Grafana or
//! Kiali pod, for a selector matching no pod, and for `controlz`/`envoy` without a pod or
//! with both a pod and a selector. (There is no kubelet, so a port-forward cannot be tested.)
//!
//! Run: `cargo test -p lateen-cli --test dashboard_kube` (needs the binaries of
//! `scripts/kube-test-bins.sh`, skips with a NOTICE without them; a few seconds with them).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::process::Output;

use lateen_test_support::kube::TestCluster;

fn dashboard(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lateen"))
        .arg("dashboard")
        .args(args)
        .arg("--browser=false")
        .output()
        .expect("run lateen dashboard")
}

fn assert_fails_with(out: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr, format!("Error: {message}\n"));
}

#[test]
fn missing_addons_fail_with_istioctls_messages() {
    let Some(cluster) = TestCluster::shared("missing_addons_fail_with_istioctls_messages") else {
        return;
    };
    let kubeconfig = cluster.kubeconfig().to_string_lossy().into_owned();
    let kc = kubeconfig.as_str();
    for (addon, flavor) in [
        ("prometheus", "Prometheus"),
        ("grafana", "Grafana"),
        ("kiali", "Kiali"),
        ("jaeger", "Jaeger"),
        ("zipkin", "Zipkin"),
    ] {
        let out = dashboard(&[addon, "--kubeconfig", kc]);
        assert_fails_with(&out, &format!("no {flavor} pods found"));
    }
    let out = dashboard(&["prometheus", "-n", "monitoring", "--kubeconfig", kc]);
    assert_fails_with(&out, "no Prometheus pods found");
    let out = dashboard(&["envoy", "-l", "app=productpage", "--kubeconfig", kc]);
    assert_fails_with(&out, "no pods found");
    let out = dashboard(&["controlz", "--kubeconfig", kc]);
    assert_fails_with(&out, "specify a pod or --selector");
    let out = dashboard(&[
        "envoy",
        "productpage-123.default",
        "-l",
        "app=x",
        "--kubeconfig",
        kc,
    ]);
    assert_fails_with(&out, "name cannot be provided when a selector is specified");
}
