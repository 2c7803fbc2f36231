//! The day-2 commands end to end: `lateen proxy-status` and `lateen proxy-config` against a
//! real lateend (built beside `lateen`: `cargo build --bins -p lateen-discovery -p
//! lateen-proxy`) with one real `lateen-proxy sidecar` connected, all on 127.0.0.1; and
//! `lateen analyze` on files written to a temp folder. Every wait is bounded and every process
//! started is killed when its guard drops.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use lateen_test_support::envoy_bootstrap::Bootstrap;
use lateen_test_support::free_port;
use lateen_test_support::process::ChildGuard;
use lateen_test_support::wait;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn lateen() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lateen"))
}

/// A binary of the workspace beside `lateen`, with how to build it when missing.
fn sibling(name: &str) -> PathBuf {
    let path = lateen().with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins -p lateen-discovery -p lateen-proxy` first",
        path.display()
    );
    path
}

fn run(args: &[&str]) -> Output {
    Command::new(lateen())
        .args(args)
        .env_remove("LATEEND_DEBUG_ADDRESS")
        .output()
        .expect("run lateen")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Which proxy joins the mesh.
enum Sidecar {
    /// `lateen-proxy sidecar` as pod `sleep-1.default`.
    Lateen,
    /// Envoy (this binary) with an istio-agent-like bootstrap, as pod `envoy-1.default`.
    Envoy(PathBuf),
}

/// lateend on a folder with a ServiceEntry, a VirtualService and a Sidecar giving the proxy an
/// explicit outbound listener (interception NONE), and one sidecar on it.
struct Mesh {
    // Fields drop in order: the processes end before their folder is removed.
    _proxy: ChildGuard,
    _lateend: ChildGuard,
    debug: String,
    admin: String,
    dir: tempfile::TempDir,
}

impl Mesh {
    fn start(sidecar: Sidecar) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("config");
        std::fs::create_dir(&config).expect("config dir");
        let service_port = free_port();
        std::fs::write(
            config.join("httpbin.yaml"),
            format!(
                r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: httpbin, namespace: default}}
spec:
  hosts: [httpbin.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports:
  - {{number: {service_port}, name: http, protocol: HTTP}}
  endpoints:
  - address: 127.0.0.1
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: httpbin, namespace: default}}
spec:
  hosts: [httpbin.example.com]
  http:
  - match:
    - uri: {{prefix: /api}}
    route:
    - destination: {{host: httpbin.example.com, port: {{number: {service_port}}}}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: default}}
spec:
  egress:
  - port: {{number: {service_port}, protocol: HTTP, name: http}}
    bind: 127.0.0.1
    hosts: ["./*"]
"#
            ),
        )
        .expect("write config");
        let debug = format!("127.0.0.1:{}", free_port());
        let xds = format!("127.0.0.1:{}", free_port());
        let log = |name: &str| {
            std::fs::File::create(dir.path().join(name))
                .map(Stdio::from)
                .expect("log file")
        };
        let lateend = Command::new(sibling("lateend"))
            .arg("--config-dir")
            .arg(&config)
            .args(["--xds-address", &xds, "--debug-address", &debug])
            .args(["--xds-tls-address", &format!("127.0.0.1:{}", free_port())])
            .args(["--webhook-address", &format!("127.0.0.1:{}", free_port())])
            .args(["--http-address", "127.0.0.1:0"])
            .stdout(log("lateend.log"))
            .stderr(log("lateend.err"))
            .spawn()
            .expect("start lateend");
        let lateend = ChildGuard::new(lateend);
        wait_for(&dir, "lateend's /ready", Duration::from_secs(30), || {
            std::net::TcpStream::connect(&debug).is_ok()
        });
        let admin_port = free_port();
        let admin = format!("127.0.0.1:{admin_port}");
        let proxy = match sidecar {
            Sidecar::Lateen => Command::new(sibling("lateen-proxy"))
                .args(["sidecar", "--discovery-address", &xds, "--concurrency", "1"])
                .args(["--admin-address", &admin])
                .args(["--health-address", &format!("127.0.0.1:{}", free_port())])
                .args(["--metrics-address", &format!("127.0.0.1:{}", free_port())])
                .args(["--labels-file", "/nonexistent/labels"])
                .env("POD_NAME", "sleep-1")
                .env("POD_NAMESPACE", "default")
                .env("INSTANCE_IP", "127.0.0.1")
                .env("ISTIO_META_INTERCEPTION_MODE", "NONE")
                .stdout(log("proxy.log"))
                .stderr(log("proxy.err"))
                .spawn()
                .expect("start lateen-proxy"),
            Sidecar::Envoy(envoy) => {
                let bootstrap = dir.path().join("envoy.yaml");
                let xds_port = xds
                    .rsplit(':')
                    .next()
                    .and_then(|port| port.parse().ok())
                    .expect("xds port");
                std::fs::write(&bootstrap, envoy_bootstrap(admin_port, xds_port))
                    .expect("write bootstrap");
                Command::new(envoy)
                    .arg("-c")
                    .arg(&bootstrap)
                    .args([
                        "--concurrency",
                        "1",
                        "--disable-hot-restart",
                        "--log-level",
                        "warning",
                    ])
                    .stdout(log("proxy.log"))
                    .stderr(log("proxy.err"))
                    .spawn()
                    .expect("start envoy")
            }
        };
        Self {
            debug,
            admin,
            dir,
            _proxy: ChildGuard::new(proxy),
            _lateend: lateend,
        }
    }
}

/// What istio-agent would give Envoy: node id and metadata, ADS to lateend, admin on loopback.
fn envoy_bootstrap(admin_port: u16, xds_port: u16) -> String {
    Bootstrap::new("sidecar~127.0.0.1~envoy-1.default~default.svc.cluster.local")
        .cluster("envoy-1.default")
        .metadata(r#"{NAMESPACE: default, NAME: envoy-1, INTERCEPTION_MODE: NONE, CLUSTER_ID: Kubernetes, ISTIO_VERSION: "1.28.0", INSTANCE_IPS: 127.0.0.1, LABELS: {app: envoy}}"#)
        .admin(admin_port)
        .ads(xds_port)
        .to_yaml()
}

/// Waits (bounded by `limit`) until `ready` holds; then fails with the logs.
fn wait_for(dir: &tempfile::TempDir, what: &str, limit: Duration, ready: impl FnMut() -> bool) {
    wait::until_or(what, limit, ready, || logs(dir.path()));
}

fn logs(dir: &Path) -> String {
    ["lateend.err", "proxy.err"]
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            format!(
                "--- {f} (last lines)\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `proxy-config all --admin` of the mesh's proxy (DESTINATION RULE etc. from its lateend).
fn admin_tables(mesh: &Mesh) -> String {
    let out = run(&[
        "proxy-config",
        "all",
        "--admin",
        &mesh.admin,
        "--lateend",
        &mesh.debug,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// The table row of `pod` once CDS, LDS, EDS and RDS are all SYNCED.
fn synced_row(mesh: &Mesh, pod: &str) -> String {
    let mut last = String::new();
    let mut row = None;
    wait_for(
        &mesh.dir,
        "a SYNCED proxy-status row",
        Duration::from_secs(30),
        || {
            let out = run(&["proxy-status", "--lateend", &mesh.debug]);
            last = stdout(&out);
            row = last
                .lines()
                .find(|l| l.starts_with(&format!("{pod} ")) && l.matches("SYNCED").count() == 4)
                .map(str::to_string);
            row.is_some()
        },
    );
    row.unwrap_or(last)
}

#[test]
fn proxy_status_and_proxy_config_read_a_live_lateend() {
    let mesh = Mesh::start(Sidecar::Lateen);

    let row = synced_row(&mesh, "sleep-1.default");
    let cells: Vec<&str> = row.split_whitespace().collect();
    // NAME CLUSTER CDS LDS EDS RDS ECDS(2 words) ISTIOD VERSION
    assert_eq!(cells[0], "sleep-1.default", "{row}");
    assert_eq!(&cells[2..6], ["SYNCED"; 4], "{row}");
    assert_eq!(&cells[6..8], ["NOT", "SENT"], "{row}");
    assert_eq!(cells[8], mesh.debug, "{row}");
    let table = stdout(&run(&["proxy-status", "--lateend", &mesh.debug]));
    let header = table.lines().next().unwrap_or_default();
    for column in [
        "NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION",
    ] {
        assert!(header.contains(column), "{header}");
    }

    // One proxy's details, by pod.namespace and through the env fallback for the address.
    let details = Command::new(lateen())
        .args(["proxy-status", "sleep-1.default"])
        .env("LATEEND_DEBUG_ADDRESS", &mesh.debug)
        .output()
        .expect("run lateen");
    let text = stdout(&details);
    assert!(details.status.success(), "{}", stderr(&details));
    assert!(
        text.contains("sidecar~127.0.0.1~sleep-1.default~default.svc.cluster.local"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("CDS ") && l.contains("SYNCED")),
        "{text}"
    );

    let clusters = run(&[
        "proxy-config",
        "cluster",
        "sleep-1.default",
        "--lateend",
        &mesh.debug,
    ]);
    let text = stdout(&clusters);
    assert!(clusters.status.success(), "{}", stderr(&clusters));
    assert!(text.starts_with("SERVICE FQDN"), "{text}");
    let outbound = text
        .lines()
        .find(|l| l.starts_with("httpbin.example.com "))
        .unwrap_or_else(|| panic!("no outbound cluster in\n{text}"));
    assert!(
        outbound.contains("outbound") && outbound.contains("EDS"),
        "{outbound}"
    );

    let routes = stdout(&run(&[
        "proxy-config",
        "route",
        "sleep-1.default",
        "--lateend",
        &mesh.debug,
    ]));
    let route = routes
        .lines()
        .find(|l| l.contains("httpbin.example.com"))
        .unwrap_or_else(|| panic!("no httpbin route in\n{routes}"));
    assert!(
        route.contains("/api*") && route.ends_with("httpbin.default"),
        "{route}"
    );

    let listeners = stdout(&run(&[
        "proxy-config",
        "listener",
        "sleep-1.default",
        "--lateend",
        &mesh.debug,
    ]));
    assert!(
        listeners
            .lines()
            .any(|l| l.starts_with("127.0.0.1 ") && l.contains("Route: ")),
        "{listeners}"
    );

    let endpoints = stdout(&run(&[
        "proxy-config",
        "endpoint",
        "sleep-1.default",
        "--lateend",
        &mesh.debug,
    ]));
    assert!(
        endpoints.lines().any(|l| l.starts_with("127.0.0.1:")
            && l.contains("HEALTHY")
            && l.contains("|httpbin.example.com")),
        "{endpoints}"
    );

    // JSON by full node id: the Debug text of lateend's dump comes back as a tree.
    let id = "sidecar~127.0.0.1~sleep-1.default~default.svc.cluster.local";
    let json = run(&[
        "proxy-config",
        "cluster",
        id,
        "--lateend",
        &mesh.debug,
        "-o",
        "json",
    ]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON output");
    let clusters = value["resources"]["CDS"].as_array().expect("CDS list");
    let httpbin = clusters
        .iter()
        .find(|c| {
            c["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("outbound|") && n.ends_with("|httpbin.example.com"))
        })
        .expect("outbound cluster in JSON");
    assert_eq!(httpbin["config"]["cluster_discovery_type"]["Type"], "Eds");

    // The proxy's own view through its admin server: the same outbound cluster and route.
    let text = admin_tables(&mesh);
    assert!(
        text.lines()
            .any(|l| l.starts_with("httpbin.example.com ") && l.contains("outbound")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("/api*") && l.ends_with("httpbin.default")),
        "{text}"
    );
    let admin_json = run(&[
        "proxy-config",
        "listener",
        "--admin",
        &mesh.admin,
        "-o",
        "json",
    ]);
    let value: serde_json::Value = serde_json::from_slice(&admin_json.stdout).expect("admin JSON");
    assert!(
        value["listeners"].is_array() && value.get("clusters").is_none(),
        "{value}"
    );

    let unknown = run(&[
        "proxy-config",
        "cluster",
        "nobody.default",
        "--lateend",
        &mesh.debug,
    ]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("sleep-1.default"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn proxy_config_reads_envoys_admin_dump() {
    let Some(envoy) = lateen_test_support::envoy_or_skip("the Envoy admin test") else {
        return;
    };
    let mesh = Mesh::start(Sidecar::Envoy(envoy));
    let row = synced_row(&mesh, "envoy-1.default");
    assert!(row.ends_with("1.28.0"), "VERSION from ISTIO_VERSION: {row}");

    let text = admin_tables(&mesh);
    let has = |pred: &dyn Fn(&str) -> bool| text.lines().any(pred);
    assert!(
        has(&|l| l.starts_with("httpbin.example.com ")
            && l.contains("outbound")
            && l.contains("EDS")),
        "{text}"
    );
    assert!(
        has(&|l| l.starts_with("127.0.0.1 ") && l.contains("Route: ")),
        "{text}"
    );
    assert!(
        has(&|l| l.contains("/api*") && l.ends_with("httpbin.default")),
        "{text}"
    );
    assert!(
        has(&|l| l.starts_with("127.0.0.1:")
            && l.contains("HEALTHY")
            && l.ends_with("|httpbin.example.com")),
        "{text}"
    );

    let json = run(&[
        "proxy-config",
        "route",
        "--admin",
        &mesh.admin,
        "-o",
        "json",
    ]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("Envoy JSON");
    let configs = value["configs"].as_array().expect("configs");
    assert_eq!(configs.len(), 1, "{value}");
    assert!(
        configs[0]["@type"]
            .as_str()
            .is_some_and(|t| t.ends_with("RoutesConfigDump")),
        "{value}"
    );
}

#[test]
fn proxy_status_names_the_address_it_cannot_reach() {
    let addr = format!("127.0.0.1:{}", free_port());
    let out = run(&["proxy-status", "--lateend", &addr]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&addr) && err.contains("cannot connect"),
        "{err}"
    );
}

const GOOD: &str = r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.display().to_string()
}

#[test]
fn analyze_passes_clean_files_and_folders() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(dir.path(), "reviews.yaml", GOOD);
    let out = run(&["analyze", &file]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        format!("\u{2714} No validation issues found when analyzing {file}.\n")
    );

    // A later file replacing the same resource is how a folder is applied: Info, not an error
    // (lateen's own code LTN0004); a file of another type is skipped with a note on stderr.
    write(
        dir.path(),
        "reviews-v1-again.yaml",
        &GOOD[GOOD.find("---").unwrap_or(0)..],
    );
    write(dir.path(), "notes.txt", "not: [config");
    let folder = dir.path().display().to_string();
    let out = run(&["analyze", &folder]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("Info [LTN0004] (VirtualService default/reviews "),
        "{text}"
    );
    assert!(!text.contains("notes.txt"), "{text}");
    assert!(stderr(&out).contains("Skipping file "), "{}", stderr(&out));
}

#[test]
fn analyze_reports_errors_with_resource_and_line_and_exits_79() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write(
        dir.path(),
        "broken.yaml",
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v9}
      weight: -5
"#,
    );
    let out = run(&["analyze", &file]);
    assert_eq!(out.status.code(), Some(79), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "Error [IST0106] (VirtualService default/reviews {file}:11) Schema validation error: spec.http[0].route[0].weight: "
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Error [IST0101] (VirtualService default/reviews {file}:10) Referenced host+subset in destinationrule not found: \"reviews+v9\""
        )),
        "{text}"
    );
    assert!(
        stderr(&out).contains("Analyzers found issues"),
        "{}",
        stderr(&out)
    );

    let bad = write(dir.path(), "bad.yaml", "a: [\n");
    let out = run(&["analyze", &bad]);
    assert_eq!(out.status.code(), Some(65), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("{bad}:1: invalid YAML")),
        "{}",
        stderr(&out)
    );

    let out = run(&[
        "analyze",
        &dir.path().join("missing.yaml").display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.yaml"), "{}", stderr(&out));
}
