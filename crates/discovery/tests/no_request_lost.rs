//! No request lost across reloads (issue 4): a client sends 2000 requests/s for 20 s
//! through a lateen-proxy sidecar configured by lateend while the test makes 40
//! configuration changes (routes, clusters and endpoints), and kills and restarts lateend
//! halfway. Every request must succeed. The load comes from `lateen-loadgen` (open loop,
//! bench/loadgen) and the backends are `lateen-sample-app`s; everything on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use lateen_test_support::process::Children;
use lateen_test_support::{free_port, write_config as write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The client sidecar's outbound listener (a loopback address of its own, port 9080).
const EGRESS: &str = "127.0.55.1";

fn spawn(program: &Path, args: &[&str], env: &[(&str, String)], log: &Path) -> Child {
    Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .unwrap_or_else(|err| panic!("start {}: {err}", program.display()))
}

fn http_get(address: &str, path: &str, host: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect_timeout(&address.parse().ok()?, Duration::from_secs(1))
            .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

fn services(endpoints: &[(u16, &str)]) -> String {
    let mut text = String::from(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: backend, namespace: default}\nspec:\n  hosts: [backend.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  workloadSelector: {labels: {app: backend}}\n",
    );
    for (index, (port, version)) in endpoints.iter().enumerate() {
        text.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: backend-{index}, namespace: default}}\nspec:\n  address: 127.0.0.1\n  ports: {{http: {port}}}\n  labels: {{app: backend, version: {version}}}\n"
        ));
    }
    text
}

fn destination_rule(with_policy: bool) -> String {
    let policy = if with_policy {
        "  trafficPolicy:\n    connectionPool:\n      http: {http1MaxPendingRequests: 10000, maxRequestsPerConnection: 0}\n"
    } else {
        ""
    };
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: backend, namespace: default}}\nspec:\n  host: backend\n{policy}  subsets:\n  - name: v1\n    labels: {{version: v1}}\n  - name: v2\n    labels: {{version: v2}}\n"
    )
}

fn virtual_service(v1: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: backend, namespace: default}}\nspec:\n  hosts: [backend]\n  http:\n  - route:\n    - destination: {{host: backend, subset: v1}}\n      weight: {v1}\n    - destination: {{host: backend, subset: v2}}\n      weight: {}\n",
        100 - v1
    )
}

