//! Transparent capture for real: a "pod" network namespace with the capture rules written
//! by `lateen-proxy capture`, the proxy running as UID 1337, and a peer namespace across a
//! veth pair. Checks that outbound and inbound connections (IPv4 and IPv6) are redirected to
//! 15001/15006, that the proxy recovers the original destination with SO_ORIGINAL_DST, and
//! that the proxy's own connections are not captured again. Needs root, `ip` and iptables;
//! addresses are from 198.18.0.0/15 and 2001:2::/48 (benchmarking ranges) inside namespaces
//! this test creates and removes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROXY: &str = env!("CARGO_BIN_EXE_lateen-proxy");

struct Namespaces {
    pod: String,
    peer: String,
    children: Vec<Child>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in [&self.pod, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn run(args: &[&str]) -> String {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|err| panic!("{args:?}: {err}"));
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn in_ns(ns: &str, args: &[&str]) -> Vec<String> {
    ["ip", "netns", "exec", ns]
        .iter()
        .map(|s| s.to_string())
        .chain(args.iter().map(|s| s.to_string()))
        .collect()
}

fn run_in(ns: &str, args: &[&str]) -> String {
    let full = in_ns(ns, args);
    run(&full.iter().map(String::as_str).collect::<Vec<_>>())
}

fn spawn_in(ns: &str, args: &[&str], log: &std::path::Path) -> Child {
    let full = in_ns(ns, args);
    Command::new(&full[0])
        .args(&full[1..])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .unwrap_or_else(|err| panic!("spawn {full:?}: {err}"))
}

fn tools_ready() -> Result<(), String> {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !is_root {
        return Err("not root".into());
    }
    for tool in [
        "ip",
        "iptables-restore",
        "ip6tables-restore",
        "setpriv",
        "curl",
        "python3",
    ] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Err(format!("{tool} not found"));
        }
    }
    Ok(())
}

