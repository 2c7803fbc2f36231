//! The harness of the real-Envoy tests: finding Envoy (a failure, not a skip, under
//! LATEEN_REQUIRE_TOOLS), free ports, processes killed on drop, tiny HTTP upstreams and client,
//! bounded waits, atomic config writes, and Istio-like Envoy bootstraps.
#![allow(dead_code, unused_imports)]

pub mod backend;
pub mod client;
pub mod kube_source;
pub mod lateend;

use lateen_test_support::envoy_bootstrap::Bootstrap;
use lateen_test_support::wait;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(30);
pub use lateen_test_support::{free_port, write_config};

pub fn envoy_or_skip() -> Option<PathBuf> {
    lateen_test_support::envoy_or_skip("the lateend acceptance test")
}

/// A started process and its log; killed (and reaped) on drop, so a failing test leaves no
/// process behind.
pub struct Process {
    pub child: lateen_test_support::process::ChildGuard,
    pub log: PathBuf,
    /// Where Envoy writes its admin address.
    pub admin_path: Option<PathBuf>,
}

impl Process {
    /// Envoy's bound admin port, waiting (bounded) for Envoy to write it.
    pub async fn admin_port(&self) -> Option<u16> {
        let path = self.admin_path.as_ref()?;
        wait::poll_async(DEADLINE, || async {
            std::fs::read_to_string(path)
                .ok()
                .and_then(|a| a.trim().rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
        })
        .await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    pub fn log_tail(&self) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// An upstream named `name` on 127.0.0.1 (behaviour by path: see [`backend`]); its port.
pub async fn upstream(name: &'static str) -> u16 {
    backend::Backend::start(name).await.port
}

/// One GET through a fresh connection to 127.0.0.1:`port`: (status code, body), or None on
/// any failure.
pub async fn get(
    port: u16,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    let request = client::Request {
        target: ([127, 0, 0, 1], port).into(),
        source: None,
        host,
        path,
        headers,
    };
    client::fetch(&request).await.map(|r| (r.status, r.body))
}

pub async fn wait_until<F, Fut>(what: &str, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let done = wait::poll_async(DEADLINE, || {
        let checked = check();
        async move { checked.await.then_some(()) }
    })
    .await;
    done.ok_or_else(|| format!("timed out waiting for {what}"))
}

/// How a proxy introduces itself, as istio-agent fills the node: id and metadata.
pub struct Identity {
    pub id: &'static str,
    pub cluster: &'static str,
    pub metadata: String,
    /// Connect to xDS over TLS, trusting this CA (lateend's `--webhook-ca-out`).
    pub xds_tls_ca: Option<PathBuf>,
}

/// istio-agent's bootstrap for `identity`: ADS to lateend on `xds_port` (TLS to 15012 when
/// the identity says so, verified by lateend's CA and SAN), admin on `admin`.
pub fn bootstrap(identity: &Identity, xds_port: u16, admin: u16) -> Bootstrap {
    let mut bootstrap = Bootstrap::new(identity.id)
        .cluster(identity.cluster)
        .metadata(&identity.metadata)
        .admin(admin)
        .ads(xds_port);
    if let Some(ca) = &identity.xds_tls_ca {
        bootstrap = bootstrap.ads_tls(ca, "lateend.istio-system.svc");
    }
    bootstrap
}

/// Starts Envoy with its admin on 127.0.0.1 port 0; [`Process::admin_port`] reads the port
/// Envoy bound (from `--admin-address-path`).
pub fn start_envoy(binary: &Path, dir: &Path, identity: &Identity, xds: u16) -> Process {
    start_envoy_with(binary, dir, identity, xds, None)
}

/// [`start_envoy`] with istio-agent's `sds-grpc` cluster on the agent's Unix socket
/// `sds_socket`, when given.
pub fn start_envoy_with(
    binary: &Path,
    dir: &Path,
    identity: &Identity,
    xds: u16,
    sds_socket: Option<&Path>,
) -> Process {
    let tag = identity.id.split('~').nth(2).unwrap_or("proxy");
    let config = dir.join(format!("bootstrap-{tag}.yaml"));
    let mut bootstrap = bootstrap(identity, xds, 0);
    if let Some(socket) = sds_socket {
        bootstrap = bootstrap.grpc_pipe_cluster("sds-grpc", socket);
    }
    let text = bootstrap.to_yaml();
    std::fs::write(&config, text).expect("write bootstrap");
    let admin_path = dir.join(format!("admin-{tag}.address"));
    let _ = std::fs::remove_file(&admin_path);
    let log = dir.join(format!("envoy-{tag}.log"));
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
        .arg("--admin-address-path")
        .arg(&admin_path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("envoy log"))
        .spawn()
        .expect("spawn envoy");
    Process {
        child: lateen_test_support::process::ChildGuard::new(child),
        log,
        admin_path: Some(admin_path),
    }
}
