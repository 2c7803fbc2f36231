//! Telemetry `metrics` overrides end to end: lateend, a client sidecar (`lateen-proxy
//! sidecar` for `client-lateen`) and a server sidecar (`lateen-proxy sidecar` for
//! `details`, its Sidecar ingress in front of the backend), interception NONE, plaintext.
//! A namespace-level Telemetry removes `request_protocol`, adds `user` from the `x-user`
//! header, and disables REQUEST_SIZE for the CLIENT side only; both sidecars' 15090-style
//! Prometheus ports show exactly that (client: no `istio_request_bytes`, server: has it).
//! A Telemetry whose value lateen-proxy cannot compute is refused naming the field, and the
//! last good overrides stay in force. Real Envoy (`client-envoy`, same namespace) gets the
//! same `istio.stats` filter, ACKs the listener and serves through it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;
#[path = "common/dataplane.rs"]
mod dataplane;

use std::net::{Ipv4Addr, SocketAddr};

use common::backend::Backend;
use common::client::{Request, fetch};
use common::lateend::{all_synced, start_lateend};
use common::{envoy_or_skip, free_port, get, wait_until, write_config};
use dataplane::{DataPlane, SidecarWorkload, lateen_sidecar_command, spawn_logged};
use lateen_test_support::metrics_text;

/// The server workload's own loopback address: its ingress listener binds here, and the
/// `details` service's endpoint is this address.
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 72, 1);

const TELEMETRY: &str = r#"apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: metrics, namespace: default}
spec:
  metrics:
  - providers: [{name: prometheus}]
    overrides:
    - tagOverrides:
        request_protocol: {operation: REMOVE}
        user: {value: "request.headers['x-user']"}
    - match: {metric: REQUEST_SIZE, mode: CLIENT}
      disabled: true
"#;

/// The `details` service at the server sidecar's ingress, and the server's Sidecar.
fn server_yaml(port: u16, app_port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: details, namespace: default}}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  endpoints: [{{address: {SERVER_IP}, labels: {{app: details, version: v1}}, serviceAccount: details}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: details, namespace: default}}
spec:
  workloadSelector: {{labels: {{app: details}}}}
  ingress:
  - port: {{number: {port}, protocol: HTTP, name: http}}
    bind: {SERVER_IP}
    defaultEndpoint: 127.0.0.1:{app_port}
"#
    )
}

/// One GET through the sidecar listening at `target`, as `user`.
async fn send(target: SocketAddr, user: &str) -> Option<u16> {
    let headers = [("x-user", user)];
    let request = Request {
        target,
        source: None,
        host: "details",
        path: "/details/0",
        headers: &headers,
    };
    fetch(&request).await.map(|r| r.status)
}

async fn scrape(port: u16) -> String {
    get(port, "x", "/stats/prometheus", &[])
        .await
        .map(|(_, body)| body)
        .unwrap_or_default()
}

fn requests(text: &str, reporter: &str, user: &str) -> f64 {
    metrics_text::sum(
        text,
        "istio_requests_total",
        &[
            &format!("reporter=\"{reporter}\""),
            &format!("user=\"{user}\""),
        ],
    )
}

