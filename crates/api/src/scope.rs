//! Who sees what: `exportTo` visibility, gateway references of VirtualServices, and the
//! `namespace/host` entries of Sidecar egress and Gateway servers.

use crate::host;

/// Whether a resource of `owner_namespace` with this `exportTo` is visible from
/// `viewer_namespace`. An empty list means exported everywhere (Istio's default; callers that
/// honour MeshConfig's `default*ExportTo` pass that list instead of an empty one).
pub fn is_exported_to(export_to: &[String], owner_namespace: &str, viewer_namespace: &str) -> bool {
    if export_to.is_empty() {
        return true;
    }
    export_to.iter().any(|ns| match ns.as_str() {
        "*" => true,
        "." => owner_namespace == viewer_namespace,
        "~" => false,
        named => named == viewer_namespace,
    })
}

/// The reserved gateway name meaning "the sidecars of the mesh".
pub const MESH_GATEWAY: &str = "mesh";

/// A gateway a VirtualService (or a match) is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GatewayRef {
    /// The sidecars (`mesh`).
    Mesh,
    /// A `Gateway` resource.
    Named { namespace: String, name: String },
}

/// Resolves a gateway name as written in a VirtualService of `namespace`: `mesh`,
/// `ns/name`, a bare `name` (same namespace as the VirtualService), or the legacy FQDN form
/// `name.ns.svc.cluster.local` (first label is the name, second the namespace).
pub fn resolve_gateway(gateway: &str, namespace: &str) -> GatewayRef {
    if gateway == MESH_GATEWAY {
        return GatewayRef::Mesh;
    }
    if let Some((ns, name)) = gateway.split_once('/') {
        return GatewayRef::Named {
            namespace: ns.to_string(),
            name: name.to_string(),
        };
    }
    let mut labels = gateway.split('.');
    match (labels.next(), labels.next()) {
        (Some(name), Some(ns)) => GatewayRef::Named {
            namespace: ns.to_string(),
            name: name.to_string(),
        },
        _ => GatewayRef::Named {
            namespace: namespace.to_string(),
            name: gateway.to_string(),
        },
    }
}

/// The gateways of a VirtualService: its `gateways` resolved, or `[Mesh]` when empty.
pub fn resolve_gateways(gateways: &[String], namespace: &str) -> Vec<GatewayRef> {
    if gateways.is_empty() {
        return vec![GatewayRef::Mesh];
    }
    gateways
        .iter()
        .map(|g| resolve_gateway(g, namespace))
        .collect()
}

/// The namespace part of a `namespace/host` entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NamespaceSelector {
    /// `*`: any namespace.
    Any,
    /// `.`: the namespace of the Sidecar/Gateway itself.
    Own,
    /// `~`: no namespace (only the host part matters, e.g. for a Sidecar's egress).
    NoNamespace,
    /// A namespace name.
    Named(String),
}

impl NamespaceSelector {
    /// Whether a service in `service_namespace` is selected, for a resource in `own_namespace`.
    pub fn selects(&self, service_namespace: &str, own_namespace: &str) -> bool {
        match self {
            NamespaceSelector::Any => true,
            NamespaceSelector::Own => service_namespace == own_namespace,
            NamespaceSelector::NoNamespace => false,
            NamespaceSelector::Named(ns) => ns == service_namespace,
        }
    }
}

/// A parsed `namespace/host` entry (Sidecar egress hosts, Gateway server hosts).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamespacedHost {
    pub namespace: NamespaceSelector,
    /// A host, possibly a wildcard (`*`, `*.example.com`).
    pub host: String,
}

impl NamespacedHost {
    /// Parses `ns/host`; a bare `host` gets `default_namespace` (`*` for Gateway servers).
    pub fn parse(entry: &str, default_namespace: NamespaceSelector) -> NamespacedHost {
        let (namespace, host) = match entry.split_once('/') {
            Some((ns, host)) => (
                match ns {
                    "*" => NamespaceSelector::Any,
                    "." => NamespaceSelector::Own,
                    "~" => NamespaceSelector::NoNamespace,
                    named => NamespaceSelector::Named(named.to_string()),
                },
                host,
            ),
            None => (default_namespace, entry),
        };
        NamespacedHost {
            namespace,
            host: host.to_ascii_lowercase(),
        }
    }

    /// Whether a service `service_host` (FQDN) in `service_namespace` is selected, for a
    /// resource in `own_namespace`.
    pub fn selects(
        &self,
        service_host: &str,
        service_namespace: &str,
        own_namespace: &str,
    ) -> bool {
        self.namespace.selects(service_namespace, own_namespace)
            && host::host_is_subset_of(service_host, &self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn export_to_visibility() {
        assert!(is_exported_to(&[], "a", "b"));
        assert!(is_exported_to(&list(&["*"]), "a", "b"));
        assert!(is_exported_to(&list(&["."]), "a", "a"));
        assert!(!is_exported_to(&list(&["."]), "a", "b"));
        assert!(!is_exported_to(&list(&["~"]), "a", "a"));
        assert!(is_exported_to(&list(&[".", "b"]), "a", "b"));
    }

    #[test]
    fn gateway_references() {
        assert_eq!(resolve_gateway("mesh", "prod"), GatewayRef::Mesh);
        let named = |ns: &str, name: &str| GatewayRef::Named {
            namespace: ns.into(),
            name: name.into(),
        };
        assert_eq!(
            resolve_gateway("bookinfo-gateway", "prod"),
            named("prod", "bookinfo-gateway")
        );
        assert_eq!(
            resolve_gateway("istio-system/public", "prod"),
            named("istio-system", "public")
        );
        assert_eq!(
            resolve_gateway("public.istio-system.svc.cluster.local", "prod"),
            named("istio-system", "public")
        );
        assert_eq!(resolve_gateways(&[], "prod"), [GatewayRef::Mesh]);
    }

    #[test]
    fn namespaced_hosts() {
        let h = NamespacedHost::parse("./*", NamespaceSelector::Any);
        assert!(h.selects("reviews.prod.svc.cluster.local", "prod", "prod"));
        assert!(!h.selects("reviews.prod.svc.cluster.local", "prod", "other"));
        let h = NamespacedHost::parse("istio-system/*.example.com", NamespaceSelector::Any);
        assert!(h.selects("api.example.com", "istio-system", "prod"));
        assert!(!h.selects("api.example.com", "prod", "prod"));
        let h = NamespacedHost::parse("*.example.com", NamespaceSelector::Any);
        assert_eq!(h.namespace, NamespaceSelector::Any);
        assert!(!NamespacedHost::parse("~/*", NamespaceSelector::Any).selects("a.b", "x", "x"));
    }
}
