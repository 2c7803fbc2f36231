//! The ADS server against a real Envoy 1.40 (SotW and delta): traffic flows through a served
//! listener/route/cluster/endpoints, every type is ACKed, endpoint pushes that leave unchanged
//! clusters out (SotW) keep those clusters' endpoints, a route change takes effect live, and
//! an invalid listener is NACKed with Envoy's reason while traffic keeps flowing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use lateen_test_support::envoy_bootstrap::Bootstrap;
use lateen_test_support::free_port;
use lateen_test_support::process::ChildGuard;
use lateen_xds::types::LISTENER;
use lateen_xds::{Snapshot, SyncState, XdsServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DEADLINE: Duration = Duration::from_secs(30);

/// A tiny HTTP/1.1 upstream answering every request with `body`.
async fn upstream(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let port = listener.local_addr().expect("upstream addr").port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    port
}

/// GET `path` on 127.0.0.1:`port`; returns (status line, body) or None on any failure.
async fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    let fetch = async {
        let mut conn = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n");
        conn.write_all(request.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.lines().next()?.to_string();
        Some((status, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .ok()
        .flatten()
}

/// Polls a GET until the body contains `want`.
async fn wait_body(port: u16, want: &str) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        last = http_get(port, "/").await;
        if last.as_ref().is_some_and(|(_, body)| body.contains(want)) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "no response with {want:?} through Envoy; last: {last:?}"
    ))
}

/// Polls Envoy's admin `/clusters` until a line starts with `host` (`cluster::ip:port::`);
/// returns the whole text.
async fn wait_host(envoy: &Envoy, admin: u16, host: &str) -> String {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if let Some((_, body)) = http_get(admin, "/clusters").await {
            if body.lines().any(|l| l.starts_with(host)) {
                return body;
            }
            last = body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "Envoy never had {host}; /clusters:\n{last}\nenvoy log:\n{}",
        envoy.log_tail()
    );
}

struct Envoy {
    _child: ChildGuard,
    log: PathBuf,
}

impl Envoy {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

fn bootstrap(api_type: &'static str, xds: SocketAddr, admin: u16) -> String {
    Bootstrap::new(NODE_ID)
        .cluster("test.default")
        .metadata("{NAMESPACE: default, LABELS: {app: test}}")
        .admin(admin)
        .ads_api(xds.port(), api_type)
        .to_yaml()
}

fn start_envoy(binary: &Path, api_type: &'static str, xds: SocketAddr, admin: u16) -> Envoy {
    let dir = std::env::temp_dir().join(format!("lateen-xds-envoy-{}-{admin}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let config = dir.join("bootstrap.yaml");
    std::fs::write(&config, bootstrap(api_type, xds, admin)).expect("write bootstrap");
    let log = dir.join("envoy.log");
    let log_file = std::fs::File::create(&log).expect("create envoy log");
    let child = Command::new(binary)
        .arg("-c")
        .arg(&config)
        .args([
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "--log-level",
            "info",
        ])
        .arg("--log-path")
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("spawn envoy");
    Envoy {
        _child: ChildGuard::new(child),
        log,
    }
}

fn snapshot(
    listen: u16,
    upstream_port: u16,
    route: &lateen_xds::pb::envoy::config::route::v3::RouteConfiguration,
) -> Snapshot {
    Snapshot::new()
        .with(&eds_cluster("upstream"))
        .with(&endpoints("upstream", upstream_port))
        .with(&http_listener(
            "listener_0",
            "127.0.0.1",
            listen,
            "local_route",
        ))
        .with(route)
}

async fn scenario(api_type: &'static str) {
    let Some(binary) = lateen_test_support::envoy_or_skip("the real-Envoy xDS test") else {
        return;
    };
    let server = XdsServer::default();
    let xds = server
        .spawn("127.0.0.1:0".parse().expect("literal address"))
        .await
        .expect("bind xDS");
    let upstream_port = upstream("upstream-a").await;
    let listen = free_port();
    let admin = free_port();
    let good = snapshot(listen, upstream_port, &route_to("local_route", "upstream"));
    server.set_snapshot(NODE_ID, good.clone());
    let envoy = start_envoy(&binary, api_type, xds, admin);

    // 1. Traffic through Envoy reaches the upstream.
    if let Err(e) = wait_body(listen, "upstream-a").await {
        panic!(
            "{e}\nstatus: {:?}\nenvoy log:\n{}",
            server.sync_status(),
            envoy.log_tail()
        );
    }

    // 2. Every type ACKed, nothing NACKed.
    let synced = wait_for(DEADLINE, || {
        let rows = server.sync_status();
        let row = rows.first()?;
        [row.cds, row.eds, row.lds, row.rds]
            .iter()
            .all(|s| *s == SyncState::Synced)
            .then_some(row.clone())
    })
    .await;
    let row = synced.unwrap_or_else(|| panic!("not synced: {:?}", server.sync_status()));
    assert_eq!(row.proxy, NODE_ID);
    assert_eq!(row.metadata["NAMESPACE"], "default");
    assert!(
        row.types.values().all(|t| t.last_nack.is_none()),
        "no NACK: {row:?}"
    );
    assert_eq!(server.metrics().nacks_total(), 0);

    // 3. Envoy's own view has the cluster.
    let (status, dump) = http_get(admin, "/config_dump")
        .await
        .expect("admin /config_dump");
    assert!(status.contains("200"), "{status}");
    assert!(dump.contains("dynamic_active_clusters") && dump.contains("\"upstream\""));

    // 4. Switch to a new cluster and drop the old one in one snapshot while traffic flows:
    //    make before break means no request fails during the switch.
    let upstream_b = upstream("upstream-b").await;
    let switched = Snapshot::new()
        .with(&eds_cluster("upstream-b"))
        .with(&endpoints("upstream-b", upstream_b))
        .with(&http_listener(
            "listener_0",
            "127.0.0.1",
            listen,
            "local_route",
        ))
        .with(&route_to("local_route", "upstream-b"));
    let traffic = tokio::spawn(async move {
        let mut failures = Vec::new();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while tokio::time::Instant::now() < deadline {
            match http_get(listen, "/").await {
                Some((_, body)) if body.contains("upstream-b") => return (failures, true),
                Some((_, body)) if body.contains("upstream-a") => {}
                other => failures.push(other),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (failures, false)
    });
    server.set_snapshot(NODE_ID, switched.clone());
    let (failures, switched_ok) = traffic.await.expect("traffic task");
    assert!(
        switched_ok,
        "never reached upstream-b: {:?}\n{}",
        server.sync_status(),
        envoy.log_tail()
    );
    assert!(
        failures.is_empty(),
        "requests failed during the switch: {failures:?}"
    );
    let dropped = wait_for(DEADLINE, || {
        let rows = server.sync_status();
        (rows.first()?.cds == SyncState::Synced).then_some(())
    })
    .await;
    assert!(
        dropped.is_some(),
        "CDS never settled: {:?}",
        server.sync_status()
    );

    // 5. Another cluster's endpoints change twice. Over SotW these pushes carry only that
    //    cluster's assignment; Envoy must keep upstream-b's endpoints, which they leave out.
    let with_spare = |port: u16| {
        switched
            .clone()
            .with(&eds_cluster("spare"))
            .with(&endpoints("spare", port))
    };
    let (spare_a, spare_b) = (free_port(), free_port());
    server.set_snapshot(NODE_ID, with_spare(spare_a));
    wait_host(&envoy, admin, &format!("spare::127.0.0.1:{spare_a}::")).await;
    server.set_snapshot(NODE_ID, with_spare(spare_b));
    let hosts = wait_host(&envoy, admin, &format!("spare::127.0.0.1:{spare_b}::")).await;
    assert!(
        hosts.contains(&format!("upstream-b::127.0.0.1:{upstream_b}::"))
            && !hosts.contains(&format!("spare::127.0.0.1:{spare_a}::")),
        "upstream-b keeps its endpoints, spare has only its new one:\n{hosts}"
    );
    if let Err(e) = wait_body(listen, "upstream-b").await {
        panic!("{e}\nenvoy log:\n{}", envoy.log_tail());
    }

    // 6. A changed route takes effect without restarting Envoy.
    let changed = snapshot(
        listen,
        upstream_b,
        &direct_response("local_route", "changed-route"),
    );
    server.set_snapshot(NODE_ID, changed.clone());
    if let Err(e) = wait_body(listen, "changed-route").await {
        panic!(
            "{e}\nstatus: {:?}\nenvoy log:\n{}",
            server.sync_status(),
            envoy.log_tail()
        );
    }

    // 7. An invalid listener is NACKed with Envoy's reason; traffic keeps flowing.
    let mut bad = changed;
    bad.add(&http_listener(
        "bad",
        "not-an-ip",
        free_port(),
        "local_route",
    ));
    server.set_snapshot(NODE_ID, bad);
    let nack = wait_for(DEADLINE, || {
        let rows = server.sync_status();
        let row = rows.first()?;
        (row.lds == SyncState::Nack).then(|| row.types.get(LISTENER)?.last_nack.clone())?
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no NACK recorded: {:?}\n{}",
            server.sync_status(),
            envoy.log_tail()
        )
    });
    eprintln!("Envoy NACK ({api_type}): {}", nack.error_detail);
    assert!(
        nack.error_detail.contains("not-an-ip"),
        "{}",
        nack.error_detail
    );
    assert!(server.metrics().nacks_total() >= 1);
    let still = http_get(listen, "/").await;
    assert!(
        still
            .as_ref()
            .is_some_and(|(_, b)| b.contains("changed-route")),
        "traffic after NACK: {still:?}"
    );
    drop(envoy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_sotw_ads() {
    scenario("GRPC").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_delta_ads() {
    scenario("DELTA_GRPC").await;
}
