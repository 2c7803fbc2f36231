//! `lateen-proxy sidecar|router`: starts the proxy with no listeners, connects to the
//! control plane with the ADS client (plaintext or TLS with a token: [`super::control_plane`];
//! over TLS also presenting the workload certificate once it holds one), and applies every
//! accepted update live. An update is
//! translated and compiled whole before anything changes; a bad one is NACKed with the
//! resource, field and reason and the proxy keeps its previous configuration. Clusters warm
//! before use: a configuration that names EDS or RDS resources not received yet is held
//! until they arrive (or `--warm-timeout` passes, then they count as empty). While the
//! control plane is away the proxy serves its last configuration; the client reconnects.

use anyhow::Context;
use lateen_xds::client::Transport;
use lateen_xds::types::{CLUSTER, ENDPOINT, LISTENER, ROUTE, short_name};
use lateen_xds::{AdsClient, AdsClientConfig, AdsResponse, ClientMode};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::control_plane::resolve;
use super::identity::{Identity, NodeType};
use super::state::XdsState;
use super::workload_cert::{CertificateSource, MTLS_METADATA};
use crate::admin::AdminState;
use crate::config::compile::compile;
use crate::config::model::{AdminConfig, ProxyConfig};
use crate::proxy::{LiveConfig, ProxyOptions};

/// Flags of `lateen-proxy sidecar` and `lateen-proxy router`.
#[derive(clap::Args, Debug, Clone)]
pub struct XdsArgs {
    /// Control plane ADS address; default PROXY_CONFIG's discoveryAddress, else
    /// lateend.istio-system.svc:15012. TLS or plaintext is decided as Istio's agent decides it
    /// (docs/proxy-xds.md); `http://` or `https://` in front says which.
    #[arg(long, env = "LATEEN_DISCOVERY_ADDRESS", value_name = "HOST:PORT")]
    pub discovery_address: Option<String>,
    /// Admin server (`/config_dump`, `/stats`, `/quitquitquit`).
    #[arg(long, default_value = "127.0.0.1:15000")]
    pub admin_address: SocketAddr,
    /// Health server (`/healthz/ready`).
    #[arg(long, default_value = "0.0.0.0:15021")]
    pub health_address: SocketAddr,
    /// Prometheus server (`/stats/prometheus`).
    #[arg(long, default_value = "0.0.0.0:15090")]
    pub metrics_address: SocketAddr,
    /// The agent's status port (Istio's 15020): `/stats/prometheus` there merges the proxy's
    /// metrics with the application's named by ISTIO_PROMETHEUS_ANNOTATIONS. Off unless given
    /// (the injector passes it).
    #[arg(long, env = "LATEEN_STATUS_ADDRESS")]
    pub status_address: Option<SocketAddr>,
    /// Downward-API file of the pod's labels, read when ISTIO_METAJSON_LABELS is not set.
    #[arg(long, default_value = "/etc/istio/pod/labels")]
    pub labels_file: PathBuf,
    /// Worker threads; defaults to the number of cores.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Distinct label sets kept per group of Istio metrics (HTTP, TCP); label sets beyond it
    /// are not recorded and are counted in `/stats` as `lateen.metrics_series_dropped`.
    #[arg(long, default_value_t = crate::series_cap::DEFAULT_MAX_SERIES)]
    pub max_metric_series: usize,
    /// Seconds in-flight requests may run after SIGTERM.
    #[arg(long, default_value_t = 5)]
    pub drain_seconds: u64,
    /// Seconds to wait for the EDS/RDS resources a new configuration names before applying
    /// it with them empty (Envoy's initial_fetch_timeout).
    #[arg(long, default_value_t = 15)]
    pub warm_timeout: u64,
    /// Speak state-of-the-world ADS instead of trying delta first.
    #[arg(long)]
    pub sotw: bool,
    /// Log level or filter (RUST_LOG syntax).
    #[arg(long, default_value = "info", env = "LATEEN_LOG")]
    pub log_level: String,
    /// DNS domain ending the node id (Istio's injector passes `NAMESPACE.svc.cluster.local`,
    /// the default).
    #[arg(long)]
    pub domain: Option<String>,
    /// Folder of Istio's file-mounted workload certificate (`cert-chain.pem`, `key.pem`,
    /// `root-cert.pem`) for mesh mTLS, reloaded when it changes.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// The mesh CA's address (Istio's `CA_ADDR`, which the injector sets): the workload
    /// certificate is requested there. Without it the CA is the control plane when that is
    /// reached over TLS; with neither (nor `--cert-dir`) mesh mTLS is off.
    #[arg(long, env = "CA_ADDR", value_name = "HOST:PORT")]
    pub ca_address: Option<String>,
    /// Requested certificate lifetime as a Go duration (`24h`, `90m`; Istio's `SECRET_TTL`);
    /// default the CA's (24h on lateend).
    #[arg(long, env = "SECRET_TTL", value_name = "DURATION", value_parser = super::sds_agent::parse_go_duration)]
    pub secret_ttl: Option<Duration>,
    /// Accepted for Istio's injected arguments (`--log-level` sets ours).
    #[arg(long = "proxyLogLevel", hide = true)]
    pub proxy_log_level: Option<String>,
    /// Accepted for Istio's injected arguments.
    #[arg(long = "proxyComponentLogLevel", hide = true)]
    pub proxy_component_log_level: Option<String>,
    /// Accepted for Istio's injected arguments.
    #[arg(long = "log_output_level", hide = true)]
    pub log_output_level: Option<String>,
    #[command(flatten)]
    pub overload: crate::overload::OverloadArgs,
}

