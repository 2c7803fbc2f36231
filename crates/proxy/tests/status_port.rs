//! The agent's status port (Istio's 15020) on `lateen-proxy sidecar --status-address`:
//! `/stats/prometheus` merges the proxy's metrics with the application's, scraped from the
//! port and path in `ISTIO_PROMETHEUS_ANNOTATIONS` (as pilot-agent does), and still serves the
//! proxy's own when the application stops answering or the annotations are bad.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;
mod xds_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::{eventually, get};
use xds_support::*;

/// An application serving its own Prometheus metrics on `/metrics` until `stop` is set.
fn app_with_metrics() -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind app");
    let address = listener.local_addr().expect("app address");
    listener.set_nonblocking(true).expect("nonblocking");
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::spawn(move || {
        // Bounded: at most ten minutes of polling.
        for _ in 0..30_000 {
            if stopped.load(Ordering::Relaxed) {
                return;
            }
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut request = [0u8; 2048];
                    let n = stream.read(&mut request).unwrap_or(0);
                    let head = String::from_utf8_lossy(&request[..n]);
                    let body =
                        "# TYPE app_orders_total counter\napp_orders_total{shop=\"web\"} 7\n";
                    let response = if head.starts_with("GET /metrics ") {
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_string()
                    };
                    let _ = stream.write_all(response.as_bytes());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (address, stop)
}

#[tokio::test]
async fn status_port_merges_the_apps_metrics_with_the_proxys() {
    let (app, stop_app) = app_with_metrics();
    let status: SocketAddr = ([127, 0, 0, 1], unique_port()).into();
    // No control plane answers: the status port serves regardless.
    let discovery: SocketAddr = ([127, 0, 0, 1], unique_port()).into();
    let annotations = format!(
        r#"{{"scrape":"true","port":"{}","path":"/metrics"}}"#,
        app.port()
    );
    let sidecar = SidecarProcess::start_with_env(
        discovery,
        &["--status-address", &status.to_string()],
        &[("ISTIO_PROMETHEUS_ANNOTATIONS", &annotations)],
    );
    let served = eventually(Duration::from_secs(20), || async move {
        matches!(get(status, "/stats/prometheus").await, Ok((200, _)))
    })
    .await;
    assert!(served, "status port never answered: {}", sidecar.log_text());
    let (_, merged) = get(status, "/stats/prometheus").await.expect("status port");
    assert!(
        merged.contains("istio_build{component=\"proxy\""),
        "the proxy's metrics: {merged}"
    );
    assert!(
        merged.contains("app_orders_total{shop=\"web\"} 7"),
        "the app's metrics: {merged}"
    );
    assert!(!merged.contains("# EOF"), "{merged}");

    // The application goes away: the proxy's metrics are still served.
    stop_app.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, alone) = get(status, "/stats/prometheus").await.expect("status port");
    assert_eq!(code, 200, "{alone}");
    assert!(alone.contains("istio_build{component=\"proxy\""), "{alone}");
    assert!(!alone.contains("app_orders_total"), "{alone}");
}

#[tokio::test]
async fn bad_annotations_leave_the_proxys_metrics_alone() {
    let status: SocketAddr = ([127, 0, 0, 1], unique_port()).into();
    let discovery: SocketAddr = ([127, 0, 0, 1], unique_port()).into();
    let sidecar = SidecarProcess::start_with_env(
        discovery,
        &["--status-address", &status.to_string()],
        &[("ISTIO_PROMETHEUS_ANNOTATIONS", r#"{"port":"http"}"#)],
    );
    let served = eventually(Duration::from_secs(20), || async move {
        matches!(get(status, "/stats/prometheus").await, Ok((200, body)) if body.contains("istio_build"))
    })
    .await;
    assert!(served, "status port: {}", sidecar.log_text());
    assert!(
        sidecar
            .log_text()
            .contains("ISTIO_PROMETHEUS_ANNOTATIONS: port: \"http\" is not a port"),
        "the bad value is named: {}",
        sidecar.log_text()
    );
}
