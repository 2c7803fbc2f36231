//! The service registry: services from ServiceEntry, their endpoints from inline `endpoints`,
//! from WorkloadEntry objects and from auto-registered proxies (those a WorkloadGroup admits)
//! selected by `workloadSelector`.
//!
//! Hosts are taken as written in the ServiceEntry (lower-cased), as Istio does; short names in
//! VirtualService/DestinationRule are resolved by the translator against their namespace.

pub mod autoreg;
mod endpoint_changes;
pub mod workload_group;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use lateen_api::Object;
use lateen_api::networking::{Resolution, ServiceEntry};

use crate::store::Config;
pub use autoreg::{AutoRegistrationCounts, AutoRegistry};
pub use endpoint_changes::EndpointChanges;
pub use workload_group::{Candidate, Refusal, Workload};

/// A port of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub number: u32,
    /// Upper-case protocol (`HTTP`, `HTTP2`, `GRPC`, `TCP`, ...); empty when unset.
    pub protocol: String,
    pub target_port: Option<u32>,
}

impl ServicePort {
    /// Whether HTTP routing applies (HTTP, HTTP2, GRPC, GRPC-Web; or a name like `http-x`).
    pub fn is_http(&self) -> bool {
        let p = if self.protocol.is_empty() {
            self.name
                .split('-')
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase()
        } else {
            self.protocol.clone()
        };
        matches!(p.as_str(), "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB")
    }
}

/// One workload behind a service.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Instance {
    /// IP (or DNS name for DNS resolution).
    pub address: String,
    /// Service port name to workload port.
    pub ports: BTreeMap<String, u32>,
    pub labels: BTreeMap<String, String>,
    pub weight: u32,
    pub service_account: String,
    /// `region/zone/subzone` (empty when not set).
    pub locality: String,
    /// Where it came from (`ServiceEntry ns/name`, `WorkloadEntry ns/name`, `proxy ID`).
    pub origin: String,
}

/// A service of the mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub hostname: String,
    pub namespace: String,
    pub ports: Vec<ServicePort>,
    pub resolution: Resolution,
    pub addresses: Vec<String>,
    pub instances: Vec<Instance>,
    /// `exportTo` as written (empty = everywhere).
    pub export_to: Vec<String>,
}

impl Service {
    pub fn port(&self, number: u32) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }

    /// The workload port an instance serves `port` on: its named port, else the target port,
    /// else the service port.
    pub fn endpoint_port(&self, instance: &Instance, port: &ServicePort) -> u32 {
        instance
            .ports
            .get(&port.name)
            .copied()
            .or(port.target_port)
            .unwrap_or(port.number)
    }

    /// Whether a proxy in `namespace` may see this service (`exportTo`).
    pub fn visible_from(&self, namespace: &str) -> bool {
        crate::translate::exported_to(&self.export_to, &self.namespace, namespace)
    }
}

/// Every service, sorted by hostname, with lookups by hostname and by instance address
/// (translation asks both for every service of every proxy view). Services are shared: a
/// registry rebuilt after one EndpointSlice changed copies pointers, not a thousand services.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    pub services: Vec<Arc<Service>>,
    /// Index into `services`; shared while the hostnames stay the same.
    by_host: Arc<HashMap<String, usize>>,
    /// How many instances (over every service) sit at each address.
    instance_addresses: HashMap<String, u32>,
}

impl PartialEq for Registry {
    fn eq(&self, other: &Self) -> bool {
        // The indexes follow from the services.
        self.services == other.services
    }
}

impl Eq for Registry {}

impl Registry {
    /// Builds the registry from the configuration and the registered proxies.
    pub fn build(config: &Config, workloads: &[Workload]) -> Self {
        Self::build_with(config, workloads, &[])
    }

    /// [`Registry::build`] plus the services of a Kubernetes cluster (`crate::kube`). As in
    /// istiod, a Kubernetes Service takes precedence over a ServiceEntry for the same host
    /// (nobody can squat on a Service's name with a ServiceEntry).
    pub fn build_with(config: &Config, workloads: &[Workload], cluster: &[Arc<Service>]) -> Self {
        let mut services: BTreeMap<String, Arc<Service>> = cluster
            .iter()
            .map(|s| (s.hostname.clone(), s.clone()))
            .collect();
        let mut instances = Vec::new();
        for we in config.workload_entries() {
            instances.push((
                we.namespace().to_string(),
                Instance {
                    address: we.spec.address.clone(),
                    ports: we.spec.ports.clone(),
                    labels: we.spec.labels.clone(),
                    weight: we.spec.weight.unwrap_or(1).max(1),
                    service_account: we.spec.service_account.clone().unwrap_or_default(),
                    locality: we.spec.locality.clone().unwrap_or_default(),
                    origin: format!("WorkloadEntry {}/{}", we.namespace(), we.name()),
                },
            ));
        }
        for w in workloads {
            instances.push((w.namespace.clone(), w.instance()));
        }
        for se in config.service_entries() {
            for host in &se.spec.hosts {
                let hostname = host.to_ascii_lowercase();
                if let Some(existing) = services.get(&hostname) {
                    let by = if cluster.iter().any(|c| c.hostname == existing.hostname) {
                        "a Kubernetes Service"
                    } else {
                        "an earlier ServiceEntry"
                    };
                    tracing::debug!(host = %hostname, "host already defined by {by}");
                    continue;
                }
                services.insert(
                    hostname.clone(),
                    Arc::new(service_of(se, hostname, &instances)),
                );
            }
        }
        Self::from_services(services.into_values().collect())
    }

