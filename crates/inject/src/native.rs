//! Native sidecars (the proxy as a restartable init container) where the cluster supports them,
//! as Istio decides it with `ENABLE_NATIVE_SIDECARS`:
//! - `true`: always; `false`: never;
//! - `auto` (Istio's default): when the pod's node, or, while the pod is not scheduled yet (the
//!   usual case at admission), every node of the cluster runs a kubelet >= 1.33 (where the
//!   feature is stable). A cluster with no nodes counts as supporting them, as in Istio. Without
//!   a cluster to ask (offline `kube-inject`, lateend without a Kubernetes source) the layout
//!   stays classic.
//!
//! The webhook asks a [`NodeVersions`] (lateend's Kubernetes source fills a [`NodeTable`]);
//! [`NativeSidecars`] combines that with the mode. The pod's `sidecar.istio.io/nativeSidecar`
//! annotation and `global.nativeSidecars` are applied later, by the injection itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

/// Kubernetes minor version from which Istio turns native sidecars on in `auto` mode.
pub const NATIVE_SIDECAR_MIN_MINOR: u64 = 33;

/// Istio's `ENABLE_NATIVE_SIDECARS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NativeSidecarMode {
    #[default]
    Auto,
    Enabled,
    Disabled,
}

impl NativeSidecarMode {
    /// The environment variable Istio reads (lateend reads the same).
    pub const ENV: &'static str = "ENABLE_NATIVE_SIDECARS";

    /// `auto`, `true` or `false` exactly, as Istio reads it; `None` otherwise.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "auto" => Some(Self::Auto),
            "true" => Some(Self::Enabled),
            "false" => Some(Self::Disabled),
            _ => None,
        }
    }

    /// The mode for the variable's value: unset or empty is `auto`; an unknown value is
    /// `false`, as in Istio, and logged.
    pub fn from_env_value(value: Option<&str>) -> Self {
        match value.filter(|v| !v.is_empty()) {
            None => Self::Auto,
            Some(v) => Self::parse(v).unwrap_or_else(|| {
                tracing::warn!(
                    value = v,
                    "unknown value for {}; native sidecars disabled",
                    Self::ENV
                );
                Self::Disabled
            }),
        }
    }
}

/// The cluster's nodes and their kubelet versions, as far as the webhook needs them.
pub trait NodeVersions: Send + Sync {
    /// `status.nodeInfo.kubeletVersion` of the node `name`, `None` when the node is unknown.
    fn kubelet_version(&self, name: &str) -> Option<String>;
    /// Every node's kubelet version.
    fn all_kubelet_versions(&self) -> Vec<String>;
}

/// A fixed table: node name → kubelet version.
impl NodeVersions for BTreeMap<String, String> {
    fn kubelet_version(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }

    fn all_kubelet_versions(&self) -> Vec<String> {
        self.values().cloned().collect()
    }
}

/// A snapshot getter: `move || state.kubelet_versions()` over a cluster state that keeps node
/// name → kubelet version.
impl<F: Fn() -> Arc<BTreeMap<String, String>> + Send + Sync> NodeVersions for F {
    fn kubelet_version(&self, name: &str) -> Option<String> {
        self().get(name).cloned()
    }

    fn all_kubelet_versions(&self) -> Vec<String> {
        self().values().cloned().collect()
    }
}

/// A node table that a watcher replaces as nodes come and go (cheap to read from the webhook).
#[derive(Debug, Default)]
pub struct NodeTable {
    nodes: ArcSwap<BTreeMap<String, String>>,
}

impl NodeTable {
    /// Replaces the whole table (a relist) with node name → kubelet version.
    pub fn replace(&self, nodes: BTreeMap<String, String>) {
        self.nodes.store(Arc::new(nodes));
    }

    /// Adds or updates one node.
    pub fn upsert(&self, name: &str, kubelet_version: &str) {
        self.nodes.rcu(|current| {
            let mut next = BTreeMap::clone(current);
            next.insert(name.to_string(), kubelet_version.to_string());
            next
        });
    }

    /// Removes one node.
    pub fn remove(&self, name: &str) {
        self.nodes.rcu(|current| {
            let mut next = BTreeMap::clone(current);
            next.remove(name);
            next
        });
    }
}

impl NodeVersions for NodeTable {
    fn kubelet_version(&self, name: &str) -> Option<String> {
        self.nodes.load().get(name).cloned()
    }

    fn all_kubelet_versions(&self) -> Vec<String> {
        self.nodes.load().values().cloned().collect()
    }
}

