//! `lateen demo` end to end: lateend, six sample workloads and their sidecars come up, the
//! page is served through the mesh, the canary scenario moves reviews traffic to v3 as the
//! proxies' metrics observe it, and every process ends afterwards (loopback mode: explicit
//! listeners, no root). `--mode auto` without root or without the namespace tools falls back
//! to loopback and says why. The zero-trust scenario shows auto mTLS with both principals in
//! the metrics, STRICT refusing plaintext from outside the mesh and an AuthorizationPolicy
//! denying one caller. The tests share the loopback addresses, so they run one at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::process::Command;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// A finished loopback-mode `lateen demo --scenario SCENARIO --duration SECONDS` that
/// succeeded: its folder, output and the processes' logs.
struct ScenarioRun {
    dir: tempfile::TempDir,
    stdout: String,
    logs: String,
}

fn run_scenario(scenario: &str, seconds: &str) -> ScenarioRun {
    let lateen = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lateen"));
    lateen_test_support::demo::assert_binaries_beside(&lateen);
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(&lateen)
        .args(["demo", "--mode", "loopback", "--scenario", scenario])
        .args(["--duration", seconds, "--dir"])
        .arg(dir.path())
        .output()
        .expect("run lateen demo");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let logs = lateen_test_support::demo::logs(dir.path());
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}\n{logs}",
        String::from_utf8_lossy(&output.stderr)
    );
    ScenarioRun { dir, stdout, logs }
}

#[test]
fn demo_runs_the_canary_scenario_and_stops_cleanly() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ScenarioRun { dir, stdout, .. } = run_scenario("canary", "1");
    assert!(
        stdout.contains("http://127.0.10.1:9080/productpage"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "v3 weight   0%: 200 requests, 0 failed; observed by productpage's sidecar: v1 100%"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "v3 weight 100%: 200 requests, 0 failed; observed by productpage's sidecar: v3 100%"
        ),
        "{stdout}"
    );
    let twenty = stdout
        .lines()
        .find(|line| line.contains("v3 weight  20%"))
        .unwrap_or_default();
    let v3_share: f64 = twenty
        .split("v3 ")
        .last()
        .and_then(|share| share.trim().trim_end_matches('%').parse().ok())
        .unwrap_or(0.0);
    assert!(
        (8.0..=35.0).contains(&v3_share),
        "20% step observed {v3_share}% on v3: {twenty}"
    );
    assert!(stdout.contains("demo stopped"), "{stdout}");
    assert!(
        !dir.path().join("pids").exists(),
        "no leftovers recorded after a clean stop"
    );
}

