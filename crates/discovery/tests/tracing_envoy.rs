//! Tracing across both data planes configured by one lateend: real Envoy 1.40 and
//! `lateen-proxy sidecar`, each the sidecar of its own workload with an outbound listener
//! (its app's calls) and an inbound listener (calls to its workload's service). lateend gives
//! both the connection manager's OpenTelemetry tracing from MeshConfig's `opentelemetry`
//! provider and a mesh-level Telemetry; the spans go to a real OTLP/gRPC receiver
//! (`lateen_test_support::otlp_receiver`) through the collector's outbound cluster, which
//! each proxy got over EDS.
//!
//! Two chains, one per direction: client → Envoy (outbound, CLIENT span) → lateen-proxy
//! (inbound, SERVER span) → app, and client → lateen-proxy (outbound) → Envoy (inbound) →
//! app. Each request gives one trace whose inbound span is the child of the outbound one;
//! a caller's sampled context is continued; at the configured 50 % the first proxy decides
//! and the second follows (Envoy's decision travels in the `x-request-id`, and lateen-proxy
//! reads and writes it the same way), so every exported trace is whole.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;
#[path = "common/dataplane.rs"]
mod dataplane;

use std::collections::BTreeMap;
use std::time::Duration;

use common::backend::Backend;
use common::client::{Request, fetch};
use common::lateend::{all_synced, start_lateend};
use common::{envoy_or_skip, free_port, wait_until, write_config};
use dataplane::DataPlane;
use lateen_test_support::otlp_receiver::{
    COLLECTOR_HOST, OtlpReceiver, ReceivedSpan, SpanKind, mesh_tracing_yaml,
};

const SAMPLING: f64 = 50.0;

/// The service whose only endpoint is `plane`'s inbound listener.
fn service_of(plane: DataPlane) -> &'static str {
    match plane {
        DataPlane::Envoy => "via-envoy",
        DataPlane::LateenProxy => "via-lateen",
    }
}

/// The other plane: the one a request leaving `plane` reaches.
fn other(plane: DataPlane) -> DataPlane {
    match plane {
        DataPlane::Envoy => DataPlane::LateenProxy,
        DataPlane::LateenProxy => DataPlane::Envoy,
    }
}

fn mesh_yaml() -> String {
    format!(
        "extensionProviders:\n- name: otel\n  opentelemetry: {{service: {COLLECTOR_HOST}, port: 4317}}\n"
    )
}

/// `plane`'s workload: its service (service port `port`, target port `inbound`, on the
/// plane's address) and its Sidecar: inbound `inbound` → the app, outbound `port`.
fn workload_yaml(plane: DataPlane, port: u16, inbound: u16, app: u16) -> String {
    let (workload, service, address) = (plane.workload(), service_of(plane), plane.address());
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {service}, namespace: default}}
spec:
  hosts: [{service}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {port}, name: http, protocol: HTTP, targetPort: {inbound}}}]
  endpoints: [{{address: {address}, labels: {{app: {workload}}}}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {workload}, namespace: default}}
spec:
  workloadSelector: {{labels: {{app: {workload}}}}}
  ingress:
  - port: {{number: {inbound}, protocol: HTTP, name: http}}
    bind: {address}
    defaultEndpoint: 127.0.0.1:{app}
  egress:
  - port: {{number: {port}, protocol: HTTP, name: http}}
    bind: {address}
    hosts: ["./*", "observability/*"]
"#
    )
}

/// One line per span: what a failure message needs to show the tree.
fn summary<'a>(spans: impl IntoIterator<Item = &'a ReceivedSpan>) -> String {
    spans
        .into_iter()
        .map(|s| {
            format!(
                "{} {:?} {} trace {} span {} parent {} {:?}\n",
                s.resource_attribute("service.name").unwrap_or("?"),
                SpanKind::try_from(s.span.kind).unwrap_or(SpanKind::Unspecified),
                s.span.name,
                s.trace_id_hex(),
                s.span_id_hex(),
                s.parent_span_id_hex(),
                s.attribute("http.status_code"),
            )
        })
        .collect()
}

