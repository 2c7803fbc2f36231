//! The mixed mesh of issue 13's acceptance as lateend's folder source sees it: two
//! workloads, each with its sidecar — `envoy-app` (Envoy with `lateen-proxy agent` serving
//! its certificate over SDS) and `lateen-app` (`lateen-proxy sidecar`) — each serving HTTP
//! on one port behind its sidecar's inbound listener and calling the other through its
//! sidecar's outbound listener. Interception is NONE, so Sidecar resources bind the
//! listeners on each workload's own loopback addresses:
//!
//! | address | what |
//! |---|---|
//! | 127.0.77.N | the workload's instance address (its ServiceEntry endpoint); a tap (relay) listens here |
//! | 127.0.78.N | the sidecar's outbound listener (clients send here) |
//! | 127.0.79.N | the sidecar's inbound listener (the tap forwards here) |
//!
//! Every endpoint is labelled `security.istio.io/tlsMode: istio` (auto mTLS), the namespace is
//! STRICT, and an `impostor-*` service names each workload's address with another service
//! account, so a client sidecar must refuse the real server's identity there.

#![allow(dead_code)] // each test binary uses part of it

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

/// One workload of the mixed mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Envoy,
    Lateen,
}

impl Workload {
    pub const ALL: [Workload; 2] = [Workload::Envoy, Workload::Lateen];

    /// The `app` label, service account and service name.
    pub fn app(self) -> &'static str {
        match self {
            Workload::Envoy => "envoy-app",
            Workload::Lateen => "lateen-app",
        }
    }

    fn octet(self) -> u8 {
        match self {
            Workload::Envoy => 1,
            Workload::Lateen => 2,
        }
    }

    pub fn instance_ip(self) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 77, self.octet())
    }
    pub fn outbound_ip(self) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 78, self.octet())
    }
    pub fn inbound_ip(self) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 79, self.octet())
    }

    /// The service's host name.
    pub fn host(self) -> String {
        format!("{}.default.svc.cluster.local", self.app())
    }

    /// The workload's SPIFFE identity.
    pub fn spiffe(self) -> String {
        format!("spiffe://cluster.local/ns/default/sa/{}", self.app())
    }

    /// The sidecar's node id, as istio-agent and lateen-proxy build it.
    pub fn node_id(self) -> String {
        format!(
            "sidecar~{}~{}-1.default~default.svc.cluster.local",
            self.instance_ip(),
            self.app()
        )
    }

    /// The other workload.
    pub fn peer(self) -> Workload {
        match self {
            Workload::Envoy => Workload::Lateen,
            Workload::Lateen => Workload::Envoy,
        }
    }

    /// Istio's SNI for this workload's service on `port`.
    pub fn sni(self, port: u16) -> String {
        lateen_proxy::tls::outbound_sni(port, "", &self.host())
    }
}

/// The service, the impostor and the Sidecar resource of `w`, serving on `port` with its
/// application at 127.0.0.1:`app_port`.
fn workload_yaml(w: Workload, port: u16, app_port: u16) -> String {
    let (app, ip) = (w.app(), w.instance_ip());
    let (outbound, inbound) = (w.outbound_ip(), w.inbound_ip());
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {app}, namespace: default}}
spec:
  hosts: [{app}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: {ip}, labels: {{app: {app}, security.istio.io/tlsMode: istio}}, serviceAccount: {app}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: impostor-{app}, namespace: default}}
spec:
  hosts: [impostor-{app}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: {ip}, labels: {{security.istio.io/tlsMode: istio}}, serviceAccount: impostor}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {app}, namespace: default}}
spec:
  workloadSelector: {{labels: {{app: {app}}}}}
  ingress:
  - port: {{number: {port}, protocol: HTTP, name: http}}
    bind: {inbound}
    defaultEndpoint: 127.0.0.1:{app_port}
  egress:
  - port: {{number: {port}, protocol: HTTP, name: http}}
    bind: {outbound}
    hosts: ["./*"]
"#
    )
}

/// Namespace-wide STRICT.
pub const STRICT: &str = r#"apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
"#;

/// Envoy's server-side access log: what Envoy can say of each mTLS request it served (the
/// peer's and its own URI SAN, the TLS version). Only `envoy-app` selects the provider.
const PEER_LOG_FORMAT: &str =
    "%DOWNSTREAM_PEER_URI_SAN% %DOWNSTREAM_LOCAL_URI_SAN% %DOWNSTREAM_TLS_VERSION% %REQ(:PATH)%\\n";

/// Writes the whole mesh into lateend's `config` folder; `apps` are the application ports of
/// [`Workload::ALL`], and Envoy's peer log goes to `peer_log`.
pub fn write(config: &Path, port: u16, apps: [u16; 2], peer_log: &Path) {
    std::fs::create_dir_all(config).expect("config folder");
    for (w, app_port) in Workload::ALL.into_iter().zip(apps) {
        crate::common::write_config(
            config,
            &format!("{}.yaml", w.app()),
            &workload_yaml(w, port, app_port),
        );
    }
    crate::common::write_config(config, "strict.yaml", STRICT);
    crate::common::write_config(
        config,
        "mesh.yaml",
        &format!(
            "extensionProviders:\n- name: peer-log\n  envoyFileAccessLog: {{path: {}, logFormat: {{text: \"{PEER_LOG_FORMAT}\"}}}}\n",
            peer_log.display()
        ),
    );
    crate::common::write_config(
        config,
        "telemetry.yaml",
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: envoy-peers, namespace: default}\nspec:\n  selector: {matchLabels: {app: envoy-app}}\n  accessLogging:\n  - providers: [{name: peer-log}]\n    match: {mode: SERVER}\n",
    );
}