/// The lines of `text` for metric family `name` (samples of every type).
fn family_lines<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.lines().filter(move |l| l.starts_with(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_removes_adds_and_disables_labels_on_both_sides() {
    let work =
        std::env::temp_dir().join(format!("lateen-metrics-overrides-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let config = work.join("config");
    std::fs::create_dir_all(&config).expect("create the config folder");
    let backend = Backend::start("details-v1").await;
    let port = free_port();
    write_config(&config, "server.yaml", &server_yaml(port, backend.port));
    let envoy = envoy_or_skip();
    let clients: Vec<DataPlane> = if envoy.is_some() {
        DataPlane::ALL.to_vec()
    } else {
        vec![DataPlane::LateenProxy]
    };
    for plane in &clients {
        write_config(
            &config,
            &format!("sidecar-{}.yaml", plane.workload()),
            &plane.sidecar_yaml(port),
        );
    }
    write_config(&config, "telemetry.yaml", TELEMETRY);
    let lateend = start_lateend(&config, &work, &[]).await;

    let server_ports = [free_port(), free_port(), free_port()];
    let server = spawn_logged(
        lateen_sidecar_command(
            &SidecarWorkload {
                app: "details",
                address: SERVER_IP,
                service_account: "details",
            },
            lateend.xds,
            server_ports,
        ),
        &work,
        "details",
    );
    let envoy_path = envoy.clone().unwrap_or_default();
    let mut running = Vec::new();
    for plane in &clients {
        running.push(dataplane::start(*plane, &envoy_path, &work, lateend.xds, port).await);
    }
    // The clients' listeners (the server has no RDS routes, so syncz never calls it synced;
    // its listener is proved by the traffic below).
    let ids: Vec<String> = clients.iter().map(|p| p.node_id()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let diagnostics = |running: &[dataplane::Running]| {
        let mut out = format!(
            "--- lateend ---\n{}\n--- details ---\n{}",
            lateend.process.log_tail(),
            server.log_tail()
        );
        for r in running {
            out.push_str(&format!(
                "\n--- {} ---\n{}",
                r.plane.name(),
                r.process.log_tail()
            ));
        }
        out
    };
    // Every client ACKs its listeners, the `istio.stats` filter included (Envoy skips it as
    // optional).
    let synced = wait_until("every sidecar synced without a NACK", || {
        all_synced(lateend.debug, &ids)
    })
    .await;
    if let Err(e) = synced {
        let syncz = get(lateend.debug, "x", "/debug/syncz", &[]).await;
        panic!("{e}\n{syncz:?}\n{}", diagnostics(&running));
    }

    let lateen = running
        .iter()
        .find(|r| r.plane == DataPlane::LateenProxy)
        .expect("the lateen-proxy client");
    let client_metrics = lateen.metrics.expect("lateen-proxy's metrics port");
    let server_metrics = server_ports[2];
    wait_until("a request through both lateen-proxy sidecars", || async {
        send(lateen.egress, "jason").await == Some(200)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", diagnostics(&running)));
    let counted = wait_until(
        "both reporters count the request with user=jason",
        || async {
            requests(&scrape(client_metrics).await, "source", "jason") >= 1.0
                && requests(&scrape(server_metrics).await, "destination", "jason") >= 1.0
        },
    )
    .await;
    let client = scrape(client_metrics).await;
    let server = scrape(server_metrics).await;
    if let Err(e) = counted {
        panic!("{e}\nclient:\n{client}\nserver:\n{server}");
    }
    for (side, text) in [("client", &client), ("server", &server)] {
        for line in family_lines(text, "istio_") {
            if line.starts_with("istio_build") {
                continue;
            }
            assert!(
                !line.contains("request_protocol="),
                "{side}: request_protocol is removed from every metric: {line}"
            );
        }
        let line = family_lines(text, "istio_requests_total{")
            .next()
            .unwrap_or_else(|| panic!("{side}: no istio_requests_total\n{text}"));
        assert!(
            line.contains("user=\"jason\"") && line.contains("response_code=\"200\""),
            "{side}: {line}"
        );
        assert!(
            family_lines(text, "istio_response_bytes_count{").any(|l| l.contains("user=\"jason\"")),
            "{side}: the header tag is on every metric\n{text}"
        );
    }
    assert_eq!(
        family_lines(&client, "istio_request_bytes").count(),
        0,
        "REQUEST_SIZE is disabled on the client side\n{client}"
    );
    assert!(
        metrics_text::sum(
            &server,
            "istio_request_bytes_count",
            &["reporter=\"destination\"", "user=\"jason\""]
        ) >= 1.0,
        "REQUEST_SIZE stays on the server side\n{server}"
    );

    if let Some(envoy) = running.iter().find(|r| r.plane == DataPlane::Envoy) {
        envoy_serves_with_the_filter(envoy, &lateend.process).await;
    }

    // A value lateen-proxy cannot compute: the Telemetry is refused by field, the last good
    // version stays in force.
    write_config(
        &config,
        "telemetry.yaml",
        &TELEMETRY.replace("request.headers['x-user']", "request.time"),
    );
    wait_until("the refusal in lateend's log", || async {
        let log = lateend.process.log();
        log.contains("spec.metrics[0].overrides[0].tagOverrides.user.value")
            && log.contains("lateen-proxy cannot compute")
            && log.contains("request.time")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", lateend.process.log_tail()));
    assert_eq!(send(lateen.egress, "after-refusal").await, Some(200));
    let after = wait_until("the old overrides after the refusal", || async {
        requests(&scrape(client_metrics).await, "source", "after-refusal") >= 1.0
    })
    .await;
    let client = scrape(client_metrics).await;
    if let Err(e) = after {
        panic!("{e}\n{client}");
    }
    assert_eq!(family_lines(&client, "istio_request_bytes").count(), 0);

    drop(running);
    drop(server);
    let _ = std::fs::remove_dir_all(&work);
}

/// Envoy accepted the listener with the `istio.stats` filter (its config_dump holds the
/// filter's config) and serves through it.
async fn envoy_serves_with_the_filter(envoy: &dataplane::Running, lateend: &common::Process) {
    let admin = envoy
        .process
        .admin_port()
        .await
        .expect("Envoy's admin port");
    wait_until("a request through Envoy", || async {
        send(envoy.egress, "jason").await == Some(200)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", envoy.process.log_tail(), lateend.log_tail()));
    let dump = get(admin, "x", "/config_dump?resource=dynamic_listeners", &[])
        .await
        .map(|(_, body)| body)
        .unwrap_or_default();
    // Envoy keeps the skipped filter's config as it came; its config_dump cannot print a type
    // Envoy does not know, and says which.
    assert!(
        dump.contains("type.googleapis.com/stats.PluginConfig"),
        "Envoy's listeners carry the optional istio.stats filter\n{dump}"
    );
}