/// Runs the proxy from the control plane until it is told to stop and has drained.
pub async fn run(node_type: NodeType, args: XdsArgs) -> anyhow::Result<()> {
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let mut identity = Identity::from_env(node_type, &env, &args.labels_file)
        .context("reading the proxy's identity")?;
    // Istio's injector passes `--domain NAMESPACE.svc.CLUSTER_DOMAIN`: the node id ends with it.
    if let Some(domain) = args
        .domain
        .as_ref()
        .filter(|domain| !domain.is_empty() && !domain.contains("$("))
    {
        identity.dns_domain = domain.clone();
    }
    let base = ProxyConfig {
        node: identity.model_node(),
        admin: AdminConfig {
            address: args.admin_address,
            health_address: args.health_address,
            metrics_address: args.metrics_address,
        },
        drain_timeout: Duration::from_secs(args.drain_seconds),
        ..Default::default()
    };
    let initial = compile(base.clone())
        .map_err(|problems| anyhow::anyhow!("invalid start-up configuration: {problems:?}"))?;
    let mut options = ProxyOptions {
        max_metric_series: args.max_metric_series,
        ..Default::default()
    };
    if let Some(concurrency) = args.concurrency {
        options.concurrency = concurrency;
    }
    // Istio's bootstrap carries ProxyConfig's runtimeValues into Envoy's runtime.
    options.overload = args.overload.limits(
        &crate::overload::proxy_config_runtime(env.get("PROXY_CONFIG").map(String::as_str)),
        options.concurrency,
    );
    let control_plane = resolve(args.discovery_address.as_deref(), &env, &|path| {
        path.is_file()
    })
    .context("deciding how to reach the control plane")?;
    let source = CertificateSource::choose(
        args.cert_dir.as_ref(),
        args.ca_address.as_deref(),
        &control_plane,
        &env,
        args.secret_ttl,
    )?;
    if source.is_some() {
        identity
            .metadata
            .entry(MTLS_METADATA.to_string())
            .or_insert_with(|| "true".into());
    }
    let certificates = source.start()?;
    options.certificates = certificates.clone();
    // As pilot-agent with a provisioned certificate: over TLS, every (re)connect presents the
    // workload certificate held then, so lateend knows the proxy by it; the token goes too.
    let presented = match (&control_plane.transport, &certificates) {
        (Transport::Tls(_), Some(certificates)) => {
            Some(presented_certificate(certificates.clone()))
        }
        _ => None,
    };
    let running = crate::proxy::start(initial, options).await?;
    if let Some(address) = args.status_address {
        crate::status::start(
            address,
            running.admin.clone(),
            env.get("ISTIO_PROMETHEUS_ANNOTATIONS").map(String::as_str),
        )
        .await?;
    }
    let tls = match &control_plane.transport {
        Transport::Tls(tls) => format!(
            "TLS (root {}, server name {})",
            tls.root_cert.display(),
            tls.server_name
        ),
        Transport::Plaintext => "plaintext".to_string(),
    };
    tracing::info!(
        node = %identity.node_id(),
        control_plane = %control_plane.address,
        transport = %tls,
        because = %control_plane.reason,
        token = ?control_plane.token.as_ref().map(|t| t.path.display().to_string()),
        "starting as an xDS {}",
        node_type.as_str()
    );

    let (subscribe_tx, mut subscribe_rx) =
        mpsc::unbounded_channel::<(&'static str, BTreeSet<String>)>();
    let agent = Arc::new(Mutex::new(Agent {
        state: XdsState::default(),
        base,
        control_plane: control_plane.address.clone(),
        live: running.live.clone(),
        admin: running.admin.clone(),
        subscribed_eds: BTreeSet::new(),
        subscribed_rds: BTreeSet::new(),
        subscribe: subscribe_tx,
        seen: BTreeSet::new(),
        waiting_since: None,
        given_up: BTreeSet::new(),
        certificates: certificates.clone(),
    }));
    if let Some(mut certificates) = certificates {
        // The first certificate may come after the first configuration: ready then.
        let cert_agent = agent.clone();
        tokio::spawn(async move {
            while certificates.borrow_and_update().is_none() {
                if certificates.changed().await.is_err() {
                    return;
                }
            }
            lock(&cert_agent).mark_ready();
        });
    }
    let mut config = AdsClientConfig::new(control_plane.address.clone(), identity.node())
        .subscribe(CLUSTER, &[])
        .subscribe(LISTENER, &[]);
    config.client_certificate = presented;
    config.transport = control_plane.transport;
    config.token = control_plane.token;
    config.mode = if args.sotw {
        ClientMode::Sotw
    } else {
        ClientMode::Delta
    };
    let handler_agent = agent.clone();
    let client = AdsClient::spawn(config, move |response: &AdsResponse| {
        lock(&handler_agent).on_response(response)
    });
    tokio::spawn(async move {
        while let Some((type_url, names)) = subscribe_rx.recv().await {
            client.subscribe(type_url, names);
        }
    });
    let warm_timeout = Duration::from_secs(args.warm_timeout);
    let timer_agent = agent.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            lock(&timer_agent).apply_if_warming_expired(warm_timeout);
        }
    });
    running.until_drained().await
}