/// istio-agent's node for the Envoy sidecar, saying it holds a certificate (`LATEEN_MTLS`).
pub fn envoy_identity() -> crate::common::Identity {
    let w = Workload::Envoy;
    crate::common::Identity {
        id: Box::leak(w.node_id().into_boxed_str()),
        cluster: "envoy-app.default",
        metadata: format!(
            "    NAMESPACE: default\n    LABELS: {{app: {app}, version: v1}}\n    INTERCEPTION_MODE: NONE\n    SERVICE_ACCOUNT: {app}\n    INSTANCE_IPS: {ip}\n    WORKLOAD_NAME: {app}\n    CLUSTER_ID: Kubernetes\n    MESH_ID: cluster.local\n    ISTIO_VERSION: 1.28.0\n    LATEEN_MTLS: \"true\"\n",
            app = w.app(),
            ip = w.instance_ip()
        ),
        xds_tls_ca: None,
    }
}

/// `address:port` of `ip`.
pub fn at(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

/// lateend as the mesh CA on the mixed mesh ([`write`] into `dir/config`), with bootstrap
/// tokens for both workloads and the identities in `extra` (`--bootstrap-identity NS/SA`).
pub async fn start_lateend(
    dir: &Path,
    port: u16,
    apps: [u16; 2],
    peer_log: &Path,
    extra: &[&str],
) -> crate::common::lateend::Local {
    write(&dir.join("config"), port, apps, peer_log);
    let mut args = Vec::new();
    for w in Workload::ALL {
        args.push("--bootstrap-identity".to_string());
        args.push(format!("default/{}", w.app()));
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::common::lateend::local(dir, &args).await
}

/// Both server sidecars of the mixed mesh, running (killed on drop).
pub struct Sidecars {
    /// `lateen-proxy agent` serving Envoy's certificate over SDS.
    pub agent: crate::common::Process,
    pub envoy: crate::common::Process,
    pub lateen: crate::common::Process,
    /// lateen-proxy's admin, health and metrics ports.
    pub lateen_ports: [u16; 3],
}

/// Starts Envoy (its certificate from `lateen-proxy agent` over SDS on a socket in `dir`)
/// and `lateen-proxy sidecar` as injected (ADS and its certificate on lateend's TLS port),
/// both for `local`'s lateend; the caller waits for them to sync.
pub fn start_sidecars(envoy: &Path, dir: &Path, local: &crate::common::lateend::Local) -> Sidecars {
    use crate::dataplane::{
        SidecarWorkload, lateen_proxy_binary, lateen_sidecar_command, spawn_logged,
    };
    let socket = dir.join("envoy-app/socket");
    let mut agent = std::process::Command::new(lateen_proxy_binary());
    agent
        .arg("agent")
        .args([
            "--ca-address",
            &format!("127.0.0.1:{}", local.lateend.xds_tls),
        ])
        .arg("--sds-socket")
        .arg(&socket)
        .envs(local.agent_env(Workload::Envoy.app()));
    let agent = spawn_logged(agent, dir, "envoy-app-agent");
    let envoy = crate::common::start_envoy_with(
        envoy,
        dir,
        &envoy_identity(),
        local.lateend.xds,
        Some(&socket),
    );
    let lateen_ports = [
        crate::common::free_port(),
        crate::common::free_port(),
        crate::common::free_port(),
    ];
    let workload = SidecarWorkload {
        app: Workload::Lateen.app(),
        address: Workload::Lateen.instance_ip(),
        service_account: Workload::Lateen.app(),
    };
    let mut lateen = lateen_sidecar_command(&workload, local.lateend.xds_tls, lateen_ports);
    lateen.envs(local.agent_env(Workload::Lateen.app()));
    let lateen = spawn_logged(lateen, dir, Workload::Lateen.app());
    Sidecars {
        agent,
        envoy,
        lateen,
        lateen_ports,
    }
}

impl Sidecars {
    /// The logs of lateend and of the three processes, for a failure message.
    pub fn diagnostics(&self, local: &crate::common::lateend::Local) -> String {
        format!(
            "--- lateend ---\n{}\n--- agent ---\n{}\n--- Envoy ---\n{}\n--- lateen-proxy ---\n{}",
            local.lateend.process.log_tail(),
            self.agent.log_tail(),
            self.envoy.log_tail(),
            self.lateen.log_tail()
        )
    }

    /// Waits (bounded) until lateend reports both sidecars synced; panics with the logs.
    pub async fn wait_synced(&self, local: &crate::common::lateend::Local) {
        let ids: Vec<String> = Workload::ALL.iter().map(|w| w.node_id()).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        crate::common::wait_until("both sidecars synced", || {
            crate::common::lateend::all_synced(local.lateend.debug, &ids)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", self.diagnostics(local)));
    }
}
