//! `lateend`: the Lateen control plane. Reads Istio configuration from a folder and/or a
//! Kubernetes cluster (Services, EndpointSlices, Pods, Istio's custom resources), serves xDS
//! (ADS, state of the world and delta) to Envoy-compatible proxies, and exposes debug
//! endpoints and metrics. In a Kubernetes pod it also does what istiod writes to the cluster
//! (`lateen_discovery::cluster_writes`), and it accepts istiod's command line
//! (`discovery --monitoringAddr=:15014 ...`, see `lateen_discovery::cmdline`).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use lateen_discovery::cmdline::{self, IstiodFlags, parse_listen_addr};
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
/// ServiceEntry, WorkloadEntry, WorkloadGroup, Sidecar, ...), validates each file, and serves
/// the resulting Envoy configuration over ADS. Proxies identify themselves with Istio's node id
/// (`sidecar~IP~POD.NS~NS.svc.cluster.local`) and metadata (NAMESPACE, LABELS,
/// INTERCEPTION_MODE, ...). `lateend discovery FLAGS` (istiod's form) is `lateend FLAGS`, and
/// istiod's flags are accepted (their names are listed with each option and below).
#[derive(Debug, Parser)]
// Later occurrences of a flag win, as with istiod's (Go pflag) command line, so an overlay can
// append a flag the rendered arguments already hold.
#[command(name = "lateend", version, args_override_self = true)]
struct Args {
    /// Folder of Istio configuration files (*.yaml, *.yml, *.json; several documents per file
    /// allowed). Polled for changes; a file that fails validation is rejected and its last
    /// good version stays in force. Can be combined with a cluster; one of the two is needed.
    #[arg(long, visible_alias = "configDir", value_name = "DIR")]
    config_dir: Option<PathBuf>,

    #[command(flatten)]
    kube: lateen_discovery::kube::KubeArgs,

    /// How long to wait at start for the cluster's first complete lists before serving.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    cluster_sync_timeout: Duration,

    /// MeshConfig file (default: DIR/mesh.yaml when it exists, else built-in defaults).
    #[arg(long, visible_alias = "meshConfig", value_name = "FILE")]
    mesh: Option<PathBuf>,

    /// Plaintext gRPC xDS (ADS) address (istiod: --grpcAddr).
    #[arg(long, visible_alias = "grpcAddr", value_name = "ADDR", default_value = "0.0.0.0:15010", value_parser = parse_listen_addr)]
    xds_address: SocketAddr,

    /// gRPC xDS (ADS) over TLS, with the same certificate as the webhook (clients are not
    /// authenticated yet) (istiod: --secureGRPCAddr).
    #[arg(long, visible_alias = "secureGRPCAddr", value_name = "ADDR", default_value = "0.0.0.0:15012", value_parser = parse_listen_addr)]
    xds_tls_address: SocketAddr,

    /// Debug HTTP address: /debug/syncz, /debug/config_dump?proxyID=, /debug/configz,
    /// /metrics, /ready (istiod: --monitoringAddr).
    #[arg(long, visible_alias = "monitoringAddr", value_name = "ADDR", default_value = "0.0.0.0:15014", value_parser = parse_listen_addr)]
    debug_address: SocketAddr,

    /// Readiness (/ready) and the debug endpoints again, where the rendered Deployment's probe
    /// asks (istiod: --httpAddr).
    #[arg(long, visible_alias = "httpAddr", value_name = "ADDR", default_value = "0.0.0.0:8080", value_parser = parse_listen_addr)]
    http_address: SocketAddr,

    /// Admission webhooks address (HTTPS): sidecar injection on /inject,
    /// /inject/cluster/C/net/N, /inject/:ENV:...; Istio configuration validation on /validate
    /// (istiod: --httpsAddr).
    #[arg(long, visible_alias = "httpsAddr", value_name = "ADDR", default_value = "0.0.0.0:15017", value_parser = parse_listen_addr)]
    webhook_address: SocketAddr,

