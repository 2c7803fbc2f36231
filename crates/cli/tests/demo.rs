//! `lateen demo` end to end: lateend, six sample workloads and their sidecars come up, the
//! page is served through the mesh, the canary scenario moves reviews traffic to v3 as the
//! proxies' metrics observe it, and every process ends afterwards (loopback mode: explicit
//! listeners, no root). `--mode auto` without root or without the namespace tools falls back
//! to loopback and says why. The tests share the loopback addresses, so they run one at a time.

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
