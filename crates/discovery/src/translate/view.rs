//! What translation may read of a proxy, and nothing more.
//!
//! Two proxies with equal views get equal resources, so the push caches one snapshot per
//! distinct view and shares it ([`crate::push`]): the replicas of a Deployment (same
//! namespace, ports and mode; addresses that no service lists) cost one translation and one
//! copy of their configuration between them, and so do Deployments whose labels no resource
//! selects on. Translation takes a `ProxyView`, never a [`Proxy`], so a field it starts
//! reading has to be added here, to the cache key, first.

use std::collections::{BTreeMap, BTreeSet};

use crate::proxy::{DeclaredPort, InterceptionMode, Proxy, ProxyType};
use crate::registry::Registry;
use crate::store::Config;

/// Labels translation reads for a proxy's locality (`localityLbSetting.distribute.from`).
const LOCALITY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

/// The label keys that can change a proxy's clusters and endpoints: DestinationRule and
/// Sidecar `workloadSelector` keys and the locality labels (VirtualService `sourceLabels` and
/// Gateway selectors only change listeners and routes).
pub fn cluster_label_keys(config: &Config) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = LOCALITY_LABELS.iter().map(|k| k.to_string()).collect();
    for dr in config.destination_rules() {
        if let Some(selector) = &dr.spec.workload_selector {
            keys.extend(selector.labels.keys().cloned());
        }
    }
    for sidecar in config.sidecars() {
        if let Some(selector) = &sidecar.spec.workload_selector {
            keys.extend(selector.labels.keys().cloned());
        }
    }
    keys
}

/// The label keys that can change a proxy's configuration: those of every selector that
/// picks proxies (DestinationRule and Sidecar `workloadSelector`, Gateway `selector`,
/// VirtualService `sourceLabels`, PeerAuthentication `selector`) and the locality labels. Translation only ever looks a
/// proxy's labels up by these keys.
pub fn selected_label_keys(config: &Config) -> BTreeSet<String> {
    let mut keys = cluster_label_keys(config);
    keys.extend(super::authz::selector_label_keys(config));
    let mut add = |labels: &BTreeMap<String, String>| keys.extend(labels.keys().cloned());
    for gateway in config.gateways() {
        add(&gateway.spec.selector);
    }
    for policy in config.peer_authentications() {
        if let Some(selector) = &policy.spec.selector {
            add(&selector.match_labels);
        }
    }
    for vs in config.virtual_services() {
        for m in vs.spec.http.iter().flat_map(|h| &h.matches) {
            add(&m.source_labels);
        }
        for m in vs.spec.tls.iter().flat_map(|t| &t.matches) {
            add(&m.source_labels);
        }
        for m in vs.spec.tcp.iter().flat_map(|t| &t.matches) {
            add(&m.source_labels);
        }
    }
    // Tracing names a proxy's spans by its canonical service.
    if super::tracing::configured(config) {
        keys.extend(super::tracing::LABEL_KEYS.iter().map(|k| k.to_string()));
    }
    keys.extend(super::access_log::selector_label_keys(config));
    keys
}

/// The labels whose keys are in `keys`.
fn labels_with_keys(
    labels: &BTreeMap<String, String>,
    keys: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(key, _)| keys.contains(*key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The translation-relevant part of a proxy's identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProxyView {
    pub proxy_type: ProxyType,
    pub namespace: String,
    /// The proxy's labels whose keys some resource selects on ([`selected_label_keys`]).
    pub labels: BTreeMap<String, String>,
    pub interception: InterceptionMode,
    pub ports: Vec<DeclaredPort>,
    /// Wildcard address of the proxy's IP family (`0.0.0.0` or `::`).
    pub wildcard: String,
    /// Where the capture listeners bind.
    pub capture_bind: String,
    /// The proxy's addresses that are instances of some service (its inbound side); the
    /// others change nothing in its configuration and are left out of the key.
    pub instance_addresses: Vec<String>,
    /// The proxy holds a certificate and gets Istio's mTLS listeners and clusters.
    pub mtls: bool,
    /// The proxy is lateen-proxy (it gets Istio's TCP stats filter).
    pub lateen_proxy: bool,
}

impl ProxyView {
    /// The same view with only the labels whose keys are in `keys`.
    pub fn restricted(&self, keys: &BTreeSet<String>) -> Self {
        Self {
            labels: labels_with_keys(&self.labels, keys),
            ..self.clone()
        }
    }

    /// The view of `proxy` against `registry`, keeping the labels with `label_keys`.
    pub fn of(proxy: &Proxy, registry: &Registry, label_keys: &BTreeSet<String>) -> Self {
        Self {
            proxy_type: proxy.proxy_type,
            namespace: proxy.namespace.clone(),
            labels: labels_with_keys(&proxy.labels, label_keys),
            interception: proxy.interception,
            ports: proxy.ports.clone(),
            wildcard: proxy.wildcard.clone(),
            capture_bind: proxy.capture_bind.clone(),
            instance_addresses: proxy
                .ips
                .iter()
                .filter(|ip| registry.has_instance_at(ip))
                .cloned()
                .collect(),
            mtls: proxy.mtls,
            lateen_proxy: proxy.lateen_proxy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lateen_xds::ProxyNode;

    fn proxy(app: &str) -> Proxy {
        Proxy::from_node(&ProxyNode {
            id: format!("sidecar~10.0.0.1~{app}-1.default~default.svc.cluster.local"),
            cluster: String::new(),
            metadata: serde_json::json!({"NAMESPACE": "default", "LABELS": {"app": app, "topology.kubernetes.io/zone": "z1"}}),
            user_agent: String::new(),
        })
    }

    fn config(yaml: &str) -> Config {
        let loaded = lateen_api::load(yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
        Config {
            resources: loaded.resources().cloned().collect(),
            ..Config::default()
        }
    }

    #[test]
    fn labels_no_resource_selects_on_do_not_split_views() {
        let registry = Registry::default();
        let plain = config(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r, namespace: default}\nspec: {host: reviews}\n",
        );
        let keys = selected_label_keys(&plain);
        let (a, b) = (
            ProxyView::of(&proxy("a"), &registry, &keys),
            ProxyView::of(&proxy("b"), &registry, &keys),
        );
        assert_eq!(a, b);
        assert_eq!(
            a.labels
                .get("topology.kubernetes.io/zone")
                .map(String::as_str),
            Some("z1")
        );

        let selecting = config(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: default}\nspec:\n  hosts: [reviews]\n  http:\n  - match: [{sourceLabels: {app: a}}]\n    route: [{destination: {host: reviews}}]\n",
        );
        let keys = selected_label_keys(&selecting);
        assert_ne!(
            ProxyView::of(&proxy("a"), &registry, &keys),
            ProxyView::of(&proxy("b"), &registry, &keys)
        );
    }
}