fn by_trace(spans: &[ReceivedSpan]) -> BTreeMap<String, Vec<&ReceivedSpan>> {
    let mut traces = BTreeMap::<String, Vec<&ReceivedSpan>>::new();
    for span in spans {
        traces.entry(span.trace_id_hex()).or_default().push(span);
    }
    traces
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_across_envoy_and_lateen_proxy_gives_one_trace() {
    let Some(envoy) = envoy_or_skip() else {
        return;
    };
    let work = std::env::temp_dir().join(format!("lateen-tracing-envoy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let config = work.join("config");
    std::fs::create_dir_all(&config).expect("create the config folder");
    let receiver = OtlpReceiver::start()
        .await
        .expect("start the OTLP receiver");
    let app = Backend::start("app").await;
    let port = free_port();
    write_config(&config, "mesh.yaml", &mesh_yaml());
    write_config(
        &config,
        "collector.yaml",
        &mesh_tracing_yaml(
            receiver.address,
            "observability",
            SAMPLING,
            "      team: {literal: {value: tracing-test}}\n",
        ),
    );
    for plane in DataPlane::ALL {
        write_config(
            &config,
            &format!("{}.yaml", plane.workload()),
            &workload_yaml(plane, port, free_port(), app.port),
        );
    }
    let lateend = start_lateend(&config, &work, &[]).await;
    let mut planes = Vec::new();
    for plane in DataPlane::ALL {
        planes.push(dataplane::start(plane, &envoy, &work, lateend.xds, port).await);
    }
    let logs = |planes: &[dataplane::Running]| {
        planes
            .iter()
            .map(|p| format!("--- {}\n{}", p.plane.name(), p.process.log_tail()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let ids: Vec<String> = DataPlane::ALL.iter().map(|p| p.node_id()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    wait_until("both proxies synced without a NACK", || {
        all_synced(lateend.debug, &ids)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", logs(&planes), lateend.process.log_tail()));

    // One sampled request per direction, with the caller's own trace context.
    let caller_span = "00f067aa0ba902b7";
    for (i, running) in planes.iter().enumerate() {
        let (from, to) = (running.plane, other(running.plane));
        let trace = format!("4bf92f3577b34da6a3ce929d0e0e473{i}");
        let traceparent = format!("00-{trace}-{caller_span}-01");
        // The caller's id carries Envoy's "sampled" mark, as an app behind a sampling
        // sidecar passes it on: without it Envoy's own draw would decide.
        let request_id = format!("0f3c39a2-5b1e-9c7d-8a1b-2c3d4e5f6a7{i}");
        let headers = [
            ("traceparent", traceparent.as_str()),
            ("x-request-id", request_id.as_str()),
        ];
        let host = format!("{}:{port}", service_of(to));
        let request = Request {
            target: running.egress,
            source: None,
            host: &host,
            path: "/traced",
            headers: &headers,
        };
        wait_until("a 200 through both proxies", || async {
            fetch(&request).await.is_some_and(|r| r.status == 200)
        })
        .await
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", from.name(), logs(&planes)));
        wait_until("the trace's two spans", || async {
            by_trace(&receiver.spans())
                .get(&trace)
                .is_some_and(|spans| spans.len() >= 2)
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{} → {}: {e}\n{}\n{}",
                from.name(),
                to.name(),
                summary(&receiver.spans()),
                logs(&planes)
            )
        });
        let spans = receiver.spans();
        let traces = by_trace(&spans);
        let ours = &traces[&trace];
        // Requests sent before the routes arrived may have left spans of their own; the
        // 200's pair is the last CLIENT span and its SERVER child.
        let client = ours
            .iter()
            .rev()
            .find(|s| s.span.kind == SpanKind::Client as i32)
            .unwrap_or_else(|| {
                panic!(
                    "no CLIENT span from {}: {}",
                    from.name(),
                    summary(ours.iter().copied())
                )
            });
        let server = ours
            .iter()
            .find(|s| {
                s.span.kind == SpanKind::Server as i32
                    && s.parent_span_id_hex() == client.span_id_hex()
            })
            .unwrap_or_else(|| {
                panic!(
                    "no SERVER span from {} whose parent is {}'s span:\n{}",
                    to.name(),
                    from.name(),
                    summary(ours.iter().copied())
                )
            });
        assert_eq!(
            client.parent_span_id_hex(),
            caller_span,
            "{}",
            summary([*client])
        );
        for (span, plane) in [(client, from), (server, to)] {
            assert_eq!(
                span.resource_attribute("service.name"),
                Some(&*format!("{}.default", plane.workload())),
                "{}",
                summary([*span])
            );
            assert_eq!(span.attribute("istio.namespace"), Some("default"));
            assert_eq!(
                span.attribute("istio.canonical_service"),
                Some(plane.workload())
            );
            assert_eq!(span.attribute("team"), Some("tracing-test"));
            assert_eq!(span.attribute("http.method"), Some("GET"));
            assert_eq!(span.attribute("http.status_code"), Some("200"));
            assert_eq!(span.attribute("node_id"), Some(&*plane.node_id()));
            assert_eq!(span.span.flags & 1, 1, "{}", summary([*span]));
        }
        assert_eq!(
            client.span.name,
            format!("{}.default.svc.cluster.local:{port}/*", service_of(to)),
            "istiod's decorator names the outbound span"
        );
    }

    // The configured 50 %: the first proxy decides, the second follows.
    const REQUESTS: usize = 200;
    let before: std::collections::BTreeSet<String> =
        by_trace(&receiver.spans()).into_keys().collect();
    for running in &planes {
        let host = format!("{}:{port}", service_of(other(running.plane)));
        let request = Request {
            target: running.egress,
            source: None,
            host: &host,
            path: "/sampled",
            headers: &[],
        };
        for _ in 0..REQUESTS / 2 {
            let reply = fetch(&request).await;
            assert_eq!(reply.map(|r| r.status), Some(200));
        }
    }
    // lateen-proxy flushes every 500 ms, Envoy every 5 s unless 5 spans are waiting.
    let spans = receiver
        .settled(Duration::from_secs(6), Duration::from_secs(30))
        .await;
    let traces: BTreeMap<_, _> = by_trace(&spans)
        .into_iter()
        .filter(|(trace, _)| !before.contains(trace))
        .collect();
    let partial: Vec<_> = traces.iter().filter(|(_, s)| s.len() != 2).collect();
    assert!(
        partial.is_empty(),
        "traces not whole:\n{}",
        summary(partial.iter().flat_map(|(_, spans)| spans.iter().copied()))
    );
    // Binomial(200, 0.5): mean 100, sd ~7; 55..=145 is six standard deviations.
    assert!(
        (55..=145).contains(&traces.len()),
        "{} of {REQUESTS} traces sampled at {SAMPLING} %",
        traces.len()
    );
    drop(planes);
    let _ = std::fs::remove_dir_all(&work);
}
