//! The cluster's registry services, converted again only where the watches changed something.
//!
//! A busy cluster changes a few EndpointSlices and Pods at a time (bench/kube.sh writes 50
//! endpoint changes a second into 1000 Services), so converting every Service, slice and Pod
//! after each change kept lateend's core busy and made every push wait for the rebuild. The
//! watches mark what they touched ([`Dirty`]); [`ServiceCache::update`] converts just those
//! Services and hands the others on as the same shared values, which the control plane then
//! recognises as unchanged without comparing them.
//!
//! What cannot be pinned to one Service marks everything: a relist, a Node (locality), a
//! Namespace (discovery selectors, `exportTo` defaults) or a MeshConfig change.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::services::{ClusterObjects, service_of};
use crate::registry::Service;

/// What changed since the last conversion.
#[derive(Debug, Default)]
pub struct Dirty {
    all: bool,
    /// Services by `namespace/name`.
    services: HashSet<String>,
    /// Pods by `namespace/name`: their Services are found through the slices that list them.
    pods: HashSet<String>,
}

impl Dirty {
    /// Everything must be converted again.
    pub fn all(&mut self) {
        self.all = true;
    }

    /// The Service `namespace/name` (its spec, or one of its slices, changed).
    pub fn service(&mut self, namespace: &str, name: &str) {
        if !self.all {
            self.services.insert(format!("{namespace}/{name}"));
        }
    }

    /// The Service with this watch key (`namespace/name`).
    pub fn service_key(&mut self, key: &str) {
        if !self.all {
            self.services.insert(key.to_string());
        }
    }

    /// The Pod with this watch key (`namespace/name`): its labels, service account or
    /// locality feed the endpoints of every Service whose slices list it.
    pub fn pod(&mut self, key: &str) {
        if !self.all {
            self.pods.insert(key.to_string());
        }
    }

    /// Whether anything is marked.
    pub fn is_empty(&self) -> bool {
        !self.all && self.services.is_empty() && self.pods.is_empty()
    }

    /// The Service keys to convert again: the marked ones and those whose slices list a
    /// marked Pod. `None` means every Service.
    fn service_keys(self, objects: &ClusterObjects) -> Option<HashSet<String>> {
        if self.all {
            return None;
        }
        let mut keys = self.services;
        if !self.pods.is_empty() {
            for slice in objects.slices.values() {
                let lists_a_marked_pod = slice.endpoints.iter().any(|e| {
                    e.pod.as_ref().is_some_and(|pod| {
                        self.pods.contains(&format!("{}/{pod}", slice.namespace))
                    })
                });
                if lists_a_marked_pod {
                    keys.insert(format!("{}/{}", slice.namespace, slice.service));
                }
            }
        }
        Some(keys)
    }
}

/// The converted services by Service key (`namespace/name`).
#[derive(Debug, Default)]
pub struct ServiceCache {
    by_key: HashMap<String, Arc<Service>>,
}

impl ServiceCache {
    /// Converts the Services `dirty` names again (every one when it says so; those in
    /// namespaces `selected` refuses are dropped), keeps the rest as they were, and returns
    /// every service sorted by host, with how many were converted.
    pub fn update(
        &mut self,
        objects: &ClusterObjects,
        dirty: Dirty,
        domain: &str,
        selected: &dyn Fn(&str) -> bool,
    ) -> (Vec<Arc<Service>>, usize) {
        let keys = match dirty.service_keys(objects) {
            Some(keys) => keys,
            None => {
                self.by_key.clear();
                objects.services.keys().cloned().collect()
            }
        };
        let converted = keys.len();
        if !keys.is_empty() {
            let slices_of = slices_by_service(objects, &keys);
            for key in keys {
                match objects.services.get(&key) {
                    Some(svc) if selected(&svc.namespace) => {
                        let slices = slices_of.get(key.as_str()).map(Vec::as_slice);
                        let service = service_of(svc, slices.unwrap_or_default(), objects, domain);
                        self.by_key.insert(key, Arc::new(service));
                    }
                    _ => {
                        self.by_key.remove(&key);
                    }
                }
            }
        }
        let mut out: Vec<Arc<Service>> = self.by_key.values().cloned().collect();
        out.sort_by(|a, b| a.hostname.cmp(&b.hostname));
        (out, converted)
    }
}

/// The slices of the Services in `keys`, by Service key.
fn slices_by_service<'a>(
    objects: &'a ClusterObjects,
    keys: &HashSet<String>,
) -> HashMap<String, Vec<&'a super::objects::SliceInfo>> {
    let mut out: HashMap<String, Vec<_>> = HashMap::new();
    for slice in objects.slices.values() {
        let key = format!("{}/{}", slice.namespace, slice.service);
        if keys.contains(&key) {
            out.entry(key).or_default().push(slice.as_ref());
        }
    }
    out
}

#[cfg(test)]
#[path = "service_cache_tests.rs"]
mod tests;
