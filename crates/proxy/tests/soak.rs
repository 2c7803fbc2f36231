//! The soak test (issue #16): mixed HTTP/1.1, h2c, gRPC bidirectional streams and TCP from a
//! client sidecar to a server sidecar (two `lateen-proxy sidecar`s configured by lateend from
//! a watched folder), with an endpoint added or removed every second and a route and cluster
//! change every 5 s. No request may fail, and after the first minute neither sidecar (nor
//! lateend) may grow in descriptors or resident memory.
//!
//! Off unless `LATEEN_SOAK` is set (it runs for minutes: `LATEEN_SOAK_SECONDS`, default 600,
//! at least 90); then it needs `lateend` built beside `lateen-proxy` (`cargo build --bins`):
//! `LATEEN_SOAK=1 cargo test -p lateen-proxy --test soak -- --nocapture` prints the figures.
//!
//! Topology, all on loopback with interception NONE (Sidecar `bind`s):
//! test clients → client sidecar egress 127.0.77.1:{9080 http, 9090 grpc, 9000 tcp} →
//! endpoints of `soak.default.svc.cluster.local`: the server sidecar's ingress on
//! 127.0.77.2 (→ an HTTP/h2c/gRPC upstream and a TCP echo in this process), plus up to three
//! more upstreams reached directly, which come and go.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod soak_support;
mod support;
mod xds_support;

use lateen_test_support::proc_stats;
use lateen_test_support::process::ChildGuard;
use soak_support::load::{self, Tally};
use soak_support::mesh::Mesh;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::upstream::Upstream;
use xds_support::{SidecarProcess, unique_port};

/// Descriptors a process may gain between the second minute and the end: connections come
/// and go with the load (pooled upstream connections, streams being replaced), so a reading
/// is a little above or below its neighbours without anything leaking.
const FD_SLACK: usize = 16;
/// Resident memory a process may gain over the same span: the allocator keeps freed pages
/// for reuse, so a few MiB of wobble is not a leak; a leak per request or per push grows
/// past this within minutes at this load.
const RSS_SLACK: u64 = 8 * 1024 * 1024;
/// Nothing is judged before this: pools, caches and the allocator's arenas fill first.
const WARM_UP: Duration = Duration::from_secs(60);

fn soak_seconds() -> Option<u64> {
    std::env::var_os("LATEEN_SOAK").filter(|v| !v.is_empty())?;
    let seconds = std::env::var("LATEEN_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    Some(seconds.max(90))
}

fn lateend_binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_lateen-proxy")).with_file_name("lateend");
    assert!(
        path.is_file(),
        "{} must be built (cargo build --bins -p lateen-discovery)",
        path.display()
    );
    path
}

/// One reading of every watched process, `at` after the load started.
struct Sample {
    at: Duration,
    usage: Vec<proc_stats::Usage>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_traffic_with_churn_fails_nothing_and_leaks_nothing() {
    let Some(seconds) = soak_seconds() else {
        eprintln!("NOTICE: LATEEN_SOAK not set; skipping the soak test");
        return;
    };
    let duration = Duration::from_secs(seconds);
    let work = tempfile::tempdir().expect("work dir");
    let config_dir = work.path().join("config");
    std::fs::create_dir_all(&config_dir).expect("config dir");

    let primary = Upstream::start("server").await;
    let echo = load::tcp_echo().await;
    let mut extras = Vec::new();
    for index in 0..3 {
        extras.push(Upstream::start(&format!("extra-{index}")).await);
    }
    let mesh = Mesh {
        dir: config_dir.clone(),
        primary: primary.address.port(),
        echo: echo.port(),
        extras: extras.iter().map(|u| u.address.port()).collect(),
    };
    mesh.write_all();

    let xds: SocketAddr = ([127, 0, 0, 1], unique_port()).into();
    let lateend_log = work.path().join("lateend.log");
    let lateend = ChildGuard::new(
        Command::new(lateend_binary())
            .args(["--config-dir", &config_dir.to_string_lossy()])
            .args(["--xds-address", &xds.to_string()])
            .args(["--xds-tls-address", "127.0.0.1:0"])
            .args(["--debug-address", "127.0.0.1:0"])
            .args(["--http-address", "127.0.0.1:0"])
            .args(["--webhook-address", "127.0.0.1:0"])
            .args(["--poll-interval", "100ms"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&lateend_log).expect("lateend log"))
            .spawn()
            .expect("start lateend"),
    );
    let lateend_pid = lateend.id();
    let server = SidecarProcess::start_with_env(xds, &[], &Mesh::server_env());
    let client = SidecarProcess::start_with_env(xds, &[], &Mesh::client_env());
    let logs = || {
        format!(
            "--- client sidecar\n{}\n--- server sidecar\n{}\n--- lateend\n{}",
            client.log_text(),
            server.log_text(),
            std::fs::read_to_string(&lateend_log).unwrap_or_default()
        )
    };
    if !load::wait_serving(Duration::from_secs(30)).await {
        panic!(
            "the mesh did not serve all four protocols in 30s\n{}",
            logs()
        );
    }

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let stop_at = started + duration;
    let workers = load::spawn_all(tally.clone(), stop_at);

    // Churn and changes from this task; a reading of every process every 5 s.
    let pids = [client.pid(), server.pid(), lateend_pid];
    let mut samples = Vec::new();
    let mut second = 0u64;
    while Instant::now() < stop_at {
        tokio::time::sleep_until((started + Duration::from_secs(second + 1)).into()).await;
        second += 1;
        mesh.churn(second);
        if second.is_multiple_of(5) {
            mesh.change(second / 5);
            let usage = pids
                .iter()
                .filter_map(|pid| proc_stats::usage(*pid))
                .collect();
            samples.push(Sample {
                at: started.elapsed(),
                usage,
            });
        }
    }
    for worker in workers {
        let _ = worker.await;
    }

    let report = tally.report();
    let hits = |u: &Upstream| u.hits.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!(
        "soak: {seconds}s, {report}\nsoak: config generation {} reached, HTTP and gRPC requests through the server sidecar {}, to the extra endpoints {:?}",
        tally.generation(),
        hits(&primary),
        extras.iter().map(hits).collect::<Vec<_>>()
    );
    let names = ["client sidecar", "server sidecar", "lateend"];
    let judged: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= WARM_UP && s.usage.len() == names.len())
        .collect();
    assert!(judged.len() >= 4, "too few readings after the warm-up");
    let (first, last) = judged.split_at(judged.len() / 2);
    let mut growth = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let peak = |part: &[&Sample]| {
            part.iter().fold((0usize, 0u64), |(fds, rss), s| {
                (fds.max(s.usage[index].fds), rss.max(s.usage[index].rss))
            })
        };
        let (before, after) = (peak(first), peak(last));
        eprintln!(
            "soak: {name}: descriptors {} -> {} (peak per half), RSS {:.1} -> {:.1} MiB",
            before.0,
            after.0,
            before.1 as f64 / 1048576.0,
            after.1 as f64 / 1048576.0
        );
        if after.0 > before.0 + FD_SLACK || after.1 > before.1 + RSS_SLACK {
            growth.push(format!("{name}: {before:?} -> {after:?}"));
        }
    }
    assert_eq!(tally.failed(), 0, "failed requests: {report}\n{}", logs());
    assert!(
        tally.all_above(seconds * 10),
        "too little traffic: {report}"
    );
    assert!(
        growth.is_empty(),
        "growth after the first minute: {growth:?}"
    );
}
