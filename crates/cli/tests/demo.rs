//! `lateen demo` end to end: lateend, six sample workloads and their sidecars come up, the
//! page is served through the mesh, the canary scenario moves reviews traffic to v3 as the
//! proxies' metrics observe it, and every process ends afterwards (loopback mode: explicit
//! listeners, no root). `--mode auto` without root or without the namespace tools falls back
//! to loopback and says why. The tests share the loopback addresses, so they run one at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::process::Command;
use std::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn demo_runs_the_canary_scenario_and_stops_cleanly() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let lateen = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lateen"));
    lateen_test_support::demo::assert_binaries_beside(&lateen);
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(&lateen)
        .args([
            "demo",
            "--mode",
            "loopback",
            "--scenario",
            "canary",
            "--duration",
            "1",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run lateen demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let logs = lateen_test_support::demo::logs(dir.path());
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}\n{logs}",
        String::from_utf8_lossy(&output.stderr)
    );
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
