//! The cluster's part of the registry, built as istiod builds it from Services, EndpointSlices,
//! Pods and Nodes:
//!
//! - host `NAME.NAMESPACE.svc.DOMAIN`, addresses the cluster IPs, ports with their protocol
//!   ([`super::protocol`]) and `targetPort`, `exportTo` from `networking.istio.io/exportTo`;
//! - headless Services (`clusterIP: None`) are passthrough (resolution NONE, no address);
//!   ExternalName Services resolve their external name by DNS, one endpoint per port;
//! - endpoints from every EndpointSlice of the Service: only ready ones (`ready` unset or
//!   true; Kubernetes marks `publishNotReadyAddresses` endpoints ready itself), so terminating
//!   and not-ready endpoints leave the load balancer as in istiod; an endpoint whose Pod has
//!   not been seen yet waits for it (istiod does the same, so that subsets never see a pod
//!   without its labels); the same address and ports in two slices counts once;
//! - each endpoint carries its Pod's labels (DestinationRule subsets), service account and
//!   locality (`istio-locality` label, else the Node's topology labels).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use lateen_api::networking::Resolution;

use super::objects::{NodeInfo, PodInfo, ServiceInfo, SliceInfo, pod_locality};
use super::service_cache::{Dirty, ServiceCache};
use crate::registry::{Instance, Service};

/// Every watched object the registry is built from, keyed by `namespace/name` (Nodes and
/// Namespaces by name). Values are shared so a snapshot of the maps is cheap.
#[derive(Clone, Debug, Default)]
pub struct ClusterObjects {
    pub services: HashMap<String, Arc<ServiceInfo>>,
    pub slices: HashMap<String, Arc<SliceInfo>>,
    pub pods: HashMap<String, Arc<PodInfo>>,
    pub nodes: HashMap<String, Arc<NodeInfo>>,
}

/// The registry services of every Service in namespaces `selected` accepts, sorted by host
/// (a whole conversion; the cluster source converts only what changed, see
/// [`super::service_cache`]).
pub fn build_services(
    objects: &ClusterObjects,
    domain: &str,
    selected: &dyn Fn(&str) -> bool,
) -> Vec<Arc<Service>> {
    let mut dirty = Dirty::default();
    dirty.all();
    ServiceCache::default()
        .update(objects, dirty, domain, selected)
        .0
}

/// The registry service of one Kubernetes Service with its slices.
pub(super) fn service_of(
    svc: &ServiceInfo,
    slices: &[&SliceInfo],
    objects: &ClusterObjects,
    domain: &str,
) -> Service {
    let hostname = format!("{}.{}.svc.{domain}", svc.name, svc.namespace);
    let origin = format!("Kubernetes Service {}/{}", svc.namespace, svc.name);
    let (resolution, instances) = if let Some(external) = &svc.external_name {
        let instance = Instance {
            address: external.clone(),
            ports: svc
                .ports
                .iter()
                .map(|p| (p.name.clone(), p.number))
                .collect(),
            labels: svc.labels.clone(),
            weight: 1,
            service_account: String::new(),
            locality: String::new(),
            origin,
        };
        (Resolution::Dns, vec![instance])
    } else {
        let resolution = if svc.cluster_ips.is_empty() {
            Resolution::None
        } else {
            Resolution::Static
        };
        (resolution, endpoints_of(svc, slices, objects))
    };
    Service {
        hostname,
        namespace: svc.namespace.clone(),
        ports: svc.ports.clone(),
        resolution,
        addresses: svc.cluster_ips.clone(),
        instances,
        export_to: svc.export_to.clone(),
    }
}

fn endpoints_of(
    svc: &ServiceInfo,
    slices: &[&SliceInfo],
    objects: &ClusterObjects,
) -> Vec<Instance> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for slice in slices {
        for endpoint in slice.endpoints.iter().filter(|e| e.ready) {
            let pod = match &endpoint.pod {
                Some(name) => match objects.pods.get(&format!("{}/{name}", svc.namespace)) {
                    Some(p) => Some(p.as_ref()),
                    // Wait for the pod: without it the endpoint would lack labels.
                    None => continue,
                },
                None => None,
            };
            let node_name = endpoint
                .node
                .as_deref()
                .or(pod.map(|p| p.node.as_str()))
                .unwrap_or_default();
            let node = objects.nodes.get(node_name).map(Arc::as_ref);
            for address in &endpoint.addresses {
                if !seen.insert((address.clone(), slice.ports.clone())) {
                    continue;
                }
                out.push(Instance {
                    address: address.clone(),
                    ports: slice.ports.clone(),
                    labels: pod.map(|p| p.labels.clone()).unwrap_or_default(),
                    weight: 1,
                    service_account: pod.map(|p| p.service_account.clone()).unwrap_or_default(),
                    locality: pod_locality(pod, node),
                    origin: match &endpoint.pod {
                        Some(name) => format!("Kubernetes Pod {}/{name}", svc.namespace),
                        None => format!("Kubernetes Service {}/{}", svc.namespace, svc.name),
                    },
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.address, &a.ports).cmp(&(&b.address, &b.ports)));
    out
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