/// The workload certificate `certificates` holds at each connection attempt.
fn presented_certificate(
    certificates: lateen_identity::CertificateWatch,
) -> lateen_xds::client::ClientCertificate {
    lateen_xds::client::ClientCertificate::new(move || {
        let current = certificates.borrow().clone()?;
        Some((current.chain.clone(), current.key.clone_key()))
    })
}

fn lock(agent: &Mutex<Agent>) -> std::sync::MutexGuard<'_, Agent> {
    agent
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Agent {
    /// Accepted (ACKed) resources; the running configuration was assembled from them.
    state: XdsState,
    base: ProxyConfig,
    control_plane: String,
    live: Arc<LiveConfig>,
    admin: Arc<AdminState>,
    subscribed_eds: BTreeSet<String>,
    subscribed_rds: BTreeSet<String>,
    subscribe: mpsc::UnboundedSender<(&'static str, BTreeSet<String>)>,
    /// Types received at least once: ready needs CDS and LDS.
    seen: BTreeSet<String>,
    /// Since when the accepted state waits for EDS/RDS resources before it is applied.
    waiting_since: Option<Instant>,
    /// Resources that did not come within the warm timeout: later updates do not wait for
    /// them again (until they arrive, they stay empty).
    given_up: BTreeSet<String>,
    /// The workload certificate, when the proxy has a source for one: ready needs it too.
    certificates: Option<lateen_identity::CertificateWatch>,
}

impl Agent {
    fn on_response(&mut self, response: &AdsResponse) -> Result<(), String> {
        let kind = short_name(response.type_url()).to_string();
        let mut next = self
            .state
            .with_response(response)
            .inspect_err(|detail| tracing::warn!(%detail, "rejected {kind} update"))?;
        next.forget_unwanted();
        let assembled = next.assemble(&self.base, &self.control_plane);
        let names = ModelNames::of(&assembled.config);
        let snapshot = compile(assembled.config).map_err(|problems| {
            let detail = format!(
                "{kind} update makes the configuration invalid: {}",
                problems
                    .iter()
                    .map(|problem| names.describe(problem))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            tracing::warn!(%detail, "rejected {kind} update");
            detail
        })?;
        self.given_up
            .retain(|name| assembled.warming.contains(name));
        let waiting: Vec<&String> = assembled
            .warming
            .iter()
            .filter(|name| !self.given_up.contains(*name))
            .collect();
        if waiting.is_empty() {
            self.live.apply(snapshot).map_err(|err| {
                let detail = format!("{kind} update cannot be applied: {err}");
                tracing::warn!(%detail, "rejected {kind} update");
                detail
            })?;
            self.waiting_since = None;
        } else {
            tracing::debug!(?waiting, "holding the update until its resources arrive");
            self.waiting_since.get_or_insert_with(Instant::now);
        }
        self.state = next;
        self.seen.insert(kind.clone());
        tracing::info!("accepted {kind} update");
        self.resubscribe();
        if self.waiting_since.is_none() {
            self.mark_ready();
        }
        Ok(())
    }

    fn mark_ready(&self) {
        if !(self.seen.contains("CDS") && self.seen.contains("LDS")) {
            return;
        }
        if self
            .certificates
            .as_ref()
            .is_some_and(|certificates| certificates.borrow().is_none())
        {
            tracing::debug!("configuration applied; waiting for the workload certificate");
            return;
        }
        if !self.admin.ready.swap(true, Ordering::Relaxed) {
            tracing::info!("first configuration applied: ready");
        }
    }

    fn resubscribe(&mut self) {
        let (eds, rds) = self.state.wanted();
        if eds != self.subscribed_eds {
            let _ = self.subscribe.send((ENDPOINT, eds.clone()));
            self.subscribed_eds = eds;
        }
        if rds != self.subscribed_rds {
            let _ = self.subscribe.send((ROUTE, rds.clone()));
            self.subscribed_rds = rds;
        }
    }

    /// Applies a held configuration whose EDS/RDS resources did not come in time, with
    /// them empty, as Envoy does after its initial fetch timeout.
    fn apply_if_warming_expired(&mut self, timeout: Duration) {
        let Some(since) = self.waiting_since else {
            return;
        };
        if since.elapsed() < timeout {
            return;
        }
        self.waiting_since = None;
        let assembled = self.state.assemble(&self.base, &self.control_plane);
        tracing::warn!(missing = ?assembled.warming, "resources did not arrive in {timeout:?}; applying without them");
        self.given_up.extend(assembled.warming.iter().cloned());
        match compile(assembled.config) {
            Ok(snapshot) => match self.live.apply(snapshot) {
                Ok(()) => self.mark_ready(),
                Err(err) => tracing::warn!("cannot apply the held configuration: {err}"),
            },
            Err(problems) => tracing::warn!("held configuration is invalid: {problems:?}"),
        }
    }
}

/// Names of the assembled configuration's parts, so compile problems (located by model
/// paths like `listeners[3].address`) can name the xDS resource instead.
struct ModelNames {
    listeners: Vec<String>,
    route_configs: Vec<String>,
    clusters: Vec<String>,
}

impl ModelNames {
    fn of(config: &ProxyConfig) -> ModelNames {
        ModelNames {
            listeners: config
                .listeners
                .iter()
                .map(|listener| listener.name.clone())
                .collect(),
            route_configs: config
                .route_configs
                .iter()
                .map(|table| table.name.clone())
                .collect(),
            clusters: config
                .clusters
                .iter()
                .map(|cluster| cluster.name.clone())
                .collect(),
        }
    }

    /// `listeners[3].address: ...` → `Listener "x" (listeners[3].address): ...`.
    fn describe(&self, problem: &crate::config::compile::Problem) -> String {
        let named = [
            ("listeners[", "Listener", &self.listeners),
            ("route_configs[", "RouteConfiguration", &self.route_configs),
            ("clusters[", "Cluster", &self.clusters),
        ]
        .into_iter()
        .find_map(|(prefix, kind, names)| {
            let index: usize = problem
                .path
                .strip_prefix(prefix)?
                .split(']')
                .next()?
                .parse()
                .ok()?;
            names
                .get(index)
                .map(|name| format!("{kind} {name:?} ({})", problem.path))
        });
        format!(
            "{}: {}",
            named.unwrap_or_else(|| problem.path.clone()),
            problem.message
        )
    }
}
