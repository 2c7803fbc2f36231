//! What the cluster source tells the rest of lateend besides configuration and services: the
//! namespaces and their labels, the Nodes' kubelet versions (the injection webhook asks them
//! whether to lay sidecars out natively, see `lateen_inject::native`), the Istio objects it
//! refused and why (for `status.validationMessages`), and whether the first lists are in.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use lateen_inject::native::NodeVersions;

use super::istio::RejectedObject;

#[derive(Debug, Default)]
struct Published {
    namespaces: Arc<BTreeMap<String, BTreeMap<String, String>>>,
    kubelet_versions: Arc<BTreeMap<String, String>>,
    rejected: Arc<Vec<RejectedObject>>,
    synced: bool,
}

/// Shared, read-mostly view of the cluster; swapped whole by the source after each change.
#[derive(Debug, Default)]
pub struct ClusterState {
    inner: RwLock<Published>,
}

impl ClusterState {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Published> {
        // Every write is a whole-field assignment: a poisoned lock still holds whole values.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Published> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Every namespace the cluster has (selected by discovery selectors or not) → its labels.
    pub fn namespaces(&self) -> Arc<BTreeMap<String, BTreeMap<String, String>>> {
        self.read().namespaces.clone()
    }

    /// Node name → kubelet version (`v1.36.2`).
    pub fn kubelet_versions(&self) -> Arc<BTreeMap<String, String>> {
        self.read().kubelet_versions.clone()
    }

    /// The Istio objects the cluster holds that lateend refused (their last good version, if
    /// any, stays in force), sorted by kind, namespace and name.
    pub fn rejected(&self) -> Arc<Vec<RejectedObject>> {
        self.read().rejected.clone()
    }

    /// Whether every watch has delivered its first complete list (a kind that could not be
    /// listed at start — CRD missing, RBAC, API server down — counts; it is retried).
    pub fn synced(&self) -> bool {
        self.read().synced
    }

    pub(crate) fn set_namespaces(&self, namespaces: BTreeMap<String, BTreeMap<String, String>>) {
        self.write().namespaces = Arc::new(namespaces);
    }

    pub(crate) fn set_kubelet_versions(&self, versions: BTreeMap<String, String>) {
        self.write().kubelet_versions = Arc::new(versions);
    }

    pub(crate) fn set_rejected(&self, rejected: Vec<RejectedObject>) {
        self.write().rejected = Arc::new(rejected);
    }

    pub(crate) fn set_synced(&self) {
        self.write().synced = true;
    }
}

/// The injection webhook asks the Nodes' kubelet versions here (native sidecars).
impl NodeVersions for ClusterState {
    fn kubelet_version(&self, name: &str) -> Option<String> {
        self.read().kubelet_versions.get(name).cloned()
    }

    fn all_kubelet_versions(&self) -> Vec<String> {
        self.read().kubelet_versions.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lateen_inject::native::{NativeSidecarMode, NativeSidecars};

    /// What the webhook decides from this state: Istio's rule (every kubelet >= 1.33; no
    /// Nodes at all counts as yes).
    #[test]
    fn native_sidecars_need_every_node_new_enough() {
        let state = ClusterState::new();
        let native = NativeSidecars {
            mode: NativeSidecarMode::Auto,
            nodes: Some(state.clone()),
        };
        assert!(native.for_pod(""), "no nodes: as Istio, native");
        state.set_kubelet_versions(
            [
                ("a".to_string(), "v1.36.2".to_string()),
                ("b".to_string(), "v1.33.0-gke.1".to_string()),
            ]
            .into(),
        );
        assert!(native.for_pod(""));
        state.set_kubelet_versions([("c".to_string(), "v1.32.9".to_string())].into());
        assert!(!native.for_pod(""));
        assert!(!native.for_pod("c"));
    }
}
