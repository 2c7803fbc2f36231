//! `lateen dashboard ADDON` for Kubernetes, as istioctl has them: find the addon's pod by
//! istioctl's label selector in `--namespace` (default `istio-system`; `envoy` looks in
//! `default`), fail with istioctl's words when there is none (`no Prometheus pods found`,
//! exit 1), else port-forward to it (`kubectl port-forward`, istioctl's remote port, the same
//! local port when free) and open the URL.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use super::dashboard::{Common, open_browser};
use super::manifest::ClusterArgs;

/// An addon UI reached through its pod.
#[derive(clap::Subcommand)]
pub enum Addon {
    /// Open Prometheus web UI.
    Prometheus(AddonArgs),
    /// Open Grafana web UI.
    Grafana(AddonArgs),
    /// Open Kiali web UI.
    Kiali(AddonArgs),
    /// Open Jaeger web UI.
    Jaeger(AddonArgs),
    /// Open Zipkin web UI.
    Zipkin(AddonArgs),
    /// Open the ControlZ web UI for a pod in the Istio control plane.
    Controlz(PodArgs),
    /// Open Envoy admin web UI (of a sidecar).
    Envoy(PodArgs),
    /// Open admin web UI for a proxy.
    Proxy(PodArgs),
}

#[derive(clap::Args)]
pub struct AddonArgs {
    /// Namespace where the addon is running.
    #[arg(short = 'n', long, default_value = "istio-system")]
    namespace: String,
    /// The component dashboard UI port (default: the addon's).
    #[arg(long = "ui-port")]
    ui_port: Option<u16>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(clap::Args)]
pub struct PodArgs {
    /// `NAME[.NAMESPACE]` of the pod.
    pod: Option<String>,
    /// Label selector (instead of a pod name).
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Namespace of the pod (`envoy`: default; `proxy` and `controlz`: istio-system).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// The component dashboard UI port (`controlz`: 9876, else the proxy admin port 15000).
    #[arg(long = "ui-port", alias = "ctrlz_port")]
    ui_port: Option<u16>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// istioctl's pod selector, display name, UI port and URL path of each addon.
struct AddonInfo {
    selector: &'static str,
    flavor: &'static str,
    port: u16,
    path: &'static str,
}

const fn addon(
    selector: &'static str,
    flavor: &'static str,
    port: u16,
    path: &'static str,
) -> AddonInfo {
    AddonInfo {
        selector,
        flavor,
        port,
        path,
    }
}

const PROMETHEUS: AddonInfo = addon("app=prometheus", "Prometheus", 9090, "");
const GRAFANA: AddonInfo = addon("app.kubernetes.io/name=grafana", "Grafana", 3000, "");
const KIALI: AddonInfo = addon("app=kiali", "Kiali", 20001, "/kiali");
const JAEGER: AddonInfo = addon("app=jaeger", "Jaeger", 16686, "");
const ZIPKIN: AddonInfo = addon("app=zipkin", "Zipkin", 9411, "");
/// ControlZ's port in Istio's control plane pods.
const CONTROLZ_PORT: u16 = 9876;
/// The proxy admin port (Envoy's and lateen-proxy's).
const PROXY_ADMIN_PORT: u16 = 15000;

pub fn run(addon: Addon, common: &Common) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (target, namespace, pod, flavor, port, path) = match &addon {
        Addon::Prometheus(a) => runtime.block_on(addon_pod(a, &PROMETHEUS))?,
        Addon::Grafana(a) => runtime.block_on(addon_pod(a, &GRAFANA))?,
        Addon::Kiali(a) => runtime.block_on(addon_pod(a, &KIALI))?,
        Addon::Jaeger(a) => runtime.block_on(addon_pod(a, &JAEGER))?,
        Addon::Zipkin(a) => runtime.block_on(addon_pod(a, &ZIPKIN))?,
        Addon::Controlz(a) => {
            runtime.block_on(named_pod(a, "istio-system", "ControlZ", CONTROLZ_PORT))?
        }
        Addon::Envoy(a) => {
            runtime.block_on(named_pod(a, "default", "Envoy sidecar", PROXY_ADMIN_PORT))?
        }
        Addon::Proxy(a) => runtime.block_on(named_pod(
            a,
            "istio-system",
            "Envoy sidecar",
            PROXY_ADMIN_PORT,
        ))?,
    };
    port_forward(&target, &namespace, &pod, &flavor, port, path, common)
}

