//! The cluster source: starts one watch per kind ([`super::watch`]), keeps what they report
//! in one store, and after each change rebuilds — outside the store's lock — the cluster's
//! registry services, its Istio configuration and the shared [`ClusterState`], then hands them
//! to the control plane, whose debouncer pushes.
//!
//! Istio objects: an accepted object replaces its previous version; a refused one is logged
//! (every error, as the folder source logs them), listed in [`ClusterState::rejected`], and
//! its last accepted version, if any, stays in force — also across relists.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use kube::runtime::watcher;
use kube::{Api, Client};
use lateen_api::{MeshConfig, Resource};
use tokio::sync::Notify;

use super::istio::{self, RejectedObject};
use super::mesh::{self, DiscoverySelectors, InjectorTexts};
use super::objects::{NodeInfo, PodInfo, ServiceInfo, SliceInfo, namespace_labels};
use super::service_cache::{Dirty, ServiceCache};
use super::services::ClusterObjects;
use super::state::ClusterState;
use super::watch::{self, Change};
use crate::push::ControlPlane;
use crate::store::sources::ConfigSources;
use crate::webhook::WebhookFiles;

/// How long after a change the rebuild waits for more changes to fold in. Short: a rebuild
/// converts only the Services that changed, and the push debouncer does the real batching.
const REBUILD_BATCH: std::time::Duration = std::time::Duration::from_millis(30);

/// One Istio kind's objects.
#[derive(Debug, Default)]
struct IstioKind {
    /// The last accepted version of each object.
    accepted: HashMap<String, Resource>,
    rejected: HashMap<String, RejectedObject>,
}

impl IstioKind {
    /// An accepted version replaces the last; a refused one is logged (once per distinct
    /// refusal) and recorded, and the last accepted version stays — across relists too.
    fn apply(&mut self, change: Change<Result<Resource, RejectedObject>>) {
        match change {
            Change::Replace(all) => {
                let mut accepted = HashMap::new();
                let mut rejected = HashMap::new();
                for (key, value) in all {
                    match value {
                        Ok(r) => {
                            accepted.insert(key, r);
                        }
                        Err(rej) => {
                            if let Some(last_good) = self.accepted.remove(&key) {
                                accepted.insert(key.clone(), last_good);
                            }
                            if self.rejected.get(&key) != Some(&rej) {
                                log_rejected(&rej);
                            }
                            rejected.insert(key, rej);
                        }
                    }
                }
                self.accepted = accepted;
                self.rejected = rejected;
            }
            Change::Upsert(key, Ok(r)) => {
                self.rejected.remove(&key);
                self.accepted.insert(key, r);
            }
            Change::Upsert(key, Err(rej)) => {
                log_rejected(&rej);
                self.rejected.insert(key, rej);
            }
            Change::Remove(key) => {
                self.accepted.remove(&key);
                self.rejected.remove(&key);
            }
            Change::Unavailable => {}
        }
    }
}

/// Everything the watches reported, as of now.
#[derive(Debug, Default)]
struct Store {
    objects: ClusterObjects,
    namespaces: HashMap<String, Arc<BTreeMap<String, String>>>,
    istio: BTreeMap<&'static str, IstioKind>,
    /// MeshConfig of the `istio` ConfigMap: the last valid one, and the text as written.
    mesh: Option<MeshConfig>,
    mesh_text: Option<String>,
    /// `config` and `values` of `istio-sidecar-injector`.
    injector: (Option<String>, Option<String>),
    /// Watches that have listed once (or found their kind unavailable).
    settled: HashSet<String>,
    /// What the next rebuild must convert again.
    dirty: Dirty,
}

/// The running cluster source.
pub struct KubeSource {
    store: Mutex<Store>,
    /// The converted services; only the rebuild task uses it.
    converted: Mutex<ServiceCache>,
    changed: Notify,
    state: Arc<ClusterState>,
    cp: Arc<ControlPlane>,
    sources: Arc<ConfigSources>,
    system_namespace: String,
    files: WebhookFiles,
    watches: usize,
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource")
            .field("system_namespace", &self.system_namespace)
            .finish_non_exhaustive()
    }
}

