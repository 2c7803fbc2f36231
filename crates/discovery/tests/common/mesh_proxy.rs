//! lateen-proxy in the test process with its workload certificate from lateend's mesh CA:
//! the proxy's own CA client (`lateen_proxy::xds::ca_client`, which renews at about half
//! the lifetime) fills the `CertificateWatch` that every new handshake reads, exactly as a
//! sidecar wires it, on a static configuration. Its admin, health and Prometheus ports are
//! chosen below 32768 and returned.

#![allow(dead_code)] // each test binary uses part of it

use std::time::{Duration, Instant};

use lateen_identity::CertificateWatch;
use lateen_proxy::proxy::{ProxyOptions, Running};
use lateen_proxy::xds::ca_client::CaClientConfig;

use crate::common::get;

/// A started proxy; its workers live until the test process ends.
pub struct MeshProxy {
    pub running: Running,
    pub admin: u16,
    pub metrics: u16,
    /// The certificates the CA client published (the proxy reads the same watch).
    pub certificates: CertificateWatch,
    ca_client: tokio::task::JoinHandle<()>,
}

impl Drop for MeshProxy {
    fn drop(&mut self) {
        self.ca_client.abort();
    }
}

/// The `admin:` block of a proxy configuration with three free low ports: (YAML, admin,
/// metrics).
pub fn admin_block() -> (String, u16, u16) {
    let (admin, health, metrics) = (
        lateen_test_support::free_port(),
        lateen_test_support::free_port(),
        lateen_test_support::free_port(),
    );
    (
        format!(
            "admin:\n  address: 127.0.0.1:{admin}\n  health_address: 127.0.0.1:{health}\n  metrics_address: 127.0.0.1:{metrics}\n"
        ),
        admin,
        metrics,
    )
}

/// Starts the CA client, waits (bounded) for its first certificate, then starts the proxy on
/// `yaml` (a static configuration whose `admin:` block came from [`admin_block`]).
pub async fn start(yaml: &str, admin: u16, metrics: u16, ca: CaClientConfig) -> MeshProxy {
    let identity = ca.identity.to_string();
    let (certificates, ca_client) = lateen_proxy::xds::ca_client::spawn(ca);
    let deadline = Instant::now() + Duration::from_secs(20);
    while certificates.borrow().is_none() {
        assert!(
            Instant::now() < deadline,
            "no certificate for {identity} from lateend within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let config = lateen_proxy::config::bootstrap::parse(std::path::Path::new("test.yaml"), yaml)
        .expect("proxy configuration parses");
    let snapshot = lateen_proxy::config::compile::compile(config).expect("proxy configuration");
    let options = ProxyOptions {
        concurrency: 1,
        certificates: Some(certificates.clone()),
        ..Default::default()
    };
    let running = lateen_proxy::proxy::start(snapshot, options)
        .await
        .expect("proxy starts");
    running
        .admin
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);
    MeshProxy {
        running,
        admin,
        metrics,
        certificates,
        ca_client,
    }
}

impl MeshProxy {
    /// The proxy's Prometheus text.
    pub async fn prometheus(&self) -> String {
        get(self.metrics, "x", "/stats/prometheus", &[])
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    }
}