type Found = (
    lateen_install::cluster::Target,
    String,
    String,
    String,
    u16,
    &'static str,
);

async fn pods(
    cluster: &ClusterArgs,
    namespace: &str,
    selector: &str,
) -> anyhow::Result<Vec<String>> {
    let client = lateen_install::cluster::client(&cluster.target())
        .await
        .context("failed to create k8s client")?;
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .with_context(|| format!("listing pods with {selector} in {namespace}"))?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect())
}

async fn addon_pod(args: &AddonArgs, info: &AddonInfo) -> anyhow::Result<Found> {
    let found = pods(&args.cluster, &args.namespace, info.selector)
        .await
        .with_context(|| format!("not able to locate {} pod", info.flavor))?;
    let Some(pod) = found.into_iter().next() else {
        bail!("no {} pods found", info.flavor);
    };
    Ok((
        args.cluster.target(),
        args.namespace.clone(),
        pod,
        info.flavor.to_string(),
        args.ui_port.unwrap_or(info.port),
        info.path,
    ))
}

async fn named_pod(
    args: &PodArgs,
    default_namespace: &str,
    flavor: &str,
    default_port: u16,
) -> anyhow::Result<Found> {
    let namespace = args.namespace.as_deref().unwrap_or(default_namespace);
    let (pod, namespace) = match (&args.pod, &args.selector) {
        (None, None) => bail!("specify a pod or --selector"),
        (Some(_), Some(_)) => bail!("name cannot be provided when a selector is specified"),
        (None, Some(selector)) => {
            let found = pods(&args.cluster, namespace, selector)
                .await
                .with_context(|| format!("not able to locate pod with selector {selector}"))?;
            if found.len() > 1 {
                eprintln!(
                    "more than 1 pods fits selector: {selector}; will use pod: {}",
                    found[0]
                );
            }
            let Some(pod) = found.into_iter().next() else {
                bail!("no pods found");
            };
            (pod, namespace.to_string())
        }
        (Some(name), None) => {
            let name = name.strip_prefix("pod/").unwrap_or(name);
            match name.split_once('.') {
                Some((pod, ns)) => (pod.to_string(), ns.to_string()),
                None => (name.to_string(), namespace.to_string()),
            }
        }
    };
    Ok((
        args.cluster.target(),
        namespace,
        pod.clone(),
        format!("{flavor} {pod}"),
        args.ui_port.unwrap_or(default_port),
        "",
    ))
}

/// `kubectl port-forward` to the pod until it ends (Ctrl-C), after printing the URL.
fn port_forward(
    target: &lateen_install::cluster::Target,
    namespace: &str,
    pod: &str,
    flavor: &str,
    remote: u16,
    path: &str,
    common: &Common,
) -> anyhow::Result<()> {
    let local = if common.port == 0 {
        remote
    } else {
        common.port
    };
    let mut kubectl = Command::new("kubectl");
    if let Some(kubeconfig) = &target.kubeconfig {
        kubectl.arg("--kubeconfig").arg(kubeconfig);
    }
    if let Some(context) = &target.context {
        kubectl.args(["--context", context]);
    }
    if let Some(server) = &target.server {
        kubectl.args(["--server", server]);
    }
    kubectl
        .args(["-n", namespace, "port-forward", &format!("pod/{pod}")])
        .arg(format!("{local}:{remote}"))
        .args(["--address", &common.address])
        .stdout(Stdio::null());
    let mut child = kubectl.spawn().with_context(|| {
        format!(
            "could not build port forwarder for {flavor}: kubectl is needed for port-forwarding (kubectl -n {namespace} port-forward pod/{pod} {local}:{remote})"
        )
    })?;
    open_browser(
        &format!("http://{}:{local}{path}", common.address),
        common.browser,
    );
    let status = child.wait().context("waiting for kubectl port-forward")?;
    if !status.success() {
        bail!("failure running port forward process: kubectl exited with {status}");
    }
    Ok(())
}
