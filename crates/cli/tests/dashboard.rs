//! The dashboard end to end: `lateen demo` (loopback mode) runs with `--traffic`, a headless
//! Chromium (test-support's `chromium`) loads lateend's `/dashboard/` and the test reads the
//! DOM the page's scripts built: every demo workload is a node, the edges the traffic takes
//! carry non-zero request rates (computed by lateend from the sidecars' Istio metrics), the
//! reviews service's details (opened through the page's `#service=` link) list its subsets,
//! its VirtualService and no validation error, and every proxy is SYNCED. A screenshot is
//! kept under target/ (its path is printed). `lateen dashboard` prints the URL.
//!
//! Run: `cargo build --bins && cargo test -p lateen-cli --test dashboard` (about 40 s; skips
//! with a NOTICE without chromium, fails under `LATEEN_REQUIRE_TOOLS`). It uses the demo's
//! fixed loopback addresses and ports (15010, 15014, 127.0.10.N), like tests/demo.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lateen_test_support::chromium::{Chromium, chromium_or_skip, elements_with_class};
use lateen_test_support::process::ChildGuard;

const DASHBOARD: &str = "http://127.0.0.1:15014/dashboard/";
const REVIEWS: &str = "reviews.default.svc.cluster.local";
const WORKLOADS: &[&str] = &[
    "productpage-v1",
    "details-v1",
    "reviews-v1",
    "reviews-v2",
    "reviews-v3",
    "ratings-v1",
];
/// The calls `--traffic` makes (reviews' VirtualService sends everyone but jason to v1).
const BUSY_EDGES: &[(&str, &str)] = &[
    ("unknown", "default/productpage-v1"),
    ("default/productpage-v1", "default/details-v1"),
    ("default/productpage-v1", "default/reviews-v1"),
];

fn lateen() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lateen"))
}

/// The running demo; stopped (SIGTERM, then killed) when dropped.
struct Demo {
    _child: ChildGuard,
    stdout: PathBuf,
}

impl Demo {
    fn start(dir: &Path) -> Demo {
        let folder = lateen().parent().map(Path::to_path_buf).unwrap_or_default();
        for binary in ["lateend", "lateen-proxy", "lateen-sample-app"] {
            assert!(
                folder.join(binary).exists(),
                "{binary} must be built beside lateen (cargo build --bins)"
            );
        }
        let stdout = dir.join("demo.out");
        let out = std::fs::File::create(&stdout).expect("demo output file");
        let child = Command::new(lateen())
            .args([
                "demo",
                "--mode",
                "loopback",
                "--traffic",
                "20",
                "--duration",
                "180",
                "--dir",
            ])
            .arg(dir.join("demo"))
            .stdout(out)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start lateen demo");
        Demo {
            _child: ChildGuard::with_grace(child, Duration::from_secs(30)),
            stdout,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }
}

fn rps(edge: &BTreeMap<String, String>) -> f64 {
    edge.get("data-rps")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0.0)
}

/// The page's DOM once every busy edge shows a rate (the first loads start lateend's scraping;
/// rates need two scrapes 2 s apart).
fn dom_with_rates(chromium: &Chromium, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    while Instant::now() < deadline {
        match chromium.dump_dom(url, Duration::from_secs(4)) {
            Ok(dom) => {
                let edges = elements_with_class(&dom, "edge");
                let busy = BUSY_EDGES.iter().all(|(source, target)| {
                    edges.iter().any(|e| {
                        e.get("data-source").map(String::as_str) == Some(*source)
                            && e.get("data-target").map(String::as_str) == Some(*target)
                            && rps(e) > 0.0
                    })
                });
                if busy {
                    return dom;
                }
                last = dom;
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("the dashboard never showed rates on {BUSY_EDGES:?}; last DOM:\n{last}");
}

#[test]
fn dashboard_shows_the_demo_graph_details_and_sync_status_in_chromium() {
    let Some(chromium) =
        chromium_or_skip("dashboard_shows_the_demo_graph_details_and_sync_status_in_chromium")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let demo = Demo::start(dir.path());
    let started = Instant::now();
    while !demo.output().contains(DASHBOARD) {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the demo did not print the dashboard's URL:\n{}",
            demo.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let url = format!("{DASHBOARD}#service={REVIEWS}");
    let dom = dom_with_rates(&chromium, &url);

    let nodes = elements_with_class(&dom, "node");
    for workload in WORKLOADS {
        assert!(
            nodes
                .iter()
                .any(|n| n.get("data-workload").map(String::as_str) == Some(*workload)),
            "no node for {workload}: {nodes:?}"
        );
    }
    let edges = elements_with_class(&dom, "edge");
    for edge in &edges {
        let error_rate: f64 = edge
            .get("data-error-rate")
            .and_then(|r| r.parse().ok())
            .unwrap_or(1.0);
        assert_eq!(error_rate, 0.0, "the demo's calls all succeed: {edge:?}");
    }
    let busy = edges
        .iter()
        .find(|e| e.get("data-target").map(String::as_str) == Some("default/reviews-v1"))
        .expect("edge to reviews-v1");
    assert!(
        busy.get("data-p99-ms")
            .and_then(|p| p.parse::<f64>().ok())
            .is_some_and(|p| p > 0.0),
        "p99 of productpage → reviews-v1: {busy:?}"
    );

    // The reviews service's details, opened by the page's link.
    assert!(
        dom.contains(&format!("data-host=\"{REVIEWS}\"")),
        "no details of {REVIEWS}:\n{dom}"
    );
    for text in [
        "v1 (version=v1)",
        "v2 (version=v2)",
        "v3 (version=v3)",
        "VirtualService default/reviews",
        "DestinationRule default/reviews",
    ] {
        assert!(dom.contains(text), "details lack {text:?}:\n{dom}");
    }
    assert!(
        !dom.contains("msg-Error"),
        "validation errors shown:\n{dom}"
    );

    // Sync status: one row per sidecar, none NACKed, listeners and clusters SYNCED.
    assert_eq!(dom.matches("data-proxy=").count(), WORKLOADS.len(), "{dom}");
    assert!(
        dom.matches("state-SYNCED").count() >= 2 * WORKLOADS.len(),
        "{dom}"
    );
    assert!(!dom.contains("state-NACK"), "{dom}");

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    chromium
        .screenshot(&url, &screenshot, (1400, 1100), Duration::from_secs(4))
        .expect("screenshot");
    println!("dashboard screenshot: {}", screenshot.display());

    // `lateen dashboard` checks lateend answers and prints the URL (istioctl's words).
    let out = Command::new(lateen())
        .args(["dashboard", "--browser=false"])
        .output()
        .expect("run lateen dashboard");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, format!("{DASHBOARD}\nskipping opening a browser\n"));
    drop(demo);
}
