//! Starting the demo's processes: lateend on the host, and per workload the sample app and a
//! `lateen-proxy sidecar` with Istio's injected environment. Loopback mode: interception
//! NONE, the app calls its sidecar's outbound listener explicitly. Namespace mode: inside
//! the pod's namespace the app (root) listens on the service port and calls services by name,
//! the sidecar runs as UID 1337 with interception REDIRECT, and the capture rules connect them.
//! Every sidecar gets its certificate from lateend's CA (`identity.rs`).

use std::path::{Path, PathBuf};

use super::identity::{self, Credentials, MeshCaFiles};
use super::mesh::{self, SERVICE_PORT, WORKLOADS, Workload};
use super::mode::Mode;
use super::processes::Supervisor;

/// The binaries a run uses: the sidecar's may be a copy readable by UID 1337.
pub struct Programs {
    pub lateend: PathBuf,
    pub app: PathBuf,
    pub proxy: PathBuf,
}

pub fn start_lateend(
    supervisor: &mut Supervisor,
    programs: &Programs,
    config_dir: &Path,
    mesh_ca: &MeshCaFiles,
    mode: Mode,
) -> anyhow::Result<()> {
    let xds = mesh::xds_address(mode);
    let ca = identity::ca_address(mode);
    let mut args = vec![
        "--config-dir",
        &*config_dir.to_string_lossy(),
        "--xds-address",
        &xds,
        "--xds-tls-address",
        &ca,
        "--debug-address",
        "127.0.0.1:15014",
        "--http-address",
        "127.0.0.1:0",
        "--webhook-address",
        "127.0.0.1:15017",
        "--registration-grace",
        "2s",
    ]
    .into_iter()
    .map(str::to_string)
    .collect::<Vec<String>>();
    args.extend(mesh_ca.lateend_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    supervisor.spawn("lateend", programs.lateend.clone(), &args, &[])
}

/// Starts `workload`'s app and sidecar (its pod already exists in the namespace mode); the
/// sidecar gets its certificate with `credentials`.
pub fn start(
    supervisor: &mut Supervisor,
    programs: &Programs,
    credentials: &Credentials,
    workload: &Workload,
    mode: Mode,
) -> anyhow::Result<()> {
    let app = programs.app.to_string_lossy();
    let listen = match mode {
        Mode::Loopback => format!("127.0.0.1:{}", workload.app_port(mode)),
        Mode::Netns => format!("0.0.0.0:{}", workload.app_port(mode)),
    };
    let calls: Vec<String> = workload
        .calls
        .iter()
        .map(|(service, path)| match mode {
            // Without capture the app must send its call to the sidecar's outbound listener.
            Mode::Loopback => format!(
                "http://{service}:{SERVICE_PORT}{path}@{}:{SERVICE_PORT}",
                workload.egress_address()
            ),
            Mode::Netns => format!("http://{service}:{SERVICE_PORT}{path}"),
        })
        .collect();
    let mut app_args = vec![
        app.as_ref(),
        "--name",
        workload.service,
        "--version",
        workload.version,
        "--listen",
        &listen,
    ];
    for call in &calls {
        app_args.extend(["--call", call.as_str()]);
    }
    spawn_in(
        supervisor,
        &format!("{}-app", workload.name()),
        workload,
        mode,
        &app_args,
        &[],
    )?;

    let proxy = programs.proxy.to_string_lossy();
    let xds = mesh::xds_address(mode);
    let address = workload.address(mode);
    let (admin, health, metrics, status) = match mode {
        Mode::Loopback => (
            format!("{address}:15000"),
            format!("{address}:15021"),
            format!("{address}:15090"),
            format!("{address}:15020"),
        ),
        // Inside the pod: every interface, so the host reaches them on the pod address.
        Mode::Netns => (
            "0.0.0.0:15000".to_string(),
            "0.0.0.0:15021".to_string(),
            "0.0.0.0:15090".to_string(),
            "0.0.0.0:15020".to_string(),
        ),
    };
    let mut sidecar_args: Vec<&str> = match mode {
        Mode::Loopback => vec![],
        // The capture rules let UID/GID 1337's traffic through; that is how the proxy's own
        // connections escape being captured again.
        Mode::Netns => vec!["setpriv", "--reuid=1337", "--regid=1337", "--clear-groups"],
    };
    sidecar_args.extend([
        proxy.as_ref(),
        "sidecar",
        "--discovery-address",
        &xds,
        "--admin-address",
        &admin,
        "--health-address",
        &health,
        "--metrics-address",
        &metrics,
        "--status-address",
        &status,
        "--concurrency",
        "1",
    ]);
    spawn_in(
        supervisor,
        &format!("{}-proxy", workload.name()),
        workload,
        mode,
        &sidecar_args,
        &sidecar_env(workload, credentials, mode),
    )
}

/// Spawns `args` (program first) on the host in loopback mode, in the pod otherwise.
fn spawn_in(
    supervisor: &mut Supervisor,
    name: &str,
    workload: &Workload,
    mode: Mode,
    args: &[&str],
    env: &[(&str, String)],
) -> anyhow::Result<()> {
    match mode {
        Mode::Loopback => supervisor.spawn(name, PathBuf::from(args[0]), &args[1..], env),
        Mode::Netns => {
            let ns = workload.namespace();
            let mut full = vec!["netns", "exec", ns.as_str()];
            full.extend_from_slice(args);
            supervisor.spawn(name, PathBuf::from("ip"), &full, env)
        }
    }
}

/// Istio's injected environment for the sidecar (what lateend reads as node metadata, and
/// where its certificate comes from).
fn sidecar_env(
    workload: &Workload,
    credentials: &Credentials,
    mode: Mode,
) -> Vec<(&'static str, String)> {
    // `security.istio.io/tlsMode: istio` as the injector labels a pod with a sidecar: auto
    // mTLS sends TLS to endpoints that carry it.
    let labels = format!(
        r#"{{"app":"{}","version":"{}","security.istio.io/tlsMode":"istio"}}"#,
        workload.service, workload.version
    );
    let pod_ports =
        format!(r#"[{{"name":"http","containerPort":{SERVICE_PORT},"protocol":"TCP"}}]"#);
    let interception = match mode {
        Mode::Loopback => "NONE",
        Mode::Netns => "REDIRECT",
    };
    let mut env = vec![
        ("POD_NAME", format!("{}-demo", workload.name())),
        ("POD_NAMESPACE", "default".to_string()),
        ("INSTANCE_IP", workload.address(mode)),
        (
            "SERVICE_ACCOUNT",
            identity::service_account(workload.service),
        ),
        ("ISTIO_META_INTERCEPTION_MODE", interception.to_string()),
        ("ISTIO_META_WORKLOAD_NAME", workload.name()),
        ("ISTIO_METAJSON_LABELS", labels),
        ("ISTIO_META_POD_PORTS", pod_ports),
        // Its app's WorkloadGroup (config.rs) admits it as an endpoint.
        (
            "ISTIO_META_AUTO_REGISTER_GROUP",
            workload.service.to_string(),
        ),
        ("LATEEN_LOG", "warn".to_string()),
    ];
    env.extend(credentials.sidecar_env(workload, mode));
    env
}

/// Every workload, in the order of [`WORKLOADS`].
pub fn start_all(
    supervisor: &mut Supervisor,
    programs: &Programs,
    credentials: &Credentials,
    mode: Mode,
) -> anyhow::Result<()> {
    WORKLOADS
        .iter()
        .try_for_each(|workload| start(supervisor, programs, credentials, workload, mode))
}
