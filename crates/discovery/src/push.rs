//! The control plane's shared state and its push loop.
//!
//! [`ControlPlane`] holds the accepted configuration and the auto-registration candidates,
//! and is the xDS server's [`SnapshotProvider`]: on connect it records a proxy that names a
//! WorkloadGroup and sets its first snapshot. Every change (config edit, proxy joining or leaving) sends a trigger; the
//! debouncer ([`debounce`]) folds a burst of them into one push.
//!
//! A push translates once per distinct [`ProxyView`], not once per proxy: a [`Generation`]
//! (one configuration, the registry built from it, and the snapshots translated so far, by
//! view) hands every proxy with the same view the same shared snapshot. A registry change
//! that leaves every service as it was (a proxy joining that no ServiceEntry selects) keeps
//! the generation and pushes nothing. The xDS cache compares each new snapshot with the
//! current one and wakes only proxies whose resources changed; each stream then sends only
//! the types that changed.
//!
//! Endpoint-only changes (an EndpointSlice written, a pod coming or going) take a short path
//! ([`endpoint_only`]): the registry replaces just the changed services, and each view's next
//! snapshot is its previous one with those services' ClusterLoadAssignments translated again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use lateen_xds::{NackRecord, ProxyNode, Snapshot, SnapshotProvider, XdsServer};
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::registry::{AutoRegistry, EndpointChanges, Registry, Service};
use crate::store::Config;
use crate::translate::{ProxyView, SharedClusters, build_snapshot_shared, selected_label_keys};

mod debounce;
mod endpoint_only;
use debounce::Triggered;
pub use debounce::{DebounceSettings, Trigger, run_debouncer};
use endpoint_only::{ClusterServicesChange, Earlier};

/// One consistent state of the mesh and the snapshots translated from it so far.
pub struct Generation {
    pub config: Arc<Config>,
    /// Counts the configuration changes that matter to translation ([`translated_part`]).
    config_epoch: u64,
    pub registry: Arc<Registry>,
    /// Label keys some resource selects proxies by (the rest do not enter a view).
    label_keys: BTreeSet<String>,
    /// Clusters and endpoints shared between views that only routes tell apart.
    shared: SharedClusters,
    snapshots: Mutex<HashMap<ProxyView, Arc<Snapshot>>>,
    /// The previous generation's snapshots, until this generation's first push is done: what
    /// did not change is taken from them, so it is shared and compares by pointer.
    earlier: Mutex<Option<Earlier>>,
    /// Set when only endpoints changed since `earlier`: views then re-translate only these
    /// services' ClusterLoadAssignments.
    endpoint_changes: Option<EndpointChanges>,
}

impl Generation {
    fn new(
        config: Arc<Config>,
        config_epoch: u64,
        registry: Registry,
        previous: Option<&Generation>,
    ) -> Self {
        let earlier = previous.and_then(Earlier::of);
        let endpoint_changes = earlier
            .as_ref()
            .filter(|e| e.config_epoch == config_epoch)
            .and_then(|e| e.registry.endpoint_changes(&registry));
        Self {
            label_keys: selected_label_keys(&config),
            shared: SharedClusters::new(&config),
            config,
            config_epoch,
            registry: Arc::new(registry),
            snapshots: Mutex::new(HashMap::new()),
            earlier: Mutex::new(earlier),
            endpoint_changes,
        }
    }

    /// A proxy's view in this generation.
    pub fn view_of(&self, proxy: &Proxy) -> ProxyView {
        ProxyView::of(proxy, &self.registry, &self.label_keys)
    }

    /// The snapshot of proxies with this view, translated on first use.
    pub fn snapshot(&self, view: ProxyView) -> Arc<Snapshot> {
        if let Some(done) = self.lock().get(&view) {
            return done.clone();
        }
        // Translate without holding the lock (other views need not wait); if another thread
        // translated the same view meanwhile, the first result stays.
        let earlier = self
            .earlier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(|e| e.snapshots.get(&view).cloned());
        let built = match (&self.endpoint_changes, earlier) {
            (Some(changes), Some(earlier)) if endpoint_only::applies(changes, &view) => {
                let changed = self.shared.changed_endpoints(
                    &self.config,
                    &self.registry,
                    &view,
                    &changes.hosts,
                );
                endpoint_only::next_snapshot(&earlier, &changed)
            }
            (_, earlier) => {
                let mut built =
                    build_snapshot_shared(&self.config, &self.registry, &view, &self.shared);
                if let Some(earlier) = earlier {
                    built.share_unchanged(&earlier);
                }
                built
            }
        };
        self.lock().entry(view).or_insert(Arc::new(built)).clone()
    }