/// Whether a kubelet of this version (`v1.33.2`, `v1.34.0-gke.1`, `1.33`) runs native sidecars
/// as a stable feature. An unreadable version does not.
pub fn kubelet_supports_native_sidecars(version: &str) -> bool {
    let version = version.trim().trim_start_matches(['v', 'V']);
    let mut parts = version.split('.');
    let (Some(_major), Some(minor)) = (parts.next(), parts.next()) else {
        return false;
    };
    let digits: String = minor.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse::<u64>()
        .is_ok_and(|m| m >= NATIVE_SIDECAR_MIN_MINOR)
}

/// The webhook's answer to "native sidecar layout for this pod?".
#[derive(Clone, Default)]
pub struct NativeSidecars {
    pub mode: NativeSidecarMode,
    /// The cluster's nodes; `None` when lateend has no cluster to ask.
    pub nodes: Option<Arc<dyn NodeVersions>>,
}

impl std::fmt::Debug for NativeSidecars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeSidecars")
            .field("mode", &self.mode)
            .field("cluster", &self.nodes.is_some())
            .finish()
    }
}

impl NativeSidecars {
    /// For a pod scheduled to `node_name` (empty: not scheduled yet).
    pub fn for_pod(&self, node_name: &str) -> bool {
        match self.mode {
            NativeSidecarMode::Enabled => return true,
            NativeSidecarMode::Disabled => return false,
            NativeSidecarMode::Auto => {}
        }
        let Some(nodes) = &self.nodes else {
            return false;
        };
        if !node_name.is_empty() {
            if let Some(version) = nodes.kubelet_version(node_name) {
                return kubelet_supports_native_sidecars(&version);
            }
            tracing::warn!(
                node = node_name,
                "pod assigned to a node that is not known; checking every node"
            );
        }
        // One older kubelet turns the layout off for every pod: a pod may land on any node.
        nodes
            .all_kubelet_versions()
            .iter()
            .all(|v| kubelet_supports_native_sidecars(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_versions() {
        for (v, ok) in [
            ("v1.33.0", true),
            ("v1.34.2-gke.100", true),
            ("1.40", true),
            ("v1.32.9", false),
            ("v1.29.0", false),
            ("garbage", false),
            ("", false),
        ] {
            assert_eq!(kubelet_supports_native_sidecars(v), ok, "{v}");
        }
    }

    #[test]
    fn modes_and_nodes() {
        let table = Arc::new(NodeTable::default());
        let auto = NativeSidecars {
            mode: NativeSidecarMode::Auto,
            nodes: Some(table.clone()),
        };
        // No nodes at all: supported, as in Istio.
        assert!(auto.for_pod(""));
        table.upsert("new", "v1.34.1");
        assert!(auto.for_pod(""));
        table.upsert("old", "v1.31.0");
        assert!(!auto.for_pod(""));
        assert!(auto.for_pod("new"));
        assert!(!auto.for_pod("gone"));
        table.remove("old");
        assert!(auto.for_pod(""));
        assert!(
            !NativeSidecars::default().for_pod(""),
            "no cluster: classic"
        );
        let on = NativeSidecars {
            mode: NativeSidecarMode::Enabled,
            nodes: None,
        };
        assert!(on.for_pod(""));
        let off = NativeSidecars {
            mode: NativeSidecarMode::Disabled,
            nodes: Some(table),
        };
        assert!(!off.for_pod(""));
        let snapshot = Arc::new(BTreeMap::from([("n".to_string(), "v1.30.0".to_string())]));
        let from_state = NativeSidecars {
            mode: NativeSidecarMode::Auto,
            nodes: Some(Arc::new(move || snapshot.clone())),
        };
        assert!(!from_state.for_pod(""));
        assert_eq!(
            NativeSidecarMode::parse("auto"),
            Some(NativeSidecarMode::Auto)
        );
        assert_eq!(
            NativeSidecarMode::parse("true"),
            Some(NativeSidecarMode::Enabled)
        );
        assert_eq!(
            NativeSidecarMode::parse("false"),
            Some(NativeSidecarMode::Disabled)
        );
        assert_eq!(NativeSidecarMode::parse("maybe"), None);
        assert_eq!(
            NativeSidecarMode::from_env_value(None),
            NativeSidecarMode::Auto
        );
        assert_eq!(
            NativeSidecarMode::from_env_value(Some("")),
            NativeSidecarMode::Auto
        );
        assert_eq!(
            NativeSidecarMode::from_env_value(Some("yes")),
            NativeSidecarMode::Disabled
        );
    }
}