/// Names of the non-Istio watches (for readiness counting).
const CORE_WATCHES: [&str; 7] = [
    "Namespace",
    "Service",
    "EndpointSlice",
    "Pod",
    "Node",
    "ConfigMap istio",
    "ConfigMap istio-sidecar-injector",
];

impl KubeSource {
    /// Starts every watch and the rebuild task on the current runtime.
    pub fn start(
        client: Client,
        cp: Arc<ControlPlane>,
        sources: Arc<ConfigSources>,
        state: Arc<ClusterState>,
        files: WebhookFiles,
    ) -> Arc<Self> {
        let source = Arc::new(Self {
            store: Mutex::new(Store::default()),
            converted: Mutex::new(ServiceCache::default()),
            changed: Notify::new(),
            state,
            cp,
            sources,
            system_namespace: mesh::system_namespace(),
            files,
            watches: CORE_WATCHES.len() + lateen_api::Kind::ALL.len(),
        });
        source.spawn_core_watches(&client);
        for kind in lateen_api::Kind::ALL {
            source.spawn_istio_watch(&client, kind);
        }
        tokio::spawn(source.clone().rebuild_loop());
        source
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // Updates are whole map operations; a panic cannot leave one half done.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `update` to the store under its lock and wakes the rebuild task, unless the
    /// update says nothing changed (and the watch was settled already).
    fn update(&self, what: &str, change_is_list: bool, update: impl FnOnce(&mut Store) -> bool) {
        let wake = {
            let mut store = self.lock();
            let changed = update(&mut store);
            let newly_settled = change_is_list && store.settled.insert(what.to_string());
            changed || newly_settled
        };
        if wake {
            self.changed.notify_one();
        }
    }

    /// Wakes the rebuild (the folder changed: MeshConfig, hence discovery selectors, may have).
    pub fn poke(&self) {
        self.lock().dirty.all();
        self.changed.notify_one();
    }

    fn spawn_core_watches(self: &Arc<Self>, client: &Client) {
        let c = client.clone();
        self.spawn_kind(
            Api::<Namespace>::all(c.clone()),
            "Namespace",
            |ns: &Namespace| Some(Arc::new(namespace_labels(ns))),
            |s| &mut s.namespaces,
            |s, _| s.dirty.all(),
        );
        self.spawn_kind(
            Api::<Service>::all(c.clone()),
            "Service",
            |svc: &Service| Some(Arc::new(ServiceInfo::from_service(svc))),
            |s| &mut s.objects.services,
            |s, change| match change {
                Change::Upsert(key, _) | Change::Remove(key) => s.dirty.service_key(key),
                Change::Replace(_) => s.dirty.all(),
                Change::Unavailable => {}
            },
        );
        self.spawn_kind(
            Api::<EndpointSlice>::all(c.clone()),
            "EndpointSlice",
            |slice: &EndpointSlice| SliceInfo::from_slice(slice).map(Arc::new),
            |s| &mut s.objects.slices,
            mark_slice,
        );
        self.spawn_kind(
            Api::<Pod>::all(c.clone()),
            "Pod",
            |pod: &Pod| Some(Arc::new(PodInfo::from_pod(pod))),
            |s| &mut s.objects.pods,
            |s, change| match change {
                Change::Upsert(key, _) | Change::Remove(key) => s.dirty.pod(key),
                Change::Replace(_) => s.dirty.all(),
                Change::Unavailable => {}
            },
        );
        self.spawn_kind(
            Api::<Node>::all(c),
            "Node",
            |node: &Node| Some(Arc::new(NodeInfo::from_node(node))),
            |s| &mut s.objects.nodes,
            |s, _| s.dirty.all(),
        );
        self.spawn_configmap_watches(client);
    }

    /// Watches every object of `api` into the map `map` picks from the store; `mark` notes,
    /// before a change is applied, which services it makes the rebuild convert again.
    fn spawn_kind<K, T>(
        self: &Arc<Self>,
        api: Api<K>,
        what: &'static str,
        convert: impl Fn(&K) -> Option<T> + Send + 'static,
        map: fn(&mut Store) -> &mut HashMap<String, T>,
        mark: fn(&mut Store, &Change<T>),
    ) where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
        T: PartialEq + Send + 'static,
    {
        let me = self.clone();
        tokio::spawn(watch::run(
            api,
            watcher::Config::default(),
            what.to_string(),
            convert,
            move |change| {
                let list = change.settles();
                me.update(what, list, |s| {
                    mark(s, &change);
                    change.apply_to(map(s))
                });
            },
        ));
    }

    fn spawn_configmap_watches(self: &Arc<Self>, client: &Client) {
        let ns = self.system_namespace.clone();
        let api = Api::<ConfigMap>::namespaced(client.clone(), &ns);
        let me = self.clone();
        let mesh_ns = ns.clone();
        tokio::spawn(watch::run(
            api.clone(),
            watcher::Config::default().fields(&format!("metadata.name={}", mesh::MESH_CONFIGMAP)),
            "ConfigMap istio".into(),
            |cm: &ConfigMap| Some(data(cm, mesh::MESH_KEY)),
            move |c| me.apply_mesh(&mesh_ns, c),
        ));
        let me = self.clone();
        tokio::spawn(watch::run(
            api,
            watcher::Config::default()
                .fields(&format!("metadata.name={}", mesh::INJECTOR_CONFIGMAP)),
            "ConfigMap istio-sidecar-injector".into(),
            |cm: &ConfigMap| {
                Some((
                    data(cm, mesh::INJECTOR_CONFIG_KEY),
                    data(cm, mesh::INJECTOR_VALUES_KEY),
                ))
            },
            move |c| {
                let list = c.settles();
                let value = match c {
                    Change::Replace(mut all) => Some(all.drain().next().map(|(_, v)| v)),
                    Change::Upsert(_, v) => Some(Some(v)),
                    Change::Remove(_) => Some(None),
                    Change::Unavailable => None,
                };
                me.update("ConfigMap istio-sidecar-injector", list, |s| {
                    let Some(value) = value else { return false };
                    let value = value.unwrap_or_default();
                    let changed = s.injector != value;
                    s.injector = value;
                    changed
                });
            },
        ));
    }

    /// A new `mesh` text: parsed here (outside the lock); an invalid one is logged and the
    /// last valid MeshConfig stays.
    fn apply_mesh(&self, namespace: &str, change: Change<Option<String>>) {
        let list = change.settles();
        let text = match change {
            Change::Replace(mut all) => all.drain().next().and_then(|(_, v)| v),
            Change::Upsert(_, v) => v,
            Change::Remove(_) => None,
            Change::Unavailable => {
                self.update("ConfigMap istio", list, |_| false);
                return;
            }
        };
        let parsed = match &text {
            None => Some(None),
            Some(t) => match mesh::parse_mesh(namespace, t) {
                Ok(m) => Some(Some(m)),
                Err(errors) => {
                    for e in &errors.errors {
                        tracing::error!("mesh config rejected, the previous one stays: {e}");
                    }
                    None
                }
            },
        };
        self.update("ConfigMap istio", list, |s| {
            let changed = s.mesh_text != text;
            if changed {
                s.dirty.all();
            }
            s.mesh_text = text;
            if let Some(mesh) = parsed {
                s.mesh = mesh;
            }
            changed
        });
    }

    fn spawn_istio_watch(self: &Arc<Self>, client: &Client, istio_kind: lateen_api::Kind) {
        let kind = istio_kind.as_str();
        let ar = istio::api_resource(istio_kind);
        let api = Api::<DynamicObject>::all_with(client.clone(), &ar);
        let me = self.clone();
        let checker = self.clone();
        tokio::spawn(watch::run(
            api,
            watcher::Config::default(),
            kind.to_string(),
            move |obj: &DynamicObject| match istio::convert(obj, kind) {
                Ok(Some(r)) if istio_kind == lateen_api::Kind::Telemetry => {
                    Some(super::telemetry_check::against_mesh(
                        r,
                        obj.metadata.generation,
                        &checker.mesh_in_force(),
                    ))
                }
                Ok(Some(r)) => Some(Ok(r)),
                Ok(None) => None,
                Err(rejected) => Some(Err(rejected)),
            },
            move |c| me.apply_istio(kind, c),
        ));
    }

    /// The `istio` ConfigMap's mesh config, else lateend's own.
    fn mesh_in_force(&self) -> MeshConfig {
        let cluster = self.lock().mesh.clone();
        cluster.unwrap_or_else(|| self.sources.folder_mesh())
    }

    fn apply_istio(&self, kind: &'static str, change: Change<Result<Resource, RejectedObject>>) {
        let list = change.settles();
        self.update(kind, list, |s| {
            s.istio.entry(kind).or_default().apply(change);
            true
        });
    }

    /// Rebuilds after a change, folding every change of the next [`REBUILD_BATCH`] (and those
    /// that arrive during a rebuild) into one round; the control plane's debouncer then
    /// decides when to push. A busy cluster (50 endpoint changes a second in bench/kube.sh)
    /// gets one rebuild per batch, not one per event.
    async fn rebuild_loop(self: Arc<Self>) {
        let mut injector_applied: Option<InjectorTexts> = None;
        loop {
            self.changed.notified().await;
            tokio::time::sleep(REBUILD_BATCH).await;
            let me = self.clone();
            let previous = injector_applied.clone();
            match tokio::task::spawn_blocking(move || me.rebuild(previous)).await {
                Ok(applied) => injector_applied = applied,
                Err(e) => tracing::error!(error = %e, "cluster rebuild failed"),
            }
        }
    }

    /// One rebuild; returns the injector texts now in force.
    fn rebuild(&self, injector_applied: Option<InjectorTexts>) -> Option<InjectorTexts> {
        // Take a snapshot (shared values, cheap) and let the watches go on.
        let started = std::time::Instant::now();
        let (objects, namespaces, resources, rejected, cluster_mesh, injector, settled, dirty) = {
            let mut s = self.lock();
            let resources: Vec<Resource> = s
                .istio
                .values()
                .flat_map(|k| k.accepted.values().cloned())
                .collect();
            let rejected: Vec<RejectedObject> = s
                .istio
                .values()
                .flat_map(|k| k.rejected.values().cloned())
                .collect();
            let injector = InjectorTexts {
                config: s.injector.0.clone(),
                values: s.injector.1.clone(),
                mesh: s.mesh_text.clone(),
            };
            (
                s.objects.clone(),
                s.namespaces.clone(),
                resources,
                rejected,
                s.mesh.clone(),
                injector,
                s.settled.len(),
                std::mem::take(&mut s.dirty),
            )
        };
        let mesh = cluster_mesh
            .clone()
            .unwrap_or_else(|| self.sources.folder_mesh());
        let selectors = DiscoverySelectors::of(&mesh);
        let empty = BTreeMap::new();
        let selected = |ns: &str| {
            selectors.is_empty()
                || selectors.selects(namespaces.get(ns).map_or(&empty, |l| l.as_ref()))
        };
        let mut resources: Vec<Resource> = resources
            .into_iter()
            .filter(|r| selected(r.namespace()))
            .collect();
        resources.sort_by_key(Resource::key);
        let mut rejected: Vec<RejectedObject> = rejected
            .into_iter()
            .filter(|r| selected(&r.namespace))
            .collect();
        rejected.sort_by(|a, b| {
            (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name))
        });
        let (services, converted) = self
            .converted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(
                &objects,
                dirty,
                lateen_api::host::DEFAULT_DOMAIN_SUFFIX,
                &selected,
            );
        tracing::debug!(
            services = services.len(),
            converted,
            elapsed_us = started.elapsed().as_micros() as u64,
            "cluster services rebuilt"
        );

        self.state.set_namespaces(
            namespaces
                .iter()
                .map(|(k, v)| (k.clone(), v.as_ref().clone()))
                .collect(),
        );
        self.state.set_kubelet_versions(
            objects
                .nodes
                .iter()
                .map(|(k, v)| (k.clone(), v.kubelet_version.clone()))
                .collect(),
        );
        self.state.set_rejected(rejected);
        if settled >= self.watches && !self.state.synced() {
            tracing::info!(
                services = services.len(),
                resources = resources.len(),
                "cluster source synced: every watch has listed (or found its kind unavailable, retrying)"
            );
            self.state.set_synced();
        }
        self.cp.set_cluster_services(services);
        self.cp
            .set_config(self.sources.set_cluster(cluster_mesh, resources));
        self.apply_injector(injector, injector_applied)
    }