/// curl as an application user (UID 1000) inside `ns`; returns the HTTP status.
fn app_curl(ns: &str, url: &str) -> String {
    lateen_test_support::netns::http_status(ns, Some(1000), url)
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(ns: &str, parts: &[&str]) -> f64 {
    let text = run_in(
        ns,
        &["curl", "-s", "http://127.0.0.1:15090/stats/prometheus"],
    );
    lateen_test_support::metrics_text::sum(&text, "istio_requests_total", parts)
}

const CONFIG: &str = r#"node: { workload: pod-a-v1, namespace: default, app: pod-a, version: v1 }
admin: { address: 127.0.0.1:15000, health_address: 127.0.0.1:15021, metrics_address: 127.0.0.1:15090 }
listeners:
  - { name: virtualOutbound, address: "0.0.0.0:15001", capture: original_dst, direction: outbound }
  - { name: virtualOutbound6, address: "[::]:15001", capture: original_dst, direction: outbound }
  - { name: virtualInbound, address: "0.0.0.0:15006", capture: original_dst, direction: inbound }
  - { name: virtualInbound6, address: "[::]:15006", capture: original_dst, direction: inbound }
  - { name: 0.0.0.0_8080, address: "0.0.0.0:8080", bind: false, route_config: "8080" }
  - { name: "[::]_8080", address: "[::]:8080", bind: false, route_config: "8080" }
route_configs:
  - name: "8080"
    virtual_hosts:
      - name: peer
        domains: ["*"]
        routes:
          - match: { path: { prefix: / } }
            route: { cluster: "outbound|8080||peer.default.svc.cluster.local" }
clusters:
  - name: "outbound|8080||peer.default.svc.cluster.local"
    endpoints: [{ address: "198.18.1.2:8080" }]
    destination: { service: peer.default.svc.cluster.local, workload: peer-v1, namespace: default, version: v1 }
"#;

#[test]
fn captured_traffic_reaches_the_proxy_with_its_original_destination() {
    if let Err(missing) = tools_ready() {
        assert!(
            std::env::var_os("LATEEN_REQUIRE_TOOLS").is_none_or(|v| v.is_empty()),
            "capture test cannot run: {missing}"
        );
        eprintln!(
            "SKIPPED captured_traffic_reaches_the_proxy_with_its_original_destination: {missing}"
        );
        return;
    }
    let id = std::process::id();
    let mut namespaces = Namespaces {
        pod: format!("lateen-pod-{id}"),
        peer: format!("lateen-peer-{id}"),
        children: Vec::new(),
    };
    let (pod, peer) = (namespaces.pod.clone(), namespaces.peer.clone());
    let dir = tempfile::tempdir().expect("dir");
    run(&["ip", "netns", "add", &pod]);
    run(&["ip", "netns", "add", &peer]);
    let (veth_pod, veth_peer) = (format!("lp{}", id % 100000), format!("lq{}", id % 100000));
    run(&[
        "ip", "link", "add", &veth_pod, "netns", &pod, "type", "veth", "peer", "name", &veth_peer,
        "netns", &peer,
    ]);
    for (ns, dev, v4, v6) in [
        (&pod, &veth_pod, "198.18.1.1/24", "2001:2::1/64"),
        (&peer, &veth_peer, "198.18.1.2/24", "2001:2::2/64"),
    ] {
        run_in(ns, &["ip", "link", "set", "lo", "up"]);
        run_in(ns, &["ip", "addr", "add", v4, "dev", dev]);
        run_in(ns, &["ip", "-6", "addr", "add", v6, "dev", dev, "nodad"]);
        run_in(ns, &["ip", "link", "set", dev, "up"]);
    }

    // The peer's server and the pod's own app, both plain HTTP servers on IPv4 and IPv6 (run
    // as root: only UID 1337 is special to the capture rules).
    namespaces.children.push(spawn_in(
        &peer,
        &["python3", "-m", "http.server", "8080", "--bind", "::"],
        &dir.path().join("peer.log"),
    ));
    namespaces.children.push(spawn_in(
        &pod,
        &["python3", "-m", "http.server", "9080", "--bind", "::"],
        &dir.path().join("app.log"),
    ));

    let dry_run = run_in(
        &pod,
        &[
            PROXY,
            "capture",
            "--dry-run",
            "-p",
            "15001",
            "-z",
            "15006",
            "-u",
            "1337",
            "-g",
            "1337",
            "-m",
            "REDIRECT",
            "-i",
            "*",
            "-b",
            "*",
            "-d",
            "15090,15021,15020,15000",
            "--dual-stack",
        ],
    );
    assert!(
        dry_run.contains("-j REDIRECT --to-ports 15001")
            && dry_run.contains("-j REDIRECT --to-ports 15006"),
        "{dry_run}"
    );
    assert!(
        !run_in(&pod, &["iptables-save", "-t", "nat"]).contains("ISTIO_OUTPUT"),
        "dry run must not touch the tables"
    );
    run_in(
        &pod,
        &[
            PROXY,
            "capture",
            "-p",
            "15001",
            "-z",
            "15006",
            "-u",
            "1337",
            "-g",
            "1337",
            "-m",
            "REDIRECT",
            "-i",
            "*",
            "-b",
            "*",
            "-d",
            "15090,15021,15020,15000",
            "--dual-stack",
        ],
    );
    assert!(run_in(&pod, &["ip6tables-save", "-t", "nat"]).contains("ISTIO_REDIRECT"));

    let config = dir.path().join("proxy.yaml");
    std::fs::write(&config, CONFIG).expect("config");
    let _ = std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    let _ = std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o644));
    namespaces.children.push(spawn_in(
        &pod,
        &[
            "setpriv",
            "--reuid=1337",
            "--regid=1337",
            "--clear-groups",
            PROXY,
            "--config",
            config.to_str().unwrap_or_default(),
            "--concurrency",
            "1",
        ],
        &dir.path().join("proxy.log"),
    ));
    let proxy_log = || std::fs::read_to_string(dir.path().join("proxy.log")).unwrap_or_default();
    wait_for("proxy ready", || {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &pod,
                "curl",
                "-s",
                "http://127.0.0.1:15021/healthz/ready",
            ])
            .output()
            .map(|o| o.stdout.starts_with(b"LIVE"))
            .unwrap_or(false)
    });
    wait_for("peer server", || {
        run_in(
            &peer,
            &[
                "sh",
                "-c",
                "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/ || true",
            ],
        ) == "200"
    });
    wait_for("pod app", || {
        run_in(
            &pod,
            &[
                "sh",
                "-c",
                "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9080/ || true",
            ],
        ) == "200"
    });

    // Outbound, IPv4 and IPv6: the app's connection to the peer is captured on 15001 and
    // routed by its original destination's port to the 8080 route table.
    assert_eq!(
        app_curl(&pod, "http://198.18.1.2:8080/"),
        "200",
        "proxy log:\n{}",
        proxy_log()
    );
    assert_eq!(
        app_curl(&pod, "http://[2001:2::2]:8080/"),
        "200",
        "proxy log:\n{}",
        proxy_log()
    );
    let outbound = [
        "reporter=\"source\"",
        "source_workload=\"pod-a-v1\"",
        "destination_service=\"peer.default.svc.cluster.local\"",
        "response_code=\"200\"",
    ];
    assert_eq!(
        metric(&pod, &outbound),
        2.0,
        "both outbound requests went through the proxy"
    );

    // Inbound, IPv4 and IPv6: the peer's connection to the pod is captured on 15006 and passed
    // through to the app from 127.0.0.6, which the rules let through (no loop).
    assert_eq!(
        app_curl(&peer, "http://198.18.1.1:9080/"),
        "200",
        "proxy log:\n{}",
        proxy_log()
    );
    assert_eq!(
        app_curl(&peer, "http://[2001:2::1]:9080/"),
        "200",
        "proxy log:\n{}",
        proxy_log()
    );
    let inbound = [
        "reporter=\"destination\"",
        "destination_workload=\"pod-a-v1\"",
        "response_code=\"200\"",
    ];
    assert_eq!(
        metric(&pod, &inbound),
        2.0,
        "both inbound requests went through the proxy"
    );

    // The app calling its own pod address travels over loopback, which Istio's rules leave
    // alone for every UID but the proxy's: it reaches the app directly, and nothing loops.
    assert_eq!(
        app_curl(&pod, "http://198.18.1.1:9080/"),
        "200",
        "proxy log:\n{}",
        proxy_log()
    );
    assert_eq!(metric(&pod, &inbound), 2.0);
    assert_eq!(metric(&pod, &outbound), 2.0);

    // Excluded inbound port: 15021 is never captured (nothing listens on the pod address).
    assert_eq!(
        app_curl(&peer, "http://198.18.1.1:15021/healthz/ready"),
        "000"
    );

    run_in(
        &pod,
        &[
            PROXY,
            "capture-cleanup",
            "-p",
            "15001",
            "-z",
            "15006",
            "-u",
            "1337",
            "-g",
            "1337",
            "-m",
            "REDIRECT",
            "--dual-stack",
        ],
    );
    assert!(
        !run_in(&pod, &["iptables-save", "-t", "nat"]).contains("ISTIO_"),
        "clean-up removes the IPv4 rules"
    );
    assert!(
        !run_in(&pod, &["ip6tables-save", "-t", "nat"]).contains("ISTIO_"),
        "clean-up removes the IPv6 rules"
    );
}
