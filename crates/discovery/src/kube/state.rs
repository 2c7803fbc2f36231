//! What the cluster source tells the rest of lateend besides configuration and services: the
//! namespaces and their labels (the injection webhook's namespace selection), the Nodes'
//! kubelet versions (native sidecars need every node at 1.33 or later), the Istio objects it
//! refused and why (for `status.validationMessages`), and whether the first lists are in.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use lateen_inject::webhook::NamespaceLabels;

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

    /// Whether there is at least one Node and every Node's kubelet is at least
    /// `major.minor` (`(1, 33)` for native sidecars).
    pub fn all_nodes_at_least(&self, major: u32, minor: u32) -> bool {
        let versions = self.kubelet_versions();
        !versions.is_empty()
            && versions
                .values()
                .all(|v| parse_version(v).is_some_and(|have| have >= (major, minor)))
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

/// The injection webhook asks for a namespace's labels here.
impl NamespaceLabels for ClusterState {
    fn labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self.read()
            .namespaces
            .get(namespace)
            .cloned()
            .unwrap_or_default()
    }
}

/// `(major, minor)` of a kubelet version such as `v1.36.2` or `v1.33.0-gke.1`.
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_sidecars_need_every_node_new_enough() {
        let state = ClusterState::new();
        assert!(!state.all_nodes_at_least(1, 33), "no nodes: unknown");
        state.set_kubelet_versions(
            [
                ("a".to_string(), "v1.36.2".to_string()),
                ("b".to_string(), "v1.33.0-gke.1".to_string()),
            ]
            .into(),
        );
        assert!(state.all_nodes_at_least(1, 33));
        state.set_kubelet_versions([("c".to_string(), "v1.32.9".to_string())].into());
        assert!(!state.all_nodes_at_least(1, 33));
    }
}