    /// Swaps the running webhook's injector configuration when its texts changed; a broken
    /// one is logged and the running configuration stays.
    fn apply_injector(
        &self,
        texts: InjectorTexts,
        applied: Option<InjectorTexts>,
    ) -> Option<InjectorTexts> {
        if applied.as_ref() == Some(&texts) {
            return applied;
        }
        let Some(webhook) = self.cp.webhook() else {
            return applied;
        };
        if applied.is_none() && texts == InjectorTexts::default() {
            // Nothing in the cluster: the files the webhook started with stay.
            return Some(texts);
        }
        match mesh::inject_config(&self.system_namespace, &texts, &self.files) {
            Ok(config) => {
                webhook.config.store(Arc::new(config));
                tracing::info!("injector configuration updated from the cluster");
            }
            Err(e) => {
                tracing::error!(error = %e, "injector configuration rejected; the running one stays");
            }
        }
        Some(texts)
    }
}

/// A slice change marks the Service it belongs to, and the one it belonged to before (its
/// `kubernetes.io/service-name` label may have been changed).
fn mark_slice(s: &mut Store, change: &Change<Arc<SliceInfo>>) {
    let key = match change {
        Change::Upsert(key, slice) => {
            s.dirty.service(&slice.namespace, &slice.service);
            key
        }
        Change::Remove(key) => key,
        Change::Replace(_) => return s.dirty.all(),
        Change::Unavailable => return,
    };
    if let Some(old) = s.objects.slices.get(key) {
        s.dirty.service(&old.namespace, &old.service);
    }
}

