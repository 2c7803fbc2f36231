//! The control plane's shared state and its push loop.
//!
//! [`ControlPlane`] holds the accepted configuration and the self-registered workloads, and is
//! the xDS server's [`SnapshotProvider`]: on connect it registers the proxy and sets its first
//! snapshot. Every change (config edit, proxy joining or leaving) sends a trigger; the
//! debouncer ([`run_debouncer`]) waits for a quiet period (`--debounce-after`, 100 ms) but
//! never longer than `--debounce-max` (1 s) after the first trigger, then recomputes the
//! snapshot of every connected proxy. The xDS cache compares each new snapshot with the
//! current one and wakes only proxies whose resources changed; each stream then sends only
//! the types that changed.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use lateen_xds::{NackRecord, ProxyNode, Snapshot, SnapshotProvider, XdsServer};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::registry::{AutoRegistry, Registry};
use crate::store::Config;
use crate::translate::build_snapshot;

/// Why a push was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Config,
    Registry,
}

/// Debounce timings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebounceSettings {
    /// Quiet period after the last trigger.
    pub after: Duration,
    /// Longest wait after the first trigger.
    pub max: Duration,
}

impl Default for DebounceSettings {
    fn default() -> Self {
        Self {
            after: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }
}

/// Shared control-plane state.
pub struct ControlPlane {
    config: RwLock<Arc<Config>>,
    autoreg: AutoRegistry,
    xds: OnceLock<XdsServer>,
    webhook: OnceLock<Arc<lateen_inject::webhook::WebhookState>>,
    triggers: mpsc::UnboundedSender<Trigger>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane").finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// A control plane on `config`; the receiver feeds [`run_debouncer`].
    pub fn new(config: Config, grace: Duration) -> (Arc<Self>, mpsc::UnboundedReceiver<Trigger>) {
        let (triggers, rx) = mpsc::unbounded_channel();
        let cp = Arc::new(Self {
            config: RwLock::new(Arc::new(config)),
            autoreg: AutoRegistry::new(grace),
            xds: OnceLock::new(),
            webhook: OnceLock::new(),
            triggers,
            metrics: Arc::new(Metrics::default()),
        });
        (cp, rx)
    }

    /// Connects the xDS server (created with this control plane as its provider).
    pub fn attach(&self, xds: XdsServer) {
        let _ = self.xds.set(xds);
    }

    /// Records the running injection webhook (for its metrics).
    pub fn attach_webhook(&self, state: Arc<lateen_inject::webhook::WebhookState>) {
        let _ = self.webhook.set(state);
    }

    pub fn webhook(&self) -> Option<&Arc<lateen_inject::webhook::WebhookState>> {
        self.webhook.get()
    }

    pub fn xds(&self) -> Option<&XdsServer> {
        self.xds.get()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the configuration and asks for a push, unless nothing the translation reads
    /// changed (for example only security policies, which are not translated yet).
    pub fn set_config(&self, config: Arc<Config>) {
        let relevant = {
            let mut current = self.config.write().unwrap_or_else(|p| p.into_inner());
            let relevant = translated_part(&current) != translated_part(&config);
            *current = config;
            relevant
        };
        if relevant {
            self.trigger(Trigger::Config);
        } else {
            tracing::debug!("config change does not affect any proxy; no push");
        }
    }

    fn trigger(&self, t: Trigger) {
        self.metrics.push_triggers.fetch_add(1, Ordering::Relaxed);
        let _ = self.triggers.send(t);
    }

    /// The registry as of now.
    pub fn registry(&self) -> Registry {
        Registry::build(&self.config(), &self.autoreg.workloads())
    }

    /// The snapshot a proxy should have now.
    pub fn snapshot_for_proxy(&self, proxy: &Proxy) -> Snapshot {
        let config = self.config();
        let registry = Registry::build(&config, &self.autoreg.workloads());
        build_snapshot(&config, &registry, proxy)
    }

    /// Recomputes every connected proxy's snapshot (once per node id); returns how many.
    pub fn push_all(&self) -> usize {
        let Some(xds) = self.xds.get() else {
            return 0;
        };
        let started = Instant::now();
        let config = self.config();
        let registry = Registry::build(&config, &self.autoreg.workloads());
        let nodes: BTreeMap<String, ProxyNode> = xds
            .registry()
            .connections()
            .into_iter()
            .map(|c| (c.node.id.clone(), c.node))
            .collect();
        for node in nodes.values() {
            let proxy = Proxy::from_node(node);
            xds.set_snapshot(&node.id, build_snapshot(&config, &registry, &proxy));
        }
        self.metrics
            .push_computations
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            proxies = nodes.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "push computed"
        );
        nodes.len()
    }

    /// Drops workloads whose grace period ended and asks for a push if any did.
    pub fn expire_workloads(&self, now: Instant) {
        let expired = self.autoreg.expire(now);
        if expired.is_empty() {
            return;
        }
        if let Some(xds) = self.xds.get() {
            for id in &expired {
                if xds.registry().connections_of(id).is_empty() {
                    xds.cache().clear(id);
                }
            }
        }
        self.trigger(Trigger::Registry);
    }

