//! What translation may read of a proxy, and nothing more.
//!
//! Two proxies with equal views get equal resources, so the push caches one snapshot per
//! distinct view and shares it ([`crate::push`]): the replicas of a Deployment (same
//! namespace, labels, ports and mode; addresses that no service lists) cost one translation
//! and one copy of their configuration between them. Translation takes a `ProxyView`, never
//! a [`Proxy`], so a field it starts reading has to be added here, to the cache key, first.

use std::collections::BTreeMap;

use crate::proxy::{DeclaredPort, InterceptionMode, Proxy, ProxyType};
use crate::registry::Registry;

/// The translation-relevant part of a proxy's identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProxyView {
    pub proxy_type: ProxyType,
    pub namespace: String,
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
}

impl ProxyView {
    /// The view of `proxy` against `registry`.
    pub fn of(proxy: &Proxy, registry: &Registry) -> Self {
        Self {
            proxy_type: proxy.proxy_type,
            namespace: proxy.namespace.clone(),
            labels: proxy.labels.clone(),
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
        }
    }
}
