//! Translation of the mesh configuration into the Envoy resources of one proxy.
//!
//! [`Context`] gathers what a proxy can see (its Sidecar resource, the services its egress
//! hosts allow, the DestinationRules and VirtualServices that apply); the submodules build
//! clusters, endpoints, listeners and routes from it; [`build_snapshot`] puts them together.

pub mod access_log;
mod authz;
mod authz_rules;
pub mod clusters;
mod endpoint_only;
pub mod endpoints;
mod host_index;
mod jwks_uri;
mod jwt;
pub mod listeners;
pub mod mtls_inbound;
pub mod mtls_outbound;
pub mod names;
pub mod peer_authn;
mod policies;
pub mod routes;
pub mod stats;
mod tls_origination;
pub mod tracing;
mod view;

use lateen_api::Object;
use lateen_api::host::{host_serves, resolve_short_name};
use lateen_api::networking::{
    ConnectionPoolSettings, DestinationRule, EgressListener, LoadBalancerSettings,
    OutboundTrafficMode, OutlierDetection, Sidecar, VirtualService,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use lateen_xds::{Snapshot, VersionedResource};

use crate::proxy::{InterceptionMode, Proxy, ProxyType};
use crate::registry::{Registry, Service, labels_match};
use crate::store::Config;
pub use view::{ProxyView, cluster_label_keys, selected_label_keys};

/// Everything the translators need for one proxy.
pub struct Context<'a> {
    pub config: &'a Config,
    pub registry: &'a Registry,
    pub proxy: &'a ProxyView,
    /// The Sidecar resource that applies to the proxy, if any.
    pub sidecar: Option<&'a Object<Sidecar>>,
    /// Services the proxy may reach (visibility and Sidecar egress scoping applied).
    pub services: Vec<&'a Service>,
    /// DestinationRules that may apply to this proxy (workload selectors checked), by host.
    destination_rules: host_index::HostIndex<'a, DestinationRule>,
    /// VirtualServices by host.
    virtual_services: host_index::HostIndex<'a, VirtualService>,
}

impl<'a> Context<'a> {
    pub fn new(config: &'a Config, registry: &'a Registry, proxy: &'a ProxyView) -> Self {
        let sidecar = select_sidecar(config, proxy);
        let egress: Vec<&EgressListener> = sidecar
            .map(|s| s.spec.egress.iter().collect())
            .unwrap_or_default();
        let services = registry
            .services
            .iter()
            .map(Arc::as_ref)
            .filter(|s| s.visible_from(&proxy.namespace))
            .filter(|s| egress.is_empty() || egress.iter().any(|e| egress_allows(e, s, proxy)))
            .collect();
        let suffix = config.domain_suffix();
        let destination_rules = host_index::HostIndex::new(
            config
                .destination_rules()
                .filter(|dr| {
                    dr.spec.workload_selector.as_ref().is_none_or(|sel| {
                        dr.namespace() == proxy.namespace
                            && labels_match(&sel.labels, &proxy.labels)
                    })
                })
                .enumerate(),
            |dr| vec![dr.spec.host.as_str()],
            suffix,
        );
        let virtual_services = host_index::HostIndex::new(
            config.virtual_services().enumerate(),
            |vs| vs.spec.hosts.iter().map(String::as_str).collect(),
            suffix,
        );
        Self {
            config,
            registry,
            proxy,
            sidecar,
            services,
            destination_rules,
            virtual_services,
        }
    }

    pub fn domain_suffix(&self) -> &str {
        self.config.domain_suffix()
    }

    pub fn interception(&self) -> InterceptionMode {
        self.proxy.interception
    }

    pub fn is_router(&self) -> bool {
        self.proxy.proxy_type == ProxyType::Router
    }

    /// A host written in a resource of `namespace`, as the mesh names it.
    pub fn resolve(&self, host: &str, namespace: &str) -> String {
        resolve_short_name(host, namespace, self.domain_suffix())
    }

    /// ALLOW_ANY or REGISTRY_ONLY: the Sidecar's setting, else MeshConfig's.
    pub fn outbound_mode(&self) -> OutboundTrafficMode {
        self.sidecar
            .and_then(|s| s.spec.outbound_traffic_policy.as_ref())
            .map(|p| p.mode())
            .unwrap_or_else(|| self.config.mesh.outbound_traffic_mode())
    }

