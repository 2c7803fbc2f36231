//! Transparent capture for real: a "pod" network namespace with the capture rules written
//! by `lateen-proxy capture`, the proxy running as UID 1337, and a peer namespace across a
//! veth pair. Checks that outbound and inbound connections (IPv4 and IPv6) are redirected to
//! 15001/15006, that the proxy recovers the original destination with SO_ORIGINAL_DST, and
//! that the proxy's own connections are not captured again. Needs root, `ip` and iptables;
//! addresses are from 198.18.0.0/15 and 2001:2::/48 (benchmarking ranges) inside namespaces
//! this test creates and removes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::time::Duration;

use lateen_test_support::netns::{
    self, EXCLUDED_INBOUND_PORTS, End, Lab, SIDECAR_CAPTURE_FLAGS, must,
};
use lateen_test_support::wait;

const PROXY: &str = env!("CARGO_BIN_EXE_lateen-proxy");

const TOOLS: [&str; 6] = [
    "ip",
    "iptables-restore",
    "ip6tables-restore",
    "setpriv",
    "curl",
    "python3",
];

fn run_in(ns: &str, args: &[&str]) -> String {
    must(Some(ns), args)
}

/// curl as an application user (UID 1000) inside `ns`; returns the HTTP status.
fn app_curl(ns: &str, url: &str) -> String {
    lateen_test_support::netns::http_status(ns, Some(1000), url)
}

fn wait_for(what: &str, check: impl FnMut() -> bool) {
    wait::until(what, Duration::from_secs(10), check);
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
    if !netns::can_run(
        "captured_traffic_reaches_the_proxy_with_its_original_destination",
        netns::missing(&TOOLS),
    ) {
        return;
    }
    let mut lab = Lab::new("cap");
    let (pod, peer) = (lab.namespace("pod"), lab.namespace("peer"));
    lab.veth(
        End {
            netns: &pod,
            addresses: &["198.18.1.1/24", "2001:2::1/64"],
        },
        End {
            netns: &peer,
            addresses: &["198.18.1.2/24", "2001:2::2/64"],
        },
    );

    // The peer's server and the pod's own app, both plain HTTP servers on IPv4 and IPv6 (run
    // as root: only UID 1337 is special to the capture rules).
    let http_server = |port| ["python3", "-m", "http.server", port, "--bind", "::"];
    lab.spawn(&peer, "peer", &http_server("8080"), &[]);
    lab.spawn(&pod, "app", &http_server("9080"), &[]);

    // Istio's sidecar flags, as the injected init container passes them.
    let capture = |extra: &[&str]| {
        let mut args = vec![PROXY, "capture"];
        args.extend(extra);
        args.extend(SIDECAR_CAPTURE_FLAGS);
        args.extend(["-d", EXCLUDED_INBOUND_PORTS, "--dual-stack"]);
        run_in(&pod, &args)
    };
    let dry_run = capture(&["--dry-run"]);
    assert!(
        dry_run.contains("-j REDIRECT --to-ports 15001")
            && dry_run.contains("-j REDIRECT --to-ports 15006"),
        "{dry_run}"
    );
    assert!(
        !run_in(&pod, &["iptables-save", "-t", "nat"]).contains("ISTIO_OUTPUT"),
        "dry run must not touch the tables"
    );
    capture(&[]);
    assert!(run_in(&pod, &["ip6tables-save", "-t", "nat"]).contains("ISTIO_REDIRECT"));

    let config = lab.dir().join("proxy.yaml");
    std::fs::write(&config, CONFIG).expect("config");
    let _ = std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o644));
    lab.spawn_as_proxy(
        &pod,
        "proxy",
        &[
            PROXY,
            "--config",
            config.to_str().unwrap_or_default(),
            "--concurrency",
            "1",
        ],
        &[],
    );
    let proxy_log = || lab.log("proxy");
    wait_for("proxy ready", || {
        netns::run(
            Some(&pod),
            &["curl", "-s", "http://127.0.0.1:15021/healthz/ready"],
        )
        .1
        .starts_with("LIVE")
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

    let mut cleanup = vec![PROXY, "capture-cleanup"];
    cleanup.extend(&SIDECAR_CAPTURE_FLAGS[..10]);
    cleanup.push("--dual-stack");
    run_in(&pod, &cleanup);
    assert!(
        !run_in(&pod, &["iptables-save", "-t", "nat"]).contains("ISTIO_"),
        "clean-up removes the IPv4 rules"
    );
    assert!(
        !run_in(&pod, &["ip6tables-save", "-t", "nat"]).contains("ISTIO_"),
        "clean-up removes the IPv6 rules"
    );
}
