//! The two data planes a matrix row runs against, each a sidecar of its own client workload
//! (`client-envoy`, `client-lateen`) with the Istio identity the injector would give it and
//! interception NONE, so its Sidecar resource binds its egress listener on its own loopback
//! address: Envoy with istio-agent's bootstrap, lateen-proxy as `lateen-proxy sidecar`.

#![allow(dead_code)] // each test binary uses part of it

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{Identity, Process, free_port, get, start_envoy, wait_until};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataPlane {
    Envoy,
    LateenProxy,
}

impl DataPlane {
    pub const ALL: [DataPlane; 2] = [DataPlane::Envoy, DataPlane::LateenProxy];

    pub fn name(self) -> &'static str {
        match self {
            DataPlane::Envoy => "Envoy",
            DataPlane::LateenProxy => "lateen-proxy",
        }
    }

    /// The client workload's `app` label (its Sidecar resource selects it).
    pub fn workload(self) -> &'static str {
        match self {
            DataPlane::Envoy => "client-envoy",
            DataPlane::LateenProxy => "client-lateen",
        }
    }

    /// The workload's own loopback address: its egress listener binds here.
    pub fn address(self) -> Ipv4Addr {
        match self {
            DataPlane::Envoy => Ipv4Addr::new(127, 0, 66, 1),
            DataPlane::LateenProxy => Ipv4Addr::new(127, 0, 66, 2),
        }
    }

    /// The node id Istio gives the sidecar (lateen-proxy builds the same from its env).
    pub fn node_id(self) -> String {
        format!(
            "sidecar~{}~{}-1.default~default.svc.cluster.local",
            self.address(),
            self.workload()
        )
    }

    /// The Sidecar resource giving this workload an egress listener on its address.
    pub fn sidecar_yaml(self, port: u16) -> String {
        let (app, bind) = (self.workload(), self.address());
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {app}, namespace: default}}\nspec:\n  workloadSelector: {{labels: {{app: {app}}}}}\n  egress:\n  - port: {{number: {port}, protocol: HTTP, name: http}}\n    bind: {bind}\n    hosts: [\"./*\"]\n"
        )
    }
}

/// A started data plane: the process (killed on drop) and where to reach it.
pub struct Running {
    pub plane: DataPlane,
    pub process: Process,
    /// The egress listener clients send to.
    pub egress: SocketAddr,
    /// Prometheus port (lateen-proxy; Envoy's stats are on its admin port).
    pub metrics: Option<u16>,
    /// Admin port of lateen-proxy (Envoy's: [`Process::admin_port`]).
    pub admin: Option<u16>,
}

/// Where lateen-proxy was built: beside lateend (`cargo build --bins` builds both).
pub fn lateen_proxy_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lateend")).with_file_name("lateen-proxy")
}

/// Starts `plane` against lateend's ADS port `xds`; the egress listener is `port` on the
/// plane's address once lateend's config arrives (the caller waits for that).
pub async fn start(plane: DataPlane, envoy: &Path, work: &Path, xds: u16, port: u16) -> Running {
    let egress = SocketAddr::new(IpAddr::V4(plane.address()), port);
    match plane {
        DataPlane::Envoy => {
            let process = start_envoy(envoy, work, &envoy_identity(plane), xds);
            // Envoy writes its admin address once it is up.
            if process.admin_port().await.is_none() {
                panic!("no Envoy admin address\n{}", process.log_tail());
            }
            Running {
                plane,
                process,
                egress,
                metrics: None,
                admin: None,
            }
        }
        DataPlane::LateenProxy => {
            let (admin, health, metrics) = (free_port(), free_port(), free_port());
            let process = start_lateen_proxy(plane, work, xds, [admin, health, metrics]);
            wait_until("lateen-proxy admin port", || async {
                get(admin, "x", "/ready", &[]).await.is_some()
            })
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", process.log_tail()));
            Running {
                plane,
                process,
                egress,
                metrics: Some(metrics),
                admin: Some(admin),
            }
        }
    }
}

/// istio-agent's node for the Envoy client. [`Identity`] holds `'static` ids; leaking the
/// one string per test run keeps that type as its other users need it.
fn envoy_identity(plane: DataPlane) -> Identity {
    let id: &'static str = Box::leak(plane.node_id().into_boxed_str());
    Identity {
        id,
        cluster: "client-envoy.default",
        metadata: format!(
            "    NAMESPACE: default\n    LABELS: {{app: {app}, version: v1}}\n    INTERCEPTION_MODE: NONE\n    SERVICE_ACCOUNT: client\n    INSTANCE_IPS: {ip}\n    WORKLOAD_NAME: {app}\n    CLUSTER_ID: Kubernetes\n    MESH_ID: cluster.local\n    ISTIO_VERSION: 1.28.0\n",
            app = plane.workload(),
            ip = plane.address()
        ),
        xds_tls_ca: None,
    }
}

/// `lateen-proxy sidecar` with the injector's environment; admin, health and metrics on
/// ports of their own so it shares the host with Envoy.
fn start_lateen_proxy(plane: DataPlane, work: &Path, xds: u16, ports: [u16; 3]) -> Process {
    let workload = SidecarWorkload {
        app: plane.workload(),
        address: plane.address(),
        service_account: "client",
    };
    spawn_logged(
        lateen_sidecar_command(&workload, xds, ports),
        work,
        plane.workload(),
    )
}

/// Who a `lateen-proxy sidecar` runs for: the pod's `app` label (also its workload name),
/// its instance address and service account.
pub struct SidecarWorkload<'a> {
    pub app: &'a str,
    pub address: Ipv4Addr,
    pub service_account: &'a str,
}

/// The `lateen-proxy sidecar` command with the injector's environment for `workload`,
/// interception NONE, xDS from lateend's port `xds` (TLS when the environment names a root),
/// admin, health and metrics on `ports`; the caller may add arguments and environment
/// before spawning it.
pub fn lateen_sidecar_command(
    workload: &SidecarWorkload<'_>,
    xds: u16,
    ports: [u16; 3],
) -> Command {
    let binary = lateen_proxy_binary();
    assert!(
        binary.is_file(),
        "{} must be built (cargo build --bins -p lateen-proxy)",
        binary.display()
    );
    let address = |port: u16| format!("127.0.0.1:{port}");
    let mut command = Command::new(&binary);
    command
        .arg("sidecar")
        .args(["--discovery-address", &address(xds)])
        .args(["--admin-address", &address(ports[0])])
        .args(["--health-address", &address(ports[1])])
        .args(["--metrics-address", &address(ports[2])])
        .args(["--concurrency", "1"])
        .args(["--labels-file", "/nonexistent"])
        .env("POD_NAME", format!("{}-1", workload.app))
        .env("POD_NAMESPACE", "default")
        .env("INSTANCE_IP", workload.address.to_string())
        .env("SERVICE_ACCOUNT", workload.service_account)
        .env("ISTIO_META_INTERCEPTION_MODE", "NONE")
        .env("ISTIO_META_WORKLOAD_NAME", workload.app)
        .env(
            "ISTIO_METAJSON_LABELS",
            format!(r#"{{"app":"{}","version":"v1"}}"#, workload.app),
        )
        .env("LATEEN_LOG", "info");
    command
}

/// Spawns `command` with its stderr in `work/NAME.log`; killed when the [`Process`] drops.
pub fn spawn_logged(mut command: Command, work: &Path, name: &str) -> Process {
    let log = work.join(format!("{name}.log"));
    let child = command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("process log"))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    Process {
        child: lateen_test_support::process::ChildGuard::new(child),
        log,
        admin_path: None,
    }
}