    /// Services that a listener on `port` routes to: those of the Sidecar egress listener for
    /// that port, else of its catch-all egress listener, else every visible service.
    pub fn services_on_port(&self, port: u32) -> Vec<&'a Service> {
        let egress = self
            .sidecar
            .map(|s| s.spec.egress.as_slice())
            .unwrap_or_default();
        let listener = egress
            .iter()
            .find(|e| e.port.as_ref().is_some_and(|p| p.number == port))
            .or_else(|| egress.iter().find(|e| e.port.is_none()));
        self.services
            .iter()
            .copied()
            .filter(|s| s.port(port).is_some())
            .filter(|s| listener.is_none_or(|l| egress_allows(l, s, self.proxy)))
            .collect()
    }

    /// The DestinationRule for a service host: Istio's lookup order is the proxy's namespace,
    /// then the service's, then the root namespace; an exact host beats a wildcard.
    pub fn destination_rule(&self, service: &Service) -> Option<&'a Object<DestinationRule>> {
        let root = self.config.root_namespace();
        let rank = |ns: &str| {
            if ns == self.proxy.namespace {
                0
            } else if ns == service.namespace {
                1
            } else if ns == root {
                2
            } else {
                3
            }
        };
        self.destination_rules
            .serving(&service.hostname)
            .into_iter()
            .map(|(host, dr)| {
                let exact = usize::from(host != service.hostname);
                ((rank(dr.namespace()), exact), dr)
            })
            .filter(|((r, _), _)| *r < 3)
            .min_by_key(|(key, _)| *key)
            .map(|(_, dr)| dr)
    }

    /// The VirtualService for a service host on the mesh (sidecars) or bound to one of
    /// `gateways` (routers): the first, in config order, whose host covers it.
    pub fn virtual_service(
        &self,
        hostname: &str,
        gateways: &[String],
    ) -> Option<&'a Object<VirtualService>> {
        self.virtual_services
            .matching(hostname)
            .into_iter()
            .find(|vs| {
                exported_to(&vs.spec.export_to, vs.namespace(), &self.proxy.namespace)
                    && vs_bound_to(vs, gateways)
            })
    }
}

/// `exportTo` of a resource in `owner` namespace: empty or `*` is everywhere, `.` its own
/// namespace, otherwise the listed namespaces.
pub fn exported_to(export_to: &[String], owner: &str, namespace: &str) -> bool {
    export_to.is_empty()
        || export_to
            .iter()
            .any(|e| e == "*" || e == namespace || (e == "." && owner == namespace))
}

/// Whether a VirtualService applies to one of `gateways` (`ns/name`; `mesh` for sidecars).
pub fn vs_bound_to(vs: &Object<VirtualService>, gateways: &[String]) -> bool {
    let bound: Vec<String> = if vs.spec.gateways.is_empty() {
        vec!["mesh".to_string()]
    } else {
        vs.spec
            .gateways
            .iter()
            .map(|g| {
                if g == "mesh" || g.contains('/') {
                    g.clone()
                } else {
                    format!("{}/{g}", vs.namespace())
                }
            })
            .collect()
    };
    bound.iter().any(|b| gateways.contains(b))
}

/// Istio's Sidecar selection: one in the proxy's namespace whose workloadSelector matches,
/// else the namespace's selector-less one, else the root namespace's selector-less one.
fn select_sidecar<'a>(config: &'a Config, proxy: &ProxyView) -> Option<&'a Object<Sidecar>> {
    let own = || {
        config
            .sidecars()
            .filter(|s| s.namespace() == proxy.namespace)
    };
    own()
        .find(|s| {
            s.spec.workload_selector.as_ref().is_some_and(|sel| {
                !sel.labels.is_empty() && labels_match(&sel.labels, &proxy.labels)
            })
        })
        .or_else(|| own().find(|s| s.spec.workload_selector.is_none()))
        .or_else(|| {
            config.sidecars().find(|s| {
                s.namespace() == config.root_namespace() && s.spec.workload_selector.is_none()
            })
        })
}

/// Whether an egress listener's `hosts` (`ns/host`) admit a service.
fn egress_allows(listener: &EgressListener, service: &Service, proxy: &ProxyView) -> bool {
    listener.hosts.iter().any(|entry| {
        let (ns, host) = entry.split_once('/').unwrap_or(("*", entry.as_str()));
        let ns_ok = match ns {
            "*" => true,
            "~" => false,
            "." => service.namespace == proxy.namespace,
            other => service.namespace == other,
        };
        ns_ok && (host == "*" || host_serves(host, &service.hostname))
    })
}

/// The traffic policy for one cluster, after Istio's merge order: DestinationRule top level,
/// its port-level settings, the subset's top level, the subset's port-level settings.
#[derive(Clone, Debug, Default)]
pub struct EffectivePolicy {
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
    pub outlier_detection: Option<OutlierDetection>,
}

impl EffectivePolicy {
    /// Settings present in a more specific layer replace the ones before.
    fn overlay(
        &mut self,
        lb: Option<&LoadBalancerSettings>,
        pool: Option<&ConnectionPoolSettings>,
        outlier: Option<&OutlierDetection>,
    ) {
        if let Some(v) = lb {
            self.load_balancer = Some(v.clone());
        }
        if let Some(v) = pool {
            self.connection_pool = Some(v.clone());
        }
        if let Some(v) = outlier {
            self.outlier_detection = Some(v.clone());
        }
    }
}

