//! Starting and stopping the whole proxy: bind the configured listeners, start the workers
//! and the admin servers, and drain on SIGTERM/SIGINT or `/quitquitquit`.

use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

use crate::admin::{self, AdminRole, AdminState};
use crate::config::{ConfigStore, Snapshot};
use crate::drain::Drain;
use crate::metrics::Metrics;
use crate::net::orig_dst::{OriginalDst, SoOriginalDst};
use crate::worker::{BoundListener, ListenerSet, Shared, spawn_workers};

pub struct ProxyOptions {
    /// Worker threads (Envoy's `--concurrency`).
    pub concurrency: usize,
    pub original_dst: Arc<dyn OriginalDst>,
    /// The workload certificate for mesh mTLS (inbound `mtls` listeners, `tls` clusters).
    pub certificates: Option<lateen_identity::CertificateWatch>,
    /// Distinct label sets kept per group of Istio metrics (HTTP, TCP); more are dropped and
    /// counted in `lateen.metrics_series_dropped`.
    pub max_metric_series: usize,
    /// Overload protection: the downstream and upstream connection caps.
    pub overload: crate::overload::OverloadLimits,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            original_dst: Arc::new(SoOriginalDst),
            certificates: None,
            max_metric_series: crate::series_cap::DEFAULT_MAX_SERIES,
            overload: crate::overload::OverloadLimits::default(),
        }
    }
}

/// Binds one listener socket. IPv6 wildcard sockets are v6-only so an IPv4 listener can
/// share the port.
pub fn bind_listener(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into()).map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!("cannot bind listener address {address}: {err}"),
        )
    })?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// The bound listener set for `snapshot`: a listener whose address is already bound in
/// `current` keeps that socket (renamed if need be; a port-0 listener only under its own
/// name), so a configuration change never has to rebind a port it still uses; new
/// addresses are bound now.
fn bind_for(snapshot: &Snapshot, current: &[BoundListener]) -> std::io::Result<Vec<BoundListener>> {
    snapshot
        .listeners
        .iter()
        .filter(|listener| listener.bind)
        .map(|listener| {
            let reusable = |bound: &&BoundListener| {
                bound.configured == listener.address
                    && (listener.address.port() != 0 || bound.name == listener.name)
            };
            if let Some(existing) = current.iter().find(reusable) {
                return Ok(BoundListener {
                    name: listener.name.clone(),
                    ..existing.clone()
                });
            }
            let socket = bind_listener(listener.address)?;
            let address = socket.local_addr()?;
            Ok(BoundListener {
                name: listener.name.clone(),
                configured: listener.address,
                address,
                socket: Arc::new(socket),
            })
        })
        .collect()
}

/// Applies whole new snapshots to a running proxy: binds the listeners it adds, swaps the
/// configuration, then tells the workers which listeners to accept on (removed listeners
/// stop accepting and their sockets close once no worker holds them).
pub struct LiveConfig {
    shared: Arc<Shared>,
    listeners: std::sync::Mutex<watch::Sender<ListenerSet>>,
}

impl LiveConfig {
    /// Fails, leaving the running configuration untouched, when a new listener address
    /// cannot be bound.
    pub fn apply(&self, snapshot: Snapshot) -> std::io::Result<()> {
        let sender = self
            .listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = sender.borrow().clone();
        let bound = bind_for(&snapshot, &current)?;
        crate::tls::warn_without_certificates(&snapshot, self.shared.mesh_tls.is_some());
        self.shared.config.replace(snapshot);
        let changed = bound.len() != current.len()
            || bound
                .iter()
                .zip(current.iter())
                .any(|(new, old)| new.name != old.name || new.address != old.address);
        if changed {
            for listener in bound
                .iter()
                .filter(|listener| !current.iter().any(|old| old.address == listener.address))
            {
                tracing::info!(listener = %listener.name, address = %listener.address, "listening");
            }
            sender.send_replace(Arc::new(bound));
        }
        Ok(())
    }

    /// The configuration store the data path reads.
    pub fn store(&self) -> &Arc<ConfigStore> {
        &self.shared.config
    }
}

