//! The push's short path for endpoint-only changes (istiod's EDS-only incremental push).
//!
//! A generation remembers the snapshots of the one before ([`Earlier`]) with the registry and
//! configuration epoch they were translated from. When the configuration is the same and the
//! registries differ only in the endpoints of some EDS services
//! ([`crate::registry::EndpointChanges`]), a view's next snapshot is its previous one with
//! those services' ClusterLoadAssignments translated again and every other resource shared.
//! A view whose own addresses are among the changed instances (a proxy whose inbound side
//! may have changed) is translated in full. The result is the same as a full translation; the
//! tests below check that for random endpoint changes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use lateen_xds::types::ENDPOINT;
use lateen_xds::{Snapshot, VersionedResource};

use super::Generation;
use crate::registry::{EndpointChanges, Registry, Service};
use crate::translate::ProxyView;

/// The snapshots a generation starts from, and what they were translated from.
#[derive(Clone)]
pub(super) struct Earlier {
    pub config_epoch: u64,
    pub registry: Arc<Registry>,
    pub snapshots: HashMap<ProxyView, Arc<Snapshot>>,
}

impl Earlier {
    /// `previous`'s snapshots; when it translated none (it was replaced before any proxy
    /// asked), the ones it started from.
    pub fn of(previous: &Generation) -> Option<Earlier> {
        let snapshots = previous.lock().clone();
        if snapshots.is_empty() {
            return previous
                .earlier
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
        }
        Some(Earlier {
            config_epoch: previous.config_epoch,
            registry: previous.registry.clone(),
            snapshots,
        })
    }
}

/// Whether a view's snapshot can take the short path: none of its own addresses is among the
/// changed instances (else its inbound listeners and clusters may change).
pub(super) fn applies(changes: &EndpointChanges, view: &ProxyView) -> bool {
    !view
        .instance_addresses
        .iter()
        .any(|a| changes.addresses.contains(a))
}

/// `earlier` with the ClusterLoadAssignments in `changed` put in; those whose version did not
/// change stay shared, so a change a view does not see leaves its snapshot equal by pointer.
pub(super) fn next_snapshot(
    earlier: &Snapshot,
    changed: &[(String, VersionedResource)],
) -> Snapshot {
    let mut next = earlier.clone();
    for (name, resource) in changed {
        if earlier
            .get(ENDPOINT, name)
            .is_some_and(|e| e.version == resource.version)
        {
            continue;
        }
        next.insert_versioned(name.clone(), resource.clone());
    }
    next
}

/// How the cluster's services changed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ClusterServicesChange {
    None,
    /// These hosts changed; every host is still there and no other came.
    InPlace(BTreeSet<String>),
    AddedOrRemoved,
}

/// `new` as shared services, reusing `old`'s `Arc` of every service that did not change, and
/// how they changed. A service handed on as the same `Arc` (the cluster source's cache does
/// that for every Service it did not convert again) is unchanged without being compared.
pub(super) fn share_unchanged_services(
    old: &[Arc<Service>],
    new: Vec<Arc<Service>>,
) -> (Vec<Arc<Service>>, ClusterServicesChange) {
    let by_host: HashMap<&str, &Arc<Service>> =
        old.iter().map(|s| (s.hostname.as_str(), s)).collect();
    let mut added_or_removed = old.len() != new.len();
    let mut changed = BTreeSet::new();
    let shared = new
        .into_iter()
        .map(|service| match by_host.get(service.hostname.as_str()) {
            Some(same) if Arc::ptr_eq(same, &service) || ***same == *service => Arc::clone(same),
            Some(_) => {
                changed.insert(service.hostname.clone());
                service
            }
            None => {
                added_or_removed = true;
                service
            }
        })
        .collect();
    let change = if added_or_removed {
        ClusterServicesChange::AddedOrRemoved
    } else if changed.is_empty() {
        ClusterServicesChange::None
    } else {
        ClusterServicesChange::InPlace(changed)
    };
    (shared, change)
}

#[cfg(test)]
#[path = "endpoint_only_tests.rs"]
mod tests;