/// A DestinationRule's traffic policies for `subset`, the least specific first: the top level,
/// then the subset's.
pub fn policy_layers<'a>(
    dr: &'a Object<DestinationRule>,
    subset: &str,
) -> Vec<&'a lateen_api::networking::TrafficPolicy> {
    let mut layers = Vec::new();
    if let Some(top) = &dr.spec.traffic_policy {
        layers.push(top);
    }
    if let Some(sp) = dr
        .spec
        .subset(subset)
        .and_then(|s| s.traffic_policy.as_ref())
    {
        layers.push(sp);
    }
    layers
}

pub fn effective_policy(
    dr: Option<&Object<DestinationRule>>,
    subset: &str,
    port: u32,
) -> EffectivePolicy {
    let mut out = EffectivePolicy::default();
    let Some(dr) = dr else {
        return out;
    };
    for tp in policy_layers(dr, subset) {
        out.overlay(
            tp.load_balancer.as_ref(),
            tp.connection_pool.as_ref(),
            tp.outlier_detection.as_ref(),
        );
        if let Some(pl) = tp.port_settings(port) {
            out.overlay(
                pl.load_balancer.as_ref(),
                pl.connection_pool.as_ref(),
                pl.outlier_detection.as_ref(),
            );
        }
    }
    out
}

/// Every Envoy resource of one proxy.
pub fn build_snapshot(config: &Config, registry: &Registry, proxy: &Proxy) -> Snapshot {
    let view = ProxyView::of(proxy, registry, &selected_label_keys(config));
    build_snapshot_for_view(config, registry, &view)
}

/// Every Envoy resource of the proxies that have this view.
pub fn build_snapshot_for_view(config: &Config, registry: &Registry, view: &ProxyView) -> Snapshot {
    build_snapshot_shared(config, registry, view, &SharedClusters::new(config))
}

/// Clusters and endpoints (encoded), shared between the views of one configuration that
/// differ only in labels clusters and endpoints never read: proxies that a VirtualService's
/// `sourceLabels` tells apart get their own routes, not their own copies of a thousand
/// clusters.
pub struct SharedClusters {
    label_keys: BTreeSet<String>,
    parts: Mutex<HashMap<ProxyView, ClusterParts>>,
    /// The ClusterLoadAssignments of the services an endpoint-only push changed
    /// ([`SharedClusters::changed_endpoints`]).
    endpoints: Mutex<HashMap<ProxyView, ClusterParts>>,
}

/// The encoded clusters and endpoints of one cluster-relevant view, by name.
pub type ClusterParts = Arc<Vec<(String, VersionedResource)>>;

impl SharedClusters {
    pub fn new(config: &Config) -> Self {
        Self {
            label_keys: cluster_label_keys(config),
            parts: Mutex::new(HashMap::new()),
            endpoints: Mutex::new(HashMap::new()),
        }
    }

    fn get_or_build(
        &self,
        view: &ProxyView,
        build: impl FnOnce() -> Vec<(String, VersionedResource)>,
    ) -> ClusterParts {
        Self::get_or_build_in(&self.parts, &self.label_keys, view, build)
    }

    fn get_or_build_in(
        parts: &Mutex<HashMap<ProxyView, ClusterParts>>,
        label_keys: &BTreeSet<String>,
        view: &ProxyView,
        build: impl FnOnce() -> Vec<(String, VersionedResource)>,
    ) -> ClusterParts {
        let key = view.restricted(label_keys);
        let lock = || parts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = lock().get(&key) {
            return done.clone();
        }
        // Built without the lock; a concurrent build of the same key keeps the first.
        let built = Arc::new(build());
        lock().entry(key).or_insert(built).clone()
    }
}

/// [`build_snapshot_for_view`], with clusters and endpoints from `shared` when another view
/// already built them.
pub fn build_snapshot_shared(
    config: &Config,
    registry: &Registry,
    view: &ProxyView,
    shared: &SharedClusters,
) -> Snapshot {
    let ctx = Context::new(config, registry, view);
    let clusters_and_endpoints = shared.get_or_build(view, || {
        let mut part = Snapshot::new();
        let built = clusters::build(&ctx);
        for cluster in &built.clusters {
            part.add(cluster);
        }
        for cla in endpoints::build(&ctx, &built.eds) {
            part.add(&cla);
        }
        [lateen_xds::types::CLUSTER, lateen_xds::types::ENDPOINT]
            .iter()
            .flat_map(|t| {
                part.resources(t)
                    .map(|(n, r)| (n.clone(), r.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    });
    let mut snapshot = Snapshot::new();
    for (name, resource) in clusters_and_endpoints.iter() {
        snapshot.insert_versioned(name.clone(), resource.clone());
    }
    let listeners = listeners::build(&ctx);
    for listener in &listeners.listeners {
        snapshot.add(listener);
    }
    for route in routes::build(&ctx, &listeners.route_names) {
        snapshot.add(&route);
    }
    snapshot
}
