//! Endpoint-only changes between two registries, and the registry rebuild for them.
//!
//! Kubernetes changes endpoints all the time (an EndpointSlice write per pod coming or going)
//! and services rarely. When only the instances of some services changed, and those services'
//! endpoints reach proxies over EDS only, every Envoy resource except those services'
//! ClusterLoadAssignments stays as it was (istiod's EDS-only incremental push); the push
//! ([`crate::push`]) then re-translates just those. [`Registry::endpoint_changes`] says whether
//! that holds and what changed; [`Registry::with_cluster_changes`] rebuilds a registry for a
//! change of some cluster services without merging every service again.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use lateen_api::networking::Resolution;

use super::{Instance, Registry, Service, count_addresses};

/// The services whose instances changed, and nothing else did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointChanges {
    /// Hostnames of the services whose instances changed.
    pub hosts: BTreeSet<String>,
    /// Addresses of the instances added, removed or changed. A proxy at one of them may be
    /// that instance: its inbound side (listeners, inbound clusters) may change too.
    pub addresses: HashSet<String>,
}

impl Service {
    /// Whether proxies get this service's endpoints over EDS only: its clusters do not embed
    /// them (DNS clusters carry their targets; a passthrough service without instances has an
    /// ORIGINAL_DST cluster). Mirrors the choice of cluster type in
    /// [`crate::translate::clusters`].
    pub fn endpoints_via_eds(&self) -> bool {
        match self.resolution {
            Resolution::Dns | Resolution::DnsRoundRobin => false,
            Resolution::None => !self.instances.is_empty(),
            Resolution::Static | Resolution::DynamicDns => true,
        }
    }

    /// Whether two services differ in their instances at most.
    fn same_but_instances(&self, other: &Service) -> bool {
        self.hostname == other.hostname
            && self.namespace == other.namespace
            && self.ports == other.ports
            && self.resolution == other.resolution
            && self.addresses == other.addresses
            && self.export_to == other.export_to
    }
}

impl Registry {
    /// What changed from `self` to `next` when only endpoints of EDS services did; `None`
    /// when anything else differs (a service added, removed, or changed in more than its
    /// instances, or the endpoints of a service whose clusters embed them).
    pub fn endpoint_changes(&self, next: &Registry) -> Option<EndpointChanges> {
        if self.services.len() != next.services.len() {
            return None;
        }
        let mut changes = EndpointChanges::default();
        for (old, new) in self.services.iter().zip(&next.services) {
            if Arc::ptr_eq(old, new) {
                continue;
            }
            if !old.same_but_instances(new) {
                return None;
            }
            if old.instances == new.instances {
                continue;
            }
            if !old.endpoints_via_eds() || !new.endpoints_via_eds() {
                return None;
            }
            // The clusters' mTLS SANs name the service's accounts (translate/mtls_outbound.rs):
            // a change of that set is a cluster change, not an endpoint-only one.
            let accounts = |s: &Service| -> BTreeSet<String> {
                s.instances
                    .iter()
                    .map(|i| i.service_account.clone())
                    .collect()
            };
            if accounts(old) != accounts(new) {
                return None;
            }
            changes.hosts.insert(new.hostname.clone());
            let before: HashSet<&Instance> = old.instances.iter().collect();
            let after: HashSet<&Instance> = new.instances.iter().collect();
            changes.addresses.extend(
                before
                    .symmetric_difference(&after)
                    .map(|i| i.address.clone()),
            );
        }
        Some(changes)
    }

    /// This registry with the services of `hosts` replaced by their versions in `cluster` (the
    /// Kubernetes cluster's services), sharing every other service. Only for hosts that were
    /// cluster services before and still are (a cluster service wins its host over any
    /// ServiceEntry, so nothing else of the merge depends on them); `None` when one of them is
    /// not in both, and the full merge ([`Registry::build_with`]) must run.
    pub fn with_cluster_changes(
        &self,
        cluster: &[Arc<Service>],
        hosts: &BTreeSet<String>,
    ) -> Option<Registry> {
        let mut next = self.clone();
        for host in hosts {
            let index = *self.by_host.get(host)?;
            let replacement = cluster.iter().find(|s| &s.hostname == host)?;
            let old = self.services.get(index)?;
            count_addresses(&mut next.instance_addresses, old, -1);
            count_addresses(&mut next.instance_addresses, replacement, 1);
            next.services[index] = replacement.clone();
        }
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ServicePort;

    fn service(host: &str, resolution: Resolution, addresses: &[&str]) -> Arc<Service> {
        Arc::new(Service {
            hostname: host.into(),
            namespace: "default".into(),
            ports: vec![ServicePort {
                name: "http".into(),
                number: 80,
                protocol: "HTTP".into(),
                target_port: None,
            }],
            resolution,
            addresses: Vec::new(),
            instances: addresses
                .iter()
                .map(|a| Instance {
                    address: (*a).into(),
                    ports: Default::default(),
                    labels: Default::default(),
                    weight: 1,
                    service_account: String::new(),
                    locality: String::new(),
                    origin: String::new(),
                })
                .collect(),
            export_to: Vec::new(),
        })
    }

    #[test]
    fn only_eds_endpoints_changing_is_an_endpoint_change() {
        let a = service("a", Resolution::Static, &["10.0.0.1", "10.0.0.2"]);
        let b = service("b", Resolution::Static, &["10.0.1.1"]);
        let before = Registry::from_services(vec![a.clone(), b.clone()]);

        let a2 = service("a", Resolution::Static, &["10.0.0.2", "10.0.0.3"]);
        let after = before
            .with_cluster_changes(&[a2.clone(), b.clone()], &["a".to_string()].into())
            .unwrap_or_else(|| panic!("a is in both"));
        assert_eq!(after, Registry::from_services(vec![a2, b.clone()]));
        assert!(after.has_instance_at("10.0.0.3") && !after.has_instance_at("10.0.0.1"));
        let changes = before
            .endpoint_changes(&after)
            .unwrap_or_else(|| panic!("endpoints only"));
        assert_eq!(changes.hosts, BTreeSet::from(["a".to_string()]));
        assert_eq!(
            changes.addresses,
            HashSet::from(["10.0.0.1".to_string(), "10.0.0.3".to_string()])
        );

        // A port change, a DNS service's endpoints, a passthrough service losing its last
        // instance: the clusters change too.
        let mut ported = (*b).clone();
        ported.ports[0].number = 81;
        let dns = |a: &[&str]| service("d", Resolution::Dns, a);
        let none = |a: &[&str]| service("n", Resolution::None, a);
        for (old, new) in [
            (b.clone(), Arc::new(ported)),
            (dns(&["x.example"]), dns(&["y.example"])),
            (none(&["10.0.2.1"]), none(&[])),
        ] {
            let old_reg = Registry::from_services(vec![old]);
            let new_reg = Registry::from_services(vec![new]);
            assert_eq!(old_reg.endpoint_changes(&new_reg), None);
        }
        assert!(
            before
                .with_cluster_changes(&[b], &["c".to_string()].into())
                .is_none(),
            "a new host needs the full merge"
        );
    }
}