const SIDECAR: &str = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: client, namespace: default}\nspec:\n  workloadSelector: {labels: {app: client}}\n  egress:\n  - port: {number: 9080, name: http, protocol: HTTP}\n    bind: 127.0.55.1\n    hosts: [\"./*\"]\n";

#[test]
fn steady_load_loses_nothing_across_forty_changes_and_a_control_plane_restart() {
    let lateend = PathBuf::from(env!("CARGO_BIN_EXE_lateend"));
    let proxy = lateend.with_file_name("lateen-proxy");
    let app = lateend.with_file_name("lateen-sample-app");
    let loadgen = lateend.with_file_name("lateen-loadgen");
    for binary in [&proxy, &app, &loadgen] {
        assert!(
            binary.exists(),
            "{} must be built (scripts/test.sh builds every binary first)",
            binary.display()
        );
    }
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let mut children = Children::default();

    let backends: Vec<(u16, &str)> = vec![
        (free_port(), "v1"),
        (free_port(), "v2"),
        (free_port(), "v1"),
        (free_port(), "v2"),
    ];
    for (port, version) in &backends {
        let listen = format!("127.0.0.1:{port}");
        children.push(spawn(
            &app,
            &[
                "--name",
                "backend",
                "--version",
                version,
                "--listen",
                &listen,
            ],
            &[],
            &dir.path().join(format!("app-{port}.log")),
        ));
    }
    write(&config, "services.yaml", &services(&backends[..2]));
    write(&config, "destination-rule.yaml", &destination_rule(false));
    write(&config, "virtual-service.yaml", &virtual_service(50));
    write(&config, "sidecar.yaml", SIDECAR);

    let xds = format!("127.0.0.1:{}", free_port());
    let start_lateend = |log: &str| {
        spawn(
            &lateend,
            &[
                "--config-dir",
                &config.to_string_lossy(),
                "--xds-address",
                &xds,
                "--xds-tls-address",
                "127.0.0.1:0",
                "--debug-address",
                "127.0.0.1:0",
                "--http-address",
                "127.0.0.1:0",
                "--webhook-address",
                "127.0.0.1:0",
                "--poll-interval",
                "100ms",
                "--debounce-after",
                "50ms",
                "--debounce-max",
                "200ms",
            ],
            &[],
            &dir.path().join(log),
        )
    };
    let mut control_plane = start_lateend("lateend-1.log");

    let health = format!("127.0.0.1:{}", free_port());
    let env = vec![
        ("POD_NAME", "client-0".to_string()),
        ("POD_NAMESPACE", "default".to_string()),
        ("INSTANCE_IP", "127.0.55.1".to_string()),
        ("ISTIO_META_INTERCEPTION_MODE", "NONE".to_string()),
        ("ISTIO_META_WORKLOAD_NAME", "client".to_string()),
        (
            "ISTIO_METAJSON_LABELS",
            r#"{"app":"client","version":"v1"}"#.to_string(),
        ),
        ("LATEEN_LOG", "warn".to_string()),
    ];
    let admin = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    children.push(spawn(
        &proxy,
        &[
            "sidecar",
            "--discovery-address",
            &xds,
            "--admin-address",
            &admin,
            "--health-address",
            &health,
            "--metrics-address",
            &metrics,
            "--concurrency",
            "1",
            "--labels-file",
            "/nonexistent",
        ],
        &env,
        &dir.path().join("proxy.log"),
    ));
    let logs = || {
        std::fs::read_dir(dir.path())
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                    .map(|e| {
                        format!(
                            "--- {}\n{}\n",
                            e.path().display(),
                            std::fs::read_to_string(e.path()).unwrap_or_default()
                        )
                    })
                    .collect::<String>()
            })
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(
        &format!("{EGRESS}:9080"),
        "/",
        "backend.default.svc.cluster.local",
    ) != Some(200)
    {
        assert!(
            Instant::now() < deadline,
            "mesh not serving in 30s\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let load = Command::new(&loadgen)
        .args([
            "--rate",
            "2000",
            "--connections",
            "8",
            "--duration",
            "20",
            "--host",
            "backend.default.svc.cluster.local",
        ])
        .arg(format!("http://{EGRESS}:9080/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start load");

    // 40 changes over the 20 s the load runs (after its 1 s warm-up): routes (weights),
    // clusters (a traffic policy on the DestinationRule) and endpoints (a third and fourth
    // backend come and go); lateend is killed at change 20 and back at change 22.
    std::thread::sleep(Duration::from_millis(1200));
    for change in 0..40u32 {
        match change % 3 {
            0 => write(
                &config,
                "virtual-service.yaml",
                &virtual_service([0, 30, 70, 100][(change / 3 % 4) as usize]),
            ),
            1 => write(
                &config,
                "destination-rule.yaml",
                &destination_rule(change % 2 == 1),
            ),
            _ => write(
                &config,
                "services.yaml",
                &services(if change % 2 == 0 {
                    &backends[..]
                } else {
                    &backends[..2]
                }),
            ),
        }
        if change == 20 {
            let _ = control_plane.kill();
            let _ = control_plane.wait();
        }
        if change == 22 {
            control_plane = start_lateend("lateend-2.log");
        }
        std::thread::sleep(Duration::from_millis(480));
    }
    let result = load.wait_with_output().expect("load finished");
    let _ = control_plane.kill();
    let _ = control_plane.wait();
    let report = String::from_utf8_lossy(&result.stdout).to_string();
    let summary: serde_json::Value = serde_json::from_str(report.trim()).unwrap_or_else(|_| {
        panic!(
            "load report: {report} {}",
            String::from_utf8_lossy(&result.stderr)
        )
    });
    let requests = summary["requests"].as_u64().unwrap_or(0);
    let errors = summary["errors"].as_u64().unwrap_or(u64::MAX);
    assert_eq!(
        errors,
        0,
        "every request must succeed: {summary}\n{}",
        logs()
    );
    assert!(
        requests >= 38_000,
        "about 40 000 requests measured: {summary}"
    );
    // The proxy reconnected to the restarted lateend and still takes its config.
    let deadline = Instant::now() + Duration::from_secs(10);
    write(&config, "virtual-service.yaml", &virtual_service(100));
    let mut restarted = false;
    while Instant::now() < deadline && !restarted {
        control_plane = start_lateend("lateend-3.log");
        std::thread::sleep(Duration::from_millis(1500));
        restarted = http_get(
            &format!("{EGRESS}:9080"),
            "/",
            "backend.default.svc.cluster.local",
        ) == Some(200);
        let _ = control_plane.kill();
        let _ = control_plane.wait();
    }
    assert!(
        restarted,
        "still serving after the control plane came and went\n{}",
        logs()
    );
}