#[test]
fn auto_mode_without_the_namespace_tools_runs_on_loopback_and_says_why() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lateen = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lateen"));
    let Some(kill) = ["/usr/bin/kill", "/bin/kill"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
    else {
        assert!(
            std::env::var_os("LATEEN_REQUIRE_TOOLS").is_none_or(|v| v.is_empty()),
            "no kill binary"
        );
        eprintln!(
            "SKIPPED auto_mode_without_the_namespace_tools_runs_on_loopback_and_says_why: no kill binary"
        );
        return;
    };
    // A PATH with nothing but `kill` (the demo signals its processes with it): no `ip`.
    let bin = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(kill, bin.path().join("kill")).expect("symlink kill");
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(&lateen)
        .args(["demo", "--duration", "0", "--dir"])
        .arg(dir.path())
        .env("PATH", bin.path())
        .output()
        .expect("run lateen demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("capture is off: "), "{stdout}");
    assert!(
        stdout.contains("http://127.0.10.1:9080/productpage"),
        "{stdout}"
    );
    assert!(stdout.contains("demo stopped"), "{stdout}");
}

/// `--set meshConfig.accessLogFile=/dev/stdout`: every sidecar logs each request it carries
/// in Istio's default text format into its log (the proxy's stdout), on both sides of a call;
/// with `accessLogEncoding=JSON` each line is one JSON object.
#[test]
fn demo_with_an_access_log_file_logs_requests_on_both_sides() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lateen = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lateen"));
    for (encoding, check_json) in [("TEXT", false), ("JSON", true)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = Command::new(&lateen)
            .args(["demo", "--mode", "loopback", "--duration", "1", "--set"])
            .arg("meshConfig.accessLogFile=/dev/stdout")
            .arg("--set")
            .arg(format!("meshConfig.accessLogEncoding={encoding}"))
            .arg("--dir")
            .arg(dir.path())
            .output()
            .expect("run lateen demo");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let log = |name: &str| {
            std::fs::read_to_string(dir.path().join("logs").join(format!("{name}-proxy.log")))
                .unwrap_or_default()
        };
        assert!(
            output.status.success(),
            "demo failed:\n{stdout}\n{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            log("productpage-v1")
        );
        let access_lines = |name: &str| -> Vec<String> {
            log(name)
                .lines()
                .filter(|l| {
                    if check_json {
                        l.starts_with('{') && l.contains("\"response_code\"")
                    } else {
                        l.starts_with('[') && l.contains("HTTP/1.1\"")
                    }
                })
                .map(str::to_string)
                .collect()
        };
        // productpage's sidecar: the page request inbound and its calls outbound; the called
        // workloads' sidecars (details, reviews; whichever were up by then): those calls
        // inbound.
        let productpage = access_lines("productpage-v1");
        let called: Vec<String> = ["details-v1", "reviews-v1", "reviews-v2", "reviews-v3"]
            .iter()
            .flat_map(|name| access_lines(name))
            .collect();
        let inbound_page = productpage
            .iter()
            .any(|l| l.contains("/productpage") && l.contains("inbound|9080||"));
        let outbound = productpage.iter().any(|l| l.contains("outbound|9080|"));
        let inbound_called = called.iter().any(|l| l.contains("inbound|9080||"));
        assert!(
            inbound_page && outbound && inbound_called,
            "{encoding}: productpage sidecar:\n{}\ncalled sidecars:\n{}",
            log("productpage-v1"),
            called.join("\n")
        );
        if check_json {
            for line in productpage.iter().chain(&called) {
                let parsed: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
                assert!(parsed.is_object(), "{line}");
            }
        }
    }
}

/// `--scenario zero-trust`: every sidecar holds a certificate from lateend's CA (one bootstrap
/// token per workload identity), so productpage's calls cross mTLS and details' sidecar counts
/// them with `connection_security_policy="mutual_tls"` and both SPIFFE principals; PERMISSIVE
/// answers a plaintext call from outside the mesh, namespace STRICT refuses it while the page
/// (in-mesh calls) still works; an AuthorizationPolicy on ratings denies productpage's sidecar
/// (403 `RBAC: access denied`) and lets reviews-v2's through. The policy files are gone after.
#[test]
fn demo_zero_trust_scenario_shows_mtls_strict_and_authorization() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ScenarioRun { dir, stdout, logs } = run_scenario("zero-trust", "0");
    let line = |start: &str| {
        stdout
            .lines()
            .filter(|l| l.trim_start().starts_with(start))
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        line("productpage: "),
        ["productpage: 20/20 pages"],
        "{stdout}"
    );
    let seen = line("details-v1's sidecar: ");
    let count: f64 = seen
        .first()
        .and_then(|l| l.split(' ').nth(2))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    assert!(
        count >= 20.0
            && seen[0].contains("connection_security_policy=\"mutual_tls\"")
            && seen[0].contains(
                "source_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-productpage\""
            )
            && seen[0].contains(
                "destination_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-details\""
            ),
        "{stdout}\n{logs}"
    );
    let plaintext = line("plaintext call from outside the mesh to details: ");
    assert_eq!(plaintext.len(), 2, "{stdout}");
    assert!(plaintext[0].ends_with(": 200"), "PERMISSIVE: {stdout}");
    assert!(
        plaintext[1].contains(": refused"),
        "STRICT: {stdout}\n{logs}"
    );
    assert_eq!(
        line("productpage through the mesh: "),
        ["productpage through the mesh: 200"],
        "{stdout}\n{logs}"
    );
    assert_eq!(
        line("productpage-v1 → ratings: "),
        ["productpage-v1 → ratings: 403 RBAC: access denied"],
        "{stdout}\n{logs}"
    );
    assert_eq!(
        line("reviews-v2 → ratings: "),
        ["reviews-v2 → ratings: 200"],
        "{stdout}\n{logs}"
    );
    for file in [
        "peer-authentication.yaml",
        "authorization-policy-ratings.yaml",
    ] {
        assert!(!dir.path().join("config").join(file).exists(), "{file}");
    }
    assert!(stdout.contains("demo stopped"), "{stdout}");
}