/// A proxy whose listeners, workers and admin servers run; see [`start`].
pub struct Running {
    pub live: Arc<LiveConfig>,
    pub admin: Arc<AdminState>,
    shared: Arc<Shared>,
    drain_timeout: Duration,
    _workers: Vec<std::thread::JoinHandle<()>>,
}

/// Runs the proxy on the current (main) runtime until it has drained.
pub async fn run(snapshot: Snapshot, options: ProxyOptions) -> anyhow::Result<()> {
    let running = start(snapshot, options).await?;
    running.admin.ready.store(true, Ordering::Relaxed);
    running.until_drained().await
}

/// Binds the snapshot's listeners and starts the admin servers and the workers. The proxy
/// reports not ready until the caller sets `admin.ready`.
pub async fn start(snapshot: Snapshot, options: ProxyOptions) -> anyhow::Result<Running> {
    let drain_timeout = snapshot.source.drain_timeout;
    let admin_config = snapshot.source.admin.clone();
    let bound = bind_for(&snapshot, &[])?;
    crate::tls::warn_without_certificates(&snapshot, options.certificates.is_some());
    let config = Arc::new(ConfigStore::new(snapshot));
    crate::trace::export::install(config.clone());
    let (drain, drain_watch) = Drain::new();
    let shared = Arc::new(Shared {
        config,
        metrics: Arc::new(Metrics::with_max_series(options.max_metric_series)),
        drain,
        drain_watch,
        original_dst: options.original_dst,
        mesh_tls: options
            .certificates
            .map(|watch| Arc::new(crate::tls::MeshTls::new(watch))),
        downstream: crate::overload::DownstreamLimit::new(
            options.overload.max_downstream_connections,
        ),
        max_upstream_connections_per_worker: options.overload.max_upstream_connections_per_worker,
    });
    tracing::info!(
        max_downstream_connections = ?options.overload.max_downstream_connections,
        max_upstream_connections_per_worker = options.overload.max_upstream_connections_per_worker,
        "overload protection"
    );
    let (listeners_tx, listeners_rx) = watch::channel::<ListenerSet>(Arc::new(bound));
    let state = Arc::new(AdminState {
        shared: shared.clone(),
        ready: false.into(),
        listeners: listeners_rx.clone(),
    });
    for (address, role, what) in [
        (admin_config.address, AdminRole::Admin, "admin"),
        (admin_config.health_address, AdminRole::Health, "health"),
        (admin_config.metrics_address, AdminRole::Metrics, "metrics"),
    ] {
        let listener = admin::bind(address, what).await?;
        tokio::spawn(admin::serve(listener, role, state.clone()));
    }
    let workers = spawn_workers(
        options.concurrency.max(1),
        shared.clone(),
        listeners_rx.clone(),
    )?;
    for listener in listeners_rx.borrow().iter() {
        tracing::info!(listener = %listener.name, address = %listener.address, "listening");
    }
    let live = Arc::new(LiveConfig {
        shared: shared.clone(),
        listeners: std::sync::Mutex::new(listeners_tx),
    });
    Ok(Running {
        live,
        admin: state,
        shared,
        drain_timeout,
        _workers: workers,
    })
}

impl Running {
    /// Waits for SIGTERM/SIGINT or `/quitquitquit`, then drains.
    pub async fn until_drained(self) -> anyhow::Result<()> {
        let shared = self.shared;
        let drain_timeout = self.drain_timeout;
        wait_for_stop(&shared).await;
        tracing::info!("draining: no new connections; in-flight requests have {drain_timeout:?}");
        shared.drain.start();
        let deadline = tokio::time::Instant::now() + drain_timeout;
        while shared
            .metrics
            .stats
            .downstream_cx_active
            .load(Ordering::Relaxed)
            > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = shared
            .metrics
            .stats
            .downstream_cx_active
            .load(Ordering::Relaxed);
        if left > 0 {
            tracing::warn!("drain deadline passed with {left} connections open; closing them");
        } else {
            tracing::info!("drained");
        }
        Ok(())
    }
}

async fn wait_for_stop(shared: &Shared) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut drain = shared.drain_watch.clone();
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        drain.signaled().await;
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
        _ = drain.signaled() => {}
    }
}