    /// Lets go of the previous generation's snapshots.
    fn forget_earlier(&self) {
        *self.earlier.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether this generation differs from the one before only in some services' endpoints
    /// (then how many services).
    pub fn endpoint_only(&self) -> Option<usize> {
        self.endpoint_changes.as_ref().map(|c| c.hosts.len())
    }

    /// Distinct views translated in this generation.
    pub fn views(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProxyView, Arc<Snapshot>>> {
        // Inserts are whole; a panic elsewhere cannot leave the map half-written.
        self.snapshots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Translates the distinct views among `views` on as many threads as there are cores (at
/// most one per view); the results wait in the generation.
fn translate_in_parallel(generation: &Generation, views: &[(&str, ProxyView)]) {
    let distinct: Vec<&ProxyView> = views
        .iter()
        .map(|(_, v)| v)
        .collect::<std::collections::HashSet<_>>()
        .into_iter()
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(distinct.len());
    if threads <= 1 {
        return;
    }
    let chunk = distinct.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for part in distinct.chunks(chunk) {
            scope.spawn(move || {
                for view in part {
                    generation.snapshot((*view).clone());
                }
            });
        }
    });
}

/// The current generation, and whether a change may have made it stale.
#[derive(Default)]
struct GenerationSlot {
    current: Option<Arc<Generation>>,
    stale: bool,
    /// Since the current generation: some change needs the registry merged again from
    /// everything (configuration, proxies, cluster services added or removed).
    remerge: bool,
    /// Since the current generation: cluster services that changed in place (the registry
    /// replaces just these when nothing else changed).
    changed_hosts: BTreeSet<String>,
    /// The generation of the last push (a push with nothing new does nothing).
    pushed: Option<Arc<Generation>>,
}

/// Shared control-plane state.
pub struct ControlPlane {
    config: RwLock<Arc<Config>>,
    /// Bumped (under `config`'s write lock) by each configuration change that matters to
    /// translation.
    config_epoch: AtomicU64,
    /// Services of the Kubernetes cluster (`crate::kube`), merged into the registry.
    cluster_services: RwLock<Arc<Vec<Arc<Service>>>>,
    autoreg: AutoRegistry,
    xds: OnceLock<XdsServer>,
    webhook: OnceLock<Arc<lateen_inject::webhook::WebhookState>>,
    cluster: OnceLock<Arc<crate::kube::ClusterState>>,
    triggers: mpsc::UnboundedSender<Triggered>,
    metrics: Arc<Metrics>,
    generation: Mutex<GenerationSlot>,
    readiness: Arc<crate::readiness::Readiness>,
    /// The dashboard's window of the proxies' metrics.
    traffic: Arc<crate::dashboard::Traffic>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane").finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// A control plane on `config`; the receiver feeds [`run_debouncer`].
    pub fn new(config: Config, grace: Duration) -> (Arc<Self>, mpsc::UnboundedReceiver<Triggered>) {
        let (triggers, rx) = mpsc::unbounded_channel();
        let cp = Arc::new(Self {
            config: RwLock::new(Arc::new(config)),
            config_epoch: AtomicU64::new(0),
            cluster_services: RwLock::new(Arc::new(Vec::new())),
            autoreg: AutoRegistry::new(grace),
            xds: OnceLock::new(),
            webhook: OnceLock::new(),
            cluster: OnceLock::new(),
            triggers,
            metrics: Arc::new(Metrics::default()),
            generation: Mutex::new(GenerationSlot::default()),
            readiness: crate::readiness::Readiness::new(),
            traffic: Arc::default(),
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

    /// The conditions `/ready` waits for (register yours before the debug server starts).
    pub fn readiness(&self) -> &Arc<crate::readiness::Readiness> {
        &self.readiness
    }

    /// Records what the cluster source publishes (namespace labels, kubelet versions, refused
    /// Istio objects), for whoever holds the control plane.
    pub fn attach_cluster(&self, state: Arc<crate::kube::ClusterState>) {
        let _ = self.cluster.set(state);
    }

    /// The cluster source's state, when lateend reads a cluster.
    pub fn cluster(&self) -> Option<&Arc<crate::kube::ClusterState>> {
        self.cluster.get()
    }

    pub fn xds(&self) -> Option<&XdsServer> {
        self.xds.get()
    }

    /// The proxies' recent metrics, for the dashboard's service graph.
    pub fn traffic(&self) -> &Arc<crate::dashboard::Traffic> {
        &self.traffic
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Auto-registration's verdicts and removals so far (istiod's `auto_registration_*`).
    pub fn auto_registration_counts(&self) -> &crate::registry::AutoRegistrationCounts {
        self.autoreg.counts()
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
            if relevant {
                self.config_epoch.fetch_add(1, Ordering::Relaxed);
            }
            *current = config;
            relevant
        };
        if relevant {
            self.trigger(Trigger::Config);
        } else {
            tracing::debug!("config change does not affect any proxy; no push");
        }
    }

    /// Replaces the cluster's services (sorted by hostname) and asks for a push when they
    /// changed. The registry merges them with ServiceEntry services ([`Registry::build_with`]).
    /// Services that did not change stay shared with the registry.
    pub fn set_cluster_services<S: Into<Arc<Service>>>(
        &self,
        services: impl IntoIterator<Item = S>,
    ) {
        let services: Vec<Arc<Service>> = services.into_iter().map(Into::into).collect();
        {
            // The slot first, as `generation` takes them: the services and what changed in
            // them are recorded together.
            let mut slot = self.slot();
            let mut current = self
                .cluster_services
                .write()
                .unwrap_or_else(|p| p.into_inner());
            let (next, change) = endpoint_only::share_unchanged_services(&current, services);
            match change {
                ClusterServicesChange::None => return,
                ClusterServicesChange::InPlace(hosts) => slot.changed_hosts.extend(hosts),
                ClusterServicesChange::AddedOrRemoved => slot.remerge = true,
            }
            *current = Arc::new(next);
            slot.stale = true;
        }
        self.send_trigger(Trigger::Registry);
    }

    /// Asks for a push after a change that needs the registry merged again.
    fn trigger(&self, t: Trigger) {
        {
            let mut slot = self.slot();
            slot.stale = true;
            slot.remerge = true;
        }
        self.send_trigger(t);
    }

    /// Counts the trigger under istiod's `pilot_push_triggers{type}` and wakes the debouncer.
    fn send_trigger(&self, t: Trigger) {
        self.metrics.count_trigger(t);
        let _ = self.triggers.send(Triggered::now(t));
    }

    /// The configuration and its epoch, read together.
    fn config_and_epoch(&self) -> (Arc<Config>, u64) {
        let config = self.config.read().unwrap_or_else(|p| p.into_inner());
        (config.clone(), self.config_epoch.load(Ordering::Relaxed))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, GenerationSlot> {
        // Every write to the slot is a single assignment.
        self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation of the configuration and registry as of now: the current one unless a
    /// change made it stale and the rebuilt registry or the translated configuration actually
    /// differs. When only cluster services changed in place, the registry replaces just them.
    pub fn generation(&self) -> Arc<Generation> {
        let mut slot = self.slot();
        if let Some(current) = &slot.current
            && !slot.stale
        {
            return current.clone();
        }
        let (config, epoch) = self.config_and_epoch();
        let cluster = self
            .cluster_services
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let remerge = std::mem::take(&mut slot.remerge);
        let changed_hosts = std::mem::take(&mut slot.changed_hosts);
        let registry = slot
            .current
            .as_ref()
            .filter(|current| !remerge && current.config_epoch == epoch)
            .and_then(|current| {
                current
                    .registry
                    .with_cluster_changes(&cluster, &changed_hosts)
            })
            .unwrap_or_else(|| {
                Registry::build_with(&config, &self.autoreg.admitted(&config), &cluster)
            });
        slot.stale = false;
        if let Some(current) = &slot.current
            && current.config_epoch == epoch
            && *current.registry == registry
        {
            return current.clone();
        }
        let next = Arc::new(Generation::new(
            config,
            epoch,
            registry,
            slot.current.as_deref(),
        ));
        slot.current = Some(next.clone());
        next
    }

    /// The registry as of now.
    pub fn registry(&self) -> Arc<Registry> {
        self.generation().registry.clone()
    }

    /// The snapshot a proxy should have now (shared with every proxy of the same view).
    pub fn snapshot_for_proxy(&self, proxy: &Proxy) -> Arc<Snapshot> {
        let generation = self.generation();
        generation.snapshot(generation.view_of(proxy))
    }

    /// Sets every connected proxy's snapshot (once per node id) from the current generation;
    /// returns how many proxies, or 0 when nothing changed since the last push.
    pub fn push_all(&self) -> usize {
        let Some(xds) = self.xds.get() else {
            return 0;
        };
        let started = Instant::now();
        let generation = self.generation();
        {
            let mut slot = self.slot();
            if slot
                .pushed
                .as_ref()
                .is_some_and(|p| Arc::ptr_eq(p, &generation))
            {
                tracing::debug!("nothing any proxy sees changed; no push");
                return 0;
            }
            slot.pushed = Some(generation.clone());
        }
        let nodes: BTreeMap<String, ProxyNode> = xds
            .registry()
            .connections()
            .into_iter()
            .map(|c| (c.node.id.clone(), c.node))
            .collect();
        let views: Vec<(&str, ProxyView)> = nodes
            .values()
            .map(|node| {
                (
                    node.id.as_str(),
                    generation.view_of(&Proxy::from_node(node)),
                )
            })
            .collect();
        translate_in_parallel(&generation, &views);
        for (id, view) in views {
            xds.cache().set_shared(id, generation.snapshot(view));
        }
        generation.forget_earlier();
        self.metrics
            .push_computations
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            proxies = nodes.len(),
            views = generation.views(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            endpoint_only_services = generation.endpoint_only(),
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
    fn snapshot_for(&self, node: &ProxyNode) -> Option<Arc<Snapshot>> {
        Some(self.snapshot_for_proxy(&Proxy::from_node(node)))
    }

    fn on_connect(
        &self,
        node: &ProxyNode,
        _connection_id: u64,
        identity: Option<&lateen_xds::VerifiedIdentity>,
    ) {
        let proxy = Proxy::from_node(node);
        let changed = self.autoreg.connect(&proxy, identity);
        if changed {
            // The proxy may be an instance of a service now: look again before translating.
            self.trigger(Trigger::Registry);
        }
        // Always set: a cached snapshot may predate config changes made while the proxy was
        // away, and its metadata may differ from last time.
        if let Some(xds) = self.xds.get() {
            xds.cache()
                .set_shared(&node.id, self.snapshot_for_proxy(&proxy));
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

/// The part of the configuration that translation reads: MeshConfig, the networking
/// resources and the security resources (PeerAuthentication, AuthorizationPolicy,
/// RequestAuthentication).
fn translated_part(config: &Config) -> (&lateen_api::MeshConfig, Vec<&lateen_api::Resource>) {
    let resources = config.resources.iter().collect();
    (&config.mesh, resources)
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
    async fn endpoint_churn_is_pushed_every_max_registry_and_config_waits_for_max() {
        let (cp, rx) = ControlPlane::new(Config::default(), Duration::from_secs(10));
        cp.attach(XdsServer::new(None));
        tokio::spawn(run_debouncer(cp.clone(), rx, DebounceSettings::default()));

        // Registry changes every 20 ms for 2.5 s (a busy cluster): a push every 250 ms,
        // not one a second.
        for i in 0..125 {
            cp.set_cluster_services(vec![bare_service(&format!("churn-{i}"))]);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let registry_pushes = pushes(&cp);
        assert!(
            (9..=11).contains(&registry_pushes),
            "{registry_pushes} pushes in 2.5 s of endpoint churn"
        );

        // A config change inside the churn makes the window the config's (`max`, 1 s).
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = pushes(&cp);
        cp.set_config(Arc::new(config_with(1)));
        for i in 0..40 {
            cp.set_cluster_services(vec![bare_service(&format!("again-{i}"))]);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            pushes(&cp) - before,
            0,
            "the config window is still open at 800 ms"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(pushes(&cp) - before >= 1);
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

        // The same configuration again (a new value, e.g. a rewritten file with the same
        // content) does not push: every kind lateend reads is translated now, so the
        // translated part compares equal and the epoch stays.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = pushes(&cp);
        let same = config_with(54);
        cp.set_config(Arc::new(same));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(pushes(&cp), before);
    }

    fn node(ip: &str, app: &str, namespace: &str) -> ProxyNode {
        ProxyNode {
            id: format!("sidecar~{ip}~{app}-1.{namespace}~{namespace}.svc.cluster.local"),
            cluster: String::new(),
            metadata: serde_json::json!({"NAMESPACE": namespace, "INTERCEPTION_MODE": "REDIRECT", "LABELS": {"app": app}}),
            user_agent: String::new(),
        }
    }

    #[tokio::test]
    async fn proxies_with_one_view_share_one_snapshot_and_joining_pushes_nothing() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints: [{address: 10.9.0.1}]\n";
        let loaded = lateen_api::load(yaml, "se.yaml").unwrap_or_else(|e| panic!("{e}"));
        let config = Config {
            resources: loaded.resources().cloned().collect(),
            ..Config::default()
        };
        let (cp, _rx) = ControlPlane::new(config, Duration::from_secs(10));
        cp.attach(XdsServer::new(None));
        let xds = cp.xds().unwrap_or_else(|| panic!("attached"));

        let (a, b) = (
            node("10.0.0.1", "web", "default"),
            node("10.0.0.2", "api", "default"),
        );
        cp.on_connect(&a, 1, None);
        let first = cp.generation();
        cp.on_connect(&b, 2, None);
        // b names no WorkloadGroup: not registered, same services, same generation.
        assert!(Arc::ptr_eq(&first, &cp.generation()));
        let snapshot = |n: &ProxyNode| {
            xds.cache()
                .snapshot(&n.id)
                .unwrap_or_else(|| panic!("snapshot of {}", n.id))
        };
        // Different IPs and an `app` label nothing selects on: one translation, shared.
        assert!(Arc::ptr_eq(&snapshot(&a), &snapshot(&b)));
        assert_eq!(first.views(), 1);

        let other = node("10.0.0.3", "web", "prod");
        cp.on_connect(&other, 3, None);
        assert!(
            !Arc::ptr_eq(&snapshot(&a), &snapshot(&other)),
            "another namespace is another view"
        );
        assert!(
            snapshot(&a)
                .get(
                    lateen_xds::types::CLUSTER,
                    "outbound|9080||reviews.default.svc.cluster.local"
                )
                .is_some()
        );
    }

    #[tokio::test]
    async fn views_told_apart_by_routes_only_share_clusters() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints: [{address: 10.9.0.1}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews]\n  http:\n  - match: [{sourceLabels: {app: web}}]\n    timeout: 3s\n    route: [{destination: {host: reviews}}]\n  - route: [{destination: {host: reviews}}]\n";
        let loaded = lateen_api::load(yaml, "mesh.yaml").unwrap_or_else(|e| panic!("{e}"));
        let config = Config {
            resources: loaded.resources().cloned().collect(),
            ..Config::default()
        };
        let (cp, _rx) = ControlPlane::new(config, Duration::from_secs(10));
        let generation = cp.generation();
        let web = generation
            .snapshot(generation.view_of(&Proxy::from_node(&node("10.0.0.1", "web", "default"))));
        let api = generation
            .snapshot(generation.view_of(&Proxy::from_node(&node("10.0.0.2", "api", "default"))));
        assert_eq!(
            generation.views(),
            2,
            "sourceLabels on app tells them apart"
        );
        let route = |s: &Snapshot| {
            s.get(lateen_xds::types::ROUTE, "9080")
                .map(|r| r.version.clone())
        };
        assert_ne!(route(&web), route(&api));
        let cluster = "outbound|9080||reviews.default.svc.cluster.local";
        let (a, b) = (
            web.get(lateen_xds::types::CLUSTER, cluster)
                .unwrap_or_else(|| panic!("web cluster")),
            api.get(lateen_xds::types::CLUSTER, cluster)
                .unwrap_or_else(|| panic!("api cluster")),
        );
        assert!(
            Arc::ptr_eq(&a.resource, &b.resource),
            "one encoded cluster for both views"
        );
    }

    /// A config whose only VirtualService differs by `i`.
    /// A cluster service with nothing but a name, in `default`.
    fn bare_service(name: &str) -> crate::registry::Service {
        crate::registry::Service {
            hostname: format!("{name}.default.svc.cluster.local"),
            namespace: "default".into(),
            ports: Vec::new(),
            resolution: lateen_api::networking::Resolution::Static,
            addresses: Vec::new(),
            instances: Vec::new(),
            export_to: Vec::new(),
        }
    }

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