fn log_rejected(rejected: &RejectedObject) {
    let kept = "keeping its last accepted version, if any";
    for e in &rejected.errors {
        tracing::error!("config rejected: {e}; {kept}");
    }
}

/// A key of a ConfigMap's `data`.
fn data(cm: &ConfigMap, key: &str) -> Option<String> {
    cm.data.as_ref().and_then(|d| d.get(key)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(weight: i64) -> Result<Resource, RejectedObject> {
        let ar = istio::api_resource(lateen_api::Kind::VirtualService);
        let obj = DynamicObject::new("r", &ar)
            .within("default")
            .data(serde_json::json!({
                "spec": {"hosts": ["reviews"], "http": [{"route": [
                    {"destination": {"host": "reviews"}, "weight": weight}]}]}
            }));
        istio::convert(&obj, "VirtualService").map(|r| r.unwrap_or_else(|| panic!("skipped")))
    }

    #[test]
    fn refused_versions_keep_the_last_good_one_across_relists() {
        let mut kind = IstioKind::default();
        let key = "default/r".to_string();
        kind.apply(Change::Upsert(key.clone(), vs(100)));
        kind.apply(Change::Upsert(key.clone(), vs(-5)));
        assert_eq!(kind.accepted.get(&key), vs(100).ok().as_ref());
        assert_eq!(kind.rejected.len(), 1);
        // A relist that still holds the refused version: the good one stays, still refused.
        kind.apply(Change::Replace([(key.clone(), vs(-5))].into()));
        assert_eq!(kind.accepted.get(&key), vs(100).ok().as_ref());
        assert_eq!(kind.rejected.len(), 1);
        // Fixed: accepted, no longer refused.
        kind.apply(Change::Upsert(key.clone(), vs(50)));
        assert_eq!(kind.accepted.get(&key), vs(50).ok().as_ref());
        assert!(kind.rejected.is_empty());
        // A relist without it: gone.
        kind.apply(Change::Replace(HashMap::new()));
        assert!(kind.accepted.is_empty());
    }
}