    /// Serving certificate chain (PEM) of the webhook and of xDS over TLS. Without it and
    /// --webhook-key a CA and a certificate for lateend's Service are generated at start
    /// (istiod: --tlsCertFile).
    #[arg(
        long,
        visible_alias = "tlsCertFile",
        value_name = "FILE",
        requires = "webhook_key"
    )]
    webhook_cert: Option<PathBuf>,

    /// Private key (PEM) of --webhook-cert (istiod: --tlsKeyFile).
    #[arg(
        long,
        visible_alias = "tlsKeyFile",
        value_name = "FILE",
        requires = "webhook_cert"
    )]
    webhook_key: Option<PathBuf>,

    /// Write the serving CA certificate (PEM) here: proxies trust it for xDS over TLS, and its
    /// base64 is the MutatingWebhookConfiguration caBundle.
    #[arg(long, value_name = "FILE")]
    webhook_ca_out: Option<PathBuf>,

    /// Plugged-in CA folder with Istio's file names (`ca-cert.pem`, `ca-key.pem`,
    /// `cert-chain.pem`, `root-cert.pem`; Istio mounts the `cacerts` Secret there). Used when
    /// it holds `ca-cert.pem` and `ca-key.pem` (istiod: ROOT_CA_DIR).
    #[arg(
        long,
        env = "ROOT_CA_DIR",
        value_name = "DIR",
        default_value = "./etc/cacerts"
    )]
    cacerts_dir: PathBuf,

    /// Folder that keeps the self-signed mesh CA across restarts when there is no cluster
    /// (made on first start; on Kubernetes the Secret istio-ca-secret keeps it).
    #[arg(long, value_name = "DIR")]
    ca_dir: Option<PathBuf>,

    /// Workload certificate lifetime when the request asks for none (istiod:
    /// DEFAULT_WORKLOAD_CERT_TTL).
    #[arg(long, env = "DEFAULT_WORKLOAD_CERT_TTL", value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    workload_cert_ttl: Duration,

    /// Longest workload certificate lifetime a request may ask for (istiod:
    /// MAX_WORKLOAD_CERT_TTL).
    #[arg(long, env = "MAX_WORKLOAD_CERT_TTL", value_name = "DURATION", default_value = "2160h", value_parser = parse_duration)]
    max_workload_cert_ttl: Duration,

    /// Folder of bootstrap tokens for workloads on one machine: DIR/NS/SA/istio-token proves
    /// identity NS/SA to the certificate API (see docs/mesh-ca.md).
    #[arg(long, value_name = "DIR")]
    bootstrap_token_dir: Option<PathBuf>,

    /// An identity NAMESPACE/SERVICE_ACCOUNT to make a bootstrap token for (kept when it
    /// already exists); repeatable. Needs --bootstrap-token-dir.
    #[arg(long, value_name = "NS/SA", requires = "bootstrap_token_dir", value_parser = lateen_discovery::mesh_ca::auth::parse_identity)]
    bootstrap_identity: Vec<(String, String)>,

    /// Injector template config (`config` of Istio's istio-sidecar-injector ConfigMap).
    #[arg(long, value_name = "FILE")]
    inject_config: Option<PathBuf>,

    /// Injector values (`values` of the same ConfigMap).
    #[arg(long, value_name = "FILE")]
    inject_values: Option<PathBuf>,

    /// Quiet period after a change before pushing (Istio's PILOT_DEBOUNCE_AFTER).
    #[arg(long, value_name = "DURATION", env = "PILOT_DEBOUNCE_AFTER", default_value = "100ms", value_parser = parse_duration)]
    debounce_after: Duration,

    /// Longest delay between a change and its push (Istio's PILOT_DEBOUNCE_MAX).
    #[arg(long, value_name = "DURATION", env = "PILOT_DEBOUNCE_MAX", default_value = "1s", value_parser = parse_duration)]
    debounce_max: Duration,

    /// How long an auto-registered proxy (one a WorkloadGroup admits) stays an endpoint after
    /// it disconnects.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    registration_grace: Duration,

    /// How often the config folder is scanned for changes.
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    poll_interval: Duration,

    #[command(flatten)]
    istiod: IstiodFlags,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse_from(cmdline::normalize_argv(std::env::args_os()));
    let log = match args
        .istiod
        .check()
        .and_then(|()| cmdline::logging::settings(&args.istiod))
    {
        Ok(log) => log,
        Err(e) => {
            eprintln!("lateend: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    cmdline::logging::init(&log);
    if !log.ignored_scopes.is_empty() {
        tracing::info!(scopes = ?log.ignored_scopes, "--log_output_level: lateend has only the default scope; these are ignored");
    }
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

/// lateend's serving certificate: from the flags when given; else signed by the mesh CA, as
/// istiod signs its own with its CA, so that `istio-ca-root-cert` is one root for xDS over
/// TLS and for workload certificates.
fn serving_cert(
    mesh_ca: &lateen_identity::MeshCa,
    files: &lateen_discovery::webhook::WebhookFiles,
) -> anyhow::Result<lateen_inject::webhook::WebhookCert> {
    if files.cert.is_none() && files.key.is_none() {
        let names = if files.serving_names.is_empty() {
            lateen_inject::webhook::WebhookCert::service_names("lateend", "istio-system")
        } else {
            files.serving_names.clone()
        };
        let (cert_chain_pem, key_pem) = mesh_ca
            .issue_server(&names)
            .context("issuing the serving certificate")?;
        let cert = lateen_inject::webhook::WebhookCert {
            cert_chain_pem,
            key_pem,
            ca_pem: mesh_ca.root_cert_pem().to_string(),
        };
        if let Some(out) = &files.ca_out {
            std::fs::write(out, &cert.ca_pem)
                .with_context(|| format!("writing {}", out.display()))?;
        }
        return Ok(cert);
    }
    lateen_discovery::webhook::load_cert(files).context("serving certificate")
}

/// How callers on 15012 are authenticated (the certificate API, and ADS streams' tokens):
/// bootstrap tokens (`--bootstrap-token-dir`) and/or the cluster's TokenReview.
fn authenticator(
    args: &Args,
    cluster: Option<kube::Client>,
    trust_domain: &str,
) -> anyhow::Result<Arc<lateen_discovery::mesh_ca::auth::Authenticator>> {
    use lateen_discovery::mesh_ca::auth::{Authenticator, BootstrapTokens};
    let bootstrap = match &args.bootstrap_token_dir {
        Some(dir) => {
            let tokens = BootstrapTokens::open(dir, trust_domain, &args.bootstrap_identity)?;
            tracing::info!(dir = %dir.display(), identities = tokens.len(), "certificate API: bootstrap tokens");
            Some(tokens)
        }
        None => None,
    };
    Ok(Arc::new(Authenticator {
        bootstrap,
        cluster,
        trust_domain: trust_domain.to_string(),
    }))
}

/// Istio's certificate API over the mesh CA, its callers authenticated by `auth`.
fn ca_signer(
    args: &Args,
    ca: Arc<lateen_identity::MeshCa>,
    auth: Arc<lateen_discovery::mesh_ca::auth::Authenticator>,
) -> anyhow::Result<Arc<dyn lateen_xds::ca_service::CertificateSigner>> {
    if args.workload_cert_ttl > args.max_workload_cert_ttl {
        anyhow::bail!(
            "--workload-cert-ttl ({:?}) must not exceed --max-workload-cert-ttl ({:?})",
            args.workload_cert_ttl,
            args.max_workload_cert_ttl
        );
    }
    Ok(Arc::new(lateen_discovery::mesh_ca::signer::CaSigner {
        ca,
        auth,
        policy: lateen_identity::SigningPolicy {
            default_ttl: args.workload_cert_ttl,
            max_ttl: args.max_workload_cert_ttl,
        },
    }))
}

/// Hands the cluster source's refused Istio objects to the status writer whenever the set is
/// replaced.
async fn feed_rejected(
    state: Arc<ClusterState>,
    to: tokio::sync::watch::Sender<Arc<Vec<lateen_discovery::kube::RejectedObject>>>,
) {
    let mut last = Arc::new(Vec::new());
    loop {
        let now = state.rejected();
        if !Arc::ptr_eq(&now, &last) && *now != *last {
            if to.send(now.clone()).is_err() {
                return;
            }
            last = now;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn bind(what: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {what} {addr}"))
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.debounce_after > args.debounce_max {
        anyhow::bail!(
            "--debounce-after ({:?}) must not exceed --debounce-max ({:?})",
            args.debounce_after,
            args.debounce_max
        );
    }
    let given = args.istiod.no_effect.given();
    if !given.is_empty() {
        tracing::info!(flags = ?given, "istiod flags accepted that lateend does not act on");
    }
    let namespace = args.istiod.namespace.clone();
    let env = lateen_discovery::cmdline::istiod::IstiodEnv::from_env(&namespace);
    let in_cluster = args.kube.wanted();
    if args.config_dir.is_none() && !in_cluster {
        anyhow::bail!(
            "no configuration source: give --config-dir DIR and/or --kubeconfig FILE (in a pod the cluster is read by default)"
        );
    }
    // lateend's own client for what it writes (the source makes its own for its watches).
    let cluster = if in_cluster {
        Some(
            lateen_discovery::kube::client(&args.kube)
                .await
                .context("Kubernetes cluster")?,
        )
    } else {
        None
    };
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
    // What /ready waits for, registered before it is served.
    let listening = cp.readiness().gate("listeners");
    let cluster_synced = in_cluster.then(|| {
        cp.readiness()
            .gate("kubernetes: the first list of every watched kind")
    });
    let provider: Arc<dyn lateen_xds::SnapshotProvider> = cp.clone();
    let xds = XdsServer::new(Some(provider));
    cp.attach(xds.clone());
    let keepalive = lateen_xds::ConnectionOptions {
        keepalive_interval: args.istiod.keepalive_interval,
        keepalive_timeout: args.istiod.keepalive_timeout,
        max_connection_age: args.istiod.keepalive_max_server_connection_age,
    };

    let xds_listener = bind("--xds-address", args.xds_address).await?;
    let debug_listener = bind("--debug-address", args.debug_address).await?;
    let http_listener = bind("--http-address", args.http_address).await?;
    tracing::info!(address = %xds_listener.local_addr()?, "serving xDS (ADS over plaintext gRPC)");
    tracing::info!(address = %debug_listener.local_addr()?, "serving debug endpoints and metrics");
    tracing::info!(address = %http_listener.local_addr()?, "serving readiness (/ready) and debug endpoints");
    let webhook_listener = bind("--webhook-address", args.webhook_address).await?;
    let tls_listener = bind("--xds-tls-address", args.xds_tls_address).await?;
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
        ca: args.istiod.ca_cert_file.clone(),
        ca_out: args.webhook_ca_out.clone(),
        inject_config: args.inject_config.clone(),
        inject_values: args.inject_values.clone(),
        mesh: mesh_file,
        serving_names: env.serving_names(&namespace),
    };
    let trust_domain = sources.merged().mesh.trust_domain().to_string();
    let mesh_ca = Arc::new(
        lateen_discovery::mesh_ca::load(lateen_discovery::mesh_ca::CaSource {
            cacerts_dir: Some(args.cacerts_dir.clone()),
            ca_dir: args.ca_dir.clone(),
            cluster: cluster.as_ref().map(|c| (c, namespace.as_str())),
            trust_domain: &trust_domain,
        })
        .await
        .context("mesh CA")?,
    );
    let cert = serving_cert(&mesh_ca, &files)?;
    let mesh_root = mesh_ca.root_cert_pem().to_string();
    let auth = authenticator(&args, cluster.clone(), &trust_domain)?;
    let ca_signer = ca_signer(&args, mesh_ca, auth.clone())?;
    // Without bootstrap tokens or a cluster no token can be checked: ADS streams are then
    // known only by their certificates, and a token proves nothing (nor is it refused).
    let ads_auth = auth.can_authenticate().then_some(auth);
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
        nodes: in_cluster
            .then(|| cluster_state.clone() as Arc<dyn lateen_inject::native::NodeVersions>),
    };
    let webhook =
        lateen_discovery::webhook::start(webhook_listener, &cert, &files, native_sidecars)
            .context("starting the admission webhooks")?;
    cp.attach_webhook(webhook);
    // The probe gets its answer (503 until synced) while the first lists come in.
    tokio::spawn(lateen_discovery::debug::serve(debug_listener, cp.clone()));
    tokio::spawn(lateen_discovery::debug::serve(http_listener, cp.clone()));
    tokio::spawn(lateen_discovery::dashboard::scrape::run(cp.clone()));
    let kube_source = if in_cluster {
        cp.attach_cluster(cluster_state.clone());
        let source = lateen_discovery::kube::start(
            &args.kube,
            cp.clone(),
            sources.clone(),
            cluster_state.clone(),
            files.clone(),
            args.cluster_sync_timeout,
        )
        .await
        .context("Kubernetes cluster")?;
        Some(source)
    } else {
        None
    };
    if let Some(gate) = cluster_synced {
        let state = cluster_state.clone();
        tokio::spawn(async move {
            while !state.synced() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            gate.done();
        });
    }
    let tls = lateen_discovery::xds_peer::server_config(&cert, &mesh_root).context("xDS TLS")?;
    tokio::spawn(lateen_discovery::xds_tls::serve(
        tls_listener,
        tls,
        xds.clone(),
        Some(lateen_xds::ca_service::CertificateService::new(ca_signer)),
        ads_auth,
        keepalive,
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

    // What istiod writes to the cluster; its Leases are released on the way out.
    let writes = cluster.map(|client| {
        let mesh_cp = cp.clone();
        lateen_discovery::cluster_writes::start(
            client,
            lateen_discovery::cluster_writes::Settings {
                namespace: namespace.clone(),
                identity: lateen_discovery::cluster_writes::holder_identity(
                    env.pod_name.as_deref(),
                ),
                ca_pem: cert.ca_pem.clone(),
                injection_webhook_config: env.injection_webhook_config_name.clone(),
                validation_webhook_configs: env.validation_webhook_configs(),
                revision: env.revision.clone(),
                write_status: env.write_status,
                discovery_selectors: Arc::new(move || {
                    mesh_cp.config().mesh.discovery_selectors.clone()
                }),
            },
        )
    });
    if let Some(writes) = &writes {
        tokio::spawn(feed_rejected(cluster_state, writes.rejected_objects()));
    }
    listening.done();

    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
        tracing::info!("shutting down");
    };
    let served = xds
        .serve_with(xds_listener, shutdown, keepalive)
        .await
        .context("xDS server");
    if let Some(writes) = writes {
        writes.shutdown().await;
    }
    served
}
