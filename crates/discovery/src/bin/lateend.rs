//! `lateend`: the Lateen control plane. Reads Istio configuration from a folder and/or a
//! Kubernetes cluster (Services, EndpointSlices, Pods, Istio's custom resources), serves xDS
//! (ADS, state of the world and delta) to Envoy-compatible proxies, and exposes debug
//! endpoints and metrics.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use lateen_discovery::kube::ClusterState;
use lateen_discovery::push::{self, ControlPlane, DebounceSettings};
use lateen_discovery::store::FolderStore;
use lateen_discovery::store::sources::ConfigSources;
use lateen_xds::XdsServer;
use tokio::net::TcpListener;

fn parse_duration(s: &str) -> Result<Duration, String> {
    lateen_api::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// lateend: Istio configuration in, xDS out.
///
/// Watches a folder of Istio YAML files (VirtualService, DestinationRule, Gateway,
/// ServiceEntry, WorkloadEntry, WorkloadGroup, Sidecar, ...) and/or a Kubernetes cluster
/// (Services, EndpointSlices, Pods, Istio's custom resources), validates each, and serves
/// the resulting Envoy configuration over ADS. Proxies identify themselves with Istio's node id
/// (`sidecar~IP~POD.NS~NS.svc.cluster.local`) and metadata (NAMESPACE, LABELS,
/// INTERCEPTION_MODE, ...).
#[derive(Debug, Parser)]
#[command(name = "lateend", version)]
struct Args {
    /// Folder of Istio configuration files (*.yaml, *.yml, *.json; several documents per file
    /// allowed). Polled for changes; a file that fails validation is rejected and its last
    /// good version stays in force. Can be combined with a cluster; one of the two is needed.
    #[arg(long, value_name = "DIR")]
    config_dir: Option<PathBuf>,

    #[command(flatten)]
    kube: lateen_discovery::kube::KubeArgs,

    /// How long to wait at start for the cluster's first complete lists before serving.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    cluster_sync_timeout: Duration,

    /// MeshConfig file (default: DIR/mesh.yaml when it exists, else built-in defaults).
    #[arg(long, value_name = "FILE")]
    mesh: Option<PathBuf>,

    /// Plaintext gRPC xDS (ADS) address.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:15010")]
    xds_address: SocketAddr,

    /// gRPC xDS (ADS) over TLS, with the same certificate as the webhook (clients are not
    /// authenticated yet).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:15012")]
    xds_tls_address: SocketAddr,

    /// Debug HTTP address: /debug/syncz, /debug/config_dump?proxyID=, /debug/configz,
    /// /metrics, /ready.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:15014")]
    debug_address: SocketAddr,

    /// Admission webhooks address (HTTPS): sidecar injection on /inject,
    /// /inject/cluster/C/net/N, /inject/:ENV:...; Istio configuration validation on /validate.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:15017")]
    webhook_address: SocketAddr,

    /// Serving certificate chain (PEM) of the webhook and of xDS over TLS. Without it and
    /// --webhook-key a CA and a certificate for lateend.istio-system.svc are generated at start.
    #[arg(long, value_name = "FILE", requires = "webhook_key")]
    webhook_cert: Option<PathBuf>,

    /// Private key (PEM) of --webhook-cert.
    #[arg(long, value_name = "FILE", requires = "webhook_cert")]
    webhook_key: Option<PathBuf>,

    /// Write the serving CA certificate (PEM) here: proxies trust it for xDS over TLS, and its
    /// base64 is the MutatingWebhookConfiguration caBundle.
    #[arg(long, value_name = "FILE")]
    webhook_ca_out: Option<PathBuf>,

    /// Injector template config (`config` of Istio's istio-sidecar-injector ConfigMap).
    #[arg(long, value_name = "FILE")]
    inject_config: Option<PathBuf>,

    /// Injector values (`values` of the same ConfigMap).
    #[arg(long, value_name = "FILE")]
    inject_values: Option<PathBuf>,

    /// Quiet period after a change before pushing (Istio's PILOT_DEBOUNCE_AFTER).
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    debounce_after: Duration,

    /// Longest delay between a change and its push (Istio's PILOT_DEBOUNCE_MAX).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    debounce_max: Duration,

    /// How long a self-registered proxy stays an endpoint after it disconnects.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    registration_grace: Duration,

    /// How often the config folder is scanned for changes.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    poll_interval: Duration,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lateend: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lateend: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.debounce_after > args.debounce_max {
        anyhow::bail!(
            "--debounce-after ({:?}) must not exceed --debounce-max ({:?})",
            args.debounce_after,
            args.debounce_max
        );
    }
    let cluster = args.kube.wanted();
    if args.config_dir.is_none() && !cluster {
        anyhow::bail!(
            "no configuration source: give --config-dir DIR and/or --kubeconfig FILE (in a pod the cluster is read by default)"
        );
    }
    let store = match &args.config_dir {
        Some(dir) => {
            let store = FolderStore::open(dir, args.mesh.as_deref())?;
            tracing::info!(dir = %dir.display(), resources = store.config().resources.len(), rejected_files = store.rejected_total(), "configuration loaded");
            Some(store)
        }
        None => None,
    };
    let mut initial = store.as_ref().map(FolderStore::config).unwrap_or_default();
    if store.is_none()
        && let Some(path) = &args.mesh
    {
        // Without a folder, --mesh is read once here (the cluster's `istio` ConfigMap, when it
        // exists, takes precedence).
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --mesh {}", path.display()))?;
        let (mesh, warnings) = lateen_api::load_mesh_config(&text, &path.display().to_string())
            .map_err(|e| anyhow::anyhow!("invalid mesh config:\n{e}"))?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        initial.mesh = mesh;
    }
    let sources = ConfigSources::new(initial);
    let (cp, triggers) =
        ControlPlane::new(sources.merged().as_ref().clone(), args.registration_grace);
    cp.note_rejected(store.as_ref().map_or(0, FolderStore::rejected_total));
    let provider: Arc<dyn lateen_xds::SnapshotProvider> = cp.clone();
    let xds = XdsServer::new(Some(provider));
    cp.attach(xds.clone());

    let xds_listener = TcpListener::bind(args.xds_address)
        .await
        .with_context(|| format!("binding --xds-address {}", args.xds_address))?;
    let debug_listener = TcpListener::bind(args.debug_address)
        .await
        .with_context(|| format!("binding --debug-address {}", args.debug_address))?;
    tracing::info!(address = %xds_listener.local_addr()?, "serving xDS (ADS over plaintext gRPC)");
    tracing::info!(address = %debug_listener.local_addr()?, "serving debug endpoints and metrics");
    let webhook_listener = TcpListener::bind(args.webhook_address)
        .await
        .with_context(|| format!("binding --webhook-address {}", args.webhook_address))?;
    let tls_listener = TcpListener::bind(args.xds_tls_address)
        .await
        .with_context(|| format!("binding --xds-tls-address {}", args.xds_tls_address))?;
    let mesh_file = args
        .mesh
        .clone()
        .or_else(|| {
            args.config_dir
                .as_ref()
                .map(|d| d.join(lateen_discovery::store::folder::MESH_FILE_NAME))
        })
        .filter(|p| p.is_file());
    let files = lateen_discovery::webhook::WebhookFiles {
        cert: args.webhook_cert.clone(),
        key: args.webhook_key.clone(),
        ca_out: args.webhook_ca_out.clone(),
        inject_config: args.inject_config.clone(),
        inject_values: args.inject_values.clone(),
        mesh: mesh_file,
    };
    let cert = lateen_discovery::webhook::load_cert(&files).context("serving certificate")?;
    tracing::info!(address = %webhook_listener.local_addr()?, "serving the sidecar-injection webhook (HTTPS)");
    tracing::info!(address = %tls_listener.local_addr()?, "serving xDS (ADS over TLS)");
    let cluster_state = ClusterState::new();
    // Istio's ENABLE_NATIVE_SIDECARS (default auto): in auto, the cluster's Nodes decide; with
    // no cluster there are no nodes to ask, so the classic layout.
    let native_sidecars = lateen_inject::native::NativeSidecars {
        mode: lateen_inject::native::NativeSidecarMode::from_env_value(
            std::env::var(lateen_inject::native::NativeSidecarMode::ENV)
                .ok()
                .as_deref(),
        ),
        nodes: cluster
            .then(|| cluster_state.clone() as Arc<dyn lateen_inject::native::NodeVersions>),
    };
    let webhook =
        lateen_discovery::webhook::start(webhook_listener, &cert, &files, native_sidecars)
            .context("starting the admission webhooks")?;
    cp.attach_webhook(webhook);
    let kube_source = if cluster {
        cp.attach_cluster(cluster_state.clone());
        let source = lateen_discovery::kube::start(
            &args.kube,
            cp.clone(),
            sources.clone(),
            cluster_state,
            files.clone(),
            args.cluster_sync_timeout,
        )
        .await
        .context("Kubernetes cluster")?;
        Some(source)
    } else {
        None
    };
    let tls = lateen_discovery::webhook::server_config(&cert).context("xDS TLS")?;
    tokio::spawn(lateen_discovery::xds_tls::serve(
        tls_listener,
        tls,
        xds.clone(),
    ));

    if let Some(store) = store {
        let watcher_cp = cp.clone();
        let reject_cp = cp.clone();
        tokio::spawn(store.watch(
            args.poll_interval,
            move |config| {
                watcher_cp.set_config(sources.set_folder(config));
                if let Some(source) = &kube_source {
                    source.poke();
                }
            },
            move |n| reject_cp.note_rejected(n),
        ));
    }
    tokio::spawn(push::run_debouncer(
        cp.clone(),
        triggers,
        DebounceSettings {
            after: args.debounce_after,
            max: args.debounce_max,
            ..DebounceSettings::default()
        },
    ));
    tokio::spawn(push::run_expiry(cp.clone()));
    tokio::spawn(lateen_discovery::debug::serve(debug_listener, cp.clone()));

    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
        tracing::info!("shutting down");
    };
    xds.serve(xds_listener, shutdown)
        .await
        .context("xDS server")?;
    Ok(())
}