    /// A registry of these services (sorted by hostname by the caller).
    pub fn from_services(services: Vec<Arc<Service>>) -> Self {
        let by_host = Arc::new(
            services
                .iter()
                .enumerate()
                .map(|(index, s)| (s.hostname.clone(), index))
                .collect(),
        );
        let mut instance_addresses = HashMap::new();
        for service in &services {
            count_addresses(&mut instance_addresses, service, 1);
        }
        Self {
            services,
            by_host,
            instance_addresses,
        }
    }

    pub fn service(&self, hostname: &str) -> Option<&Service> {
        self.by_host
            .get(hostname)
            .and_then(|index| self.services.get(*index))
            .map(Arc::as_ref)
    }

    /// Whether some service has an instance at this address.
    pub fn has_instance_at(&self, address: &str) -> bool {
        self.instance_addresses.contains_key(address)
    }

    /// Every port number some service uses.
    pub fn ports(&self) -> BTreeSet<u32> {
        self.services
            .iter()
            .flat_map(|s| s.ports.iter().map(|p| p.number))
            .collect()
    }
}

/// Adds `delta` (1 or -1) to the count of each of `service`'s instance addresses; an address
/// whose count reaches 0 leaves the map.
fn count_addresses(counts: &mut HashMap<String, u32>, service: &Service, delta: i32) {
    for instance in &service.instances {
        if delta > 0 {
            *counts.entry(instance.address.clone()).or_default() += 1;
        } else if let Some(count) = counts.get_mut(&instance.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&instance.address);
            }
        }
    }
}

fn service_of(se: &Object<ServiceEntry>, hostname: String, all: &[(String, Instance)]) -> Service {
    let origin = format!("ServiceEntry {}/{}", se.namespace(), se.name());
    let mut instances: Vec<Instance> = se
        .spec
        .endpoints
        .iter()
        .map(|e| Instance {
            address: e.address.clone(),
            ports: e.ports.clone(),
            labels: e.labels.clone(),
            weight: e.weight.unwrap_or(1).max(1),
            service_account: e.service_account.clone().unwrap_or_default(),
            locality: e.locality.clone().unwrap_or_default(),
            origin: origin.clone(),
        })
        .collect();
    if let Some(selector) = &se.spec.workload_selector {
        instances.extend(
            all.iter()
                .filter(|(ns, i)| ns == se.namespace() && labels_match(&selector.labels, &i.labels))
                .map(|(_, i)| i.clone()),
        );
    }
    Service {
        hostname,
        namespace: se.namespace().to_string(),
        ports: se
            .spec
            .ports
            .iter()
            .map(|p| ServicePort {
                name: p.name.clone(),
                number: p.number,
                protocol: p.protocol.to_ascii_uppercase(),
                target_port: p.target_port,
            })
            .collect(),
        resolution: se.spec.resolution(),
        addresses: se.spec.addresses.clone(),
        instances,
        export_to: se.spec.export_to.clone(),
    }
}

/// Whether `labels` has every key/value of `selector` (an empty selector matches everything).
pub fn labels_match(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        let loaded = lateen_api::load(yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
        Config {
            resources: loaded.resources().cloned().collect(),
            ..Config::default()
        }
    }

    const SE: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}, ports: {http: 19080}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other, namespace: default}
spec: {address: 10.0.0.9, labels: {app: ratings}}
"#;

    #[test]
    fn a_kubernetes_service_wins_its_host_over_a_service_entry() {
        let cfg = config(SE);
        let kube = Service {
            hostname: "reviews.default.svc.cluster.local".into(),
            namespace: "default".into(),
            ports: vec![ServicePort {
                name: "http".into(),
                number: 9080,
                protocol: "HTTP".into(),
                target_port: None,
            }],
            resolution: Resolution::Static,
            addresses: vec!["10.96.0.9".into()],
            instances: Vec::new(),
            export_to: Vec::new(),
        };
        let reg = Registry::build_with(&cfg, &[], &[Arc::new(kube.clone())]);
        assert_eq!(reg.service(&kube.hostname), Some(&kube));
        assert_eq!(reg.services.len(), 1);
    }

    #[test]
    fn workload_selector_picks_entries_and_proxies() {
        let cfg = config(SE);
        let proxy = Workload {
            id: "sidecar~10.0.0.2~reviews-v2.default~default.svc.cluster.local".into(),
            address: "10.0.0.2".into(),
            namespace: "default".into(),
            group: "reviews".into(),
            labels: [
                ("app".to_string(), "reviews".to_string()),
                ("version".to_string(), "v2".to_string()),
            ]
            .into(),
            service_account: "reviews".into(),
            ports: BTreeMap::new(),
            locality: String::new(),
            weight: 1,
        };
        let reg = Registry::build(&cfg, &[proxy]);
        let svc = reg
            .service("reviews.default.svc.cluster.local")
            .unwrap_or_else(|| panic!("no service"));
        let addrs: Vec<&str> = svc.instances.iter().map(|i| i.address.as_str()).collect();
        assert_eq!(addrs, ["10.0.0.1", "10.0.0.2"]);
        let port = &svc.ports[0];
        assert_eq!(svc.endpoint_port(&svc.instances[0], port), 19080);
        assert_eq!(svc.endpoint_port(&svc.instances[1], port), 9080);
    }
}