    pub fn note_rejected(&self, files: u64) {
        self.metrics
            .config_rejected
            .fetch_add(files, Ordering::Relaxed);
    }
}

impl SnapshotProvider for ControlPlane {
    fn snapshot_for(&self, node: &ProxyNode) -> Option<Snapshot> {
        Some(self.snapshot_for_proxy(&Proxy::from_node(node)))
    }

    fn on_connect(&self, node: &ProxyNode, _connection_id: u64) {
        let proxy = Proxy::from_node(node);
        let changed = self.autoreg.connect(&proxy);
        // Always recompute: a cached snapshot may predate config changes made while the proxy
        // was away, and its metadata may differ from last time.
        if let Some(xds) = self.xds.get() {
            xds.set_snapshot(&node.id, self.snapshot_for_proxy(&proxy));
        }
        if changed {
            self.trigger(Trigger::Registry);
        }
    }

    fn on_disconnect(&self, node: &ProxyNode, _connection_id: u64) {
        self.autoreg.disconnect(&node.id, Instant::now());
    }

    fn on_nack(&self, node_id: &str, type_url: &str, nack: &NackRecord) {
        tracing::warn!(
            proxy = %node_id,
            type_url = %type_url,
            rejected_version = %nack.rejected_version,
            reason = %nack.error_detail,
            "proxy rejected configuration (NACK)"
        );
    }
}

/// The part of the configuration that translation reads: MeshConfig and the networking
/// resources (security resources do not reach proxies yet).
fn translated_part(config: &Config) -> (&lateen_api::MeshConfig, Vec<&lateen_api::Resource>) {
    use lateen_api::Resource;
    let resources = config
        .resources
        .iter()
        .filter(|r| {
            !matches!(
                r,
                Resource::PeerAuthentication(_)
                    | Resource::AuthorizationPolicy(_)
                    | Resource::RequestAuthentication(_)
            )
        })
        .collect();
    (&config.mesh, resources)
}

/// Debounces triggers and pushes; returns when every sender is gone.
pub async fn run_debouncer(
    cp: Arc<ControlPlane>,
    mut rx: mpsc::UnboundedReceiver<Trigger>,
    settings: DebounceSettings,
) {
    while rx.recv().await.is_some() {
        let first = tokio::time::Instant::now();
        let mut last = first;
        let mut open = true;
        while open {
            let deadline = (last + settings.after).min(first + settings.max);
            tokio::select! {
                t = rx.recv() => match t {
                    Some(_) => last = tokio::time::Instant::now(),
                    None => open = false,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        // Translation is CPU work: keep it off the threads that serve the xDS streams.
        let pushing = cp.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || pushing.push_all()).await {
            tracing::error!(error = %e, "push computation failed");
        }
        if !open {
            return;
        }
    }
}

/// Checks every second for registered proxies whose grace period ended.
pub async fn run_expiry(cp: Arc<ControlPlane>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticker.tick().await;
        cp.expire_workloads(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pushes(cp: &ControlPlane) -> u64 {
        cp.metrics().push_computations.load(Ordering::Relaxed)
    }

    #[tokio::test(start_paused = true)]
    async fn debounce_waits_for_quiet_but_not_longer_than_max() {
        let (cp, rx) = ControlPlane::new(Config::default(), Duration::from_secs(10));
        cp.attach(XdsServer::new(None));
        let settings = DebounceSettings::default();
        tokio::spawn(run_debouncer(cp.clone(), rx, settings));

        // A burst of changes 50 ms apart: one push, 100 ms after the last.
        for i in 0..5 {
            cp.set_config(Arc::new(config_with(i)));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(pushes(&cp), 0);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(pushes(&cp), 1);

        // Changes that never pause: still pushed once per `max` (1 s).
        for i in 5..55 {
            cp.set_config(Arc::new(config_with(i)));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let during = pushes(&cp) - 1;
        assert!(
            (2..=3).contains(&during),
            "{during} pushes in 2.5 s of constant changes"
        );

        // A change only to what is not translated does not push.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = pushes(&cp);
        let mut same = config_with(54);
        same.resources.extend(
            lateen_api::load(
                "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: default}\nspec: {mtls: {mode: STRICT}}\n",
                "pa.yaml",
            )
            .unwrap_or_else(|e| panic!("{e}"))
            .resources()
            .cloned(),
        );
        cp.set_config(Arc::new(same));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(pushes(&cp), before);
    }

    /// A config whose only VirtualService differs by `i`.
    fn config_with(i: u32) -> Config {
        let yaml = format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r, namespace: default}}\nspec:\n  hosts: [reviews]\n  http:\n  - timeout: {}s\n    route: [{{destination: {{host: reviews}}}}]\n",
            i + 1
        );
        let loaded = lateen_api::load(&yaml, "vs.yaml").unwrap_or_else(|e| panic!("{e}"));
        Config {
            resources: loaded.resources().cloned().collect(),
            ..Config::default()
        }
    }
}
