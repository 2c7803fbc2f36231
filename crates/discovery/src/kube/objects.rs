//! What lateend keeps of each watched Kubernetes object: only the fields the registry, the
//! injector and discovery selectors read, so that thousands of Pods cost little memory. Each
//! `from_*` runs in the watch task, outside any lock.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::registry::ServicePort;

/// Annotation limiting where a Service is visible (`exportTo` of a ServiceEntry).
pub const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";
/// EndpointSlice label naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Pod label overriding the locality (`region.zone.subzone`).
pub const POD_LOCALITY_LABEL: &str = "istio-locality";

/// A Service, as the registry needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// `spec.clusterIPs` (or `clusterIP`); empty for headless and ExternalName Services.
    pub cluster_ips: Vec<String>,
    /// `spec.type: ExternalName` with a name.
    pub external_name: Option<String>,
    pub ports: Vec<ServicePort>,
    /// The `networking.istio.io/exportTo` annotation, split.
    pub export_to: Vec<String>,
}

impl ServiceInfo {
    pub fn from_service(svc: &Service) -> Self {
        let meta = &svc.metadata;
        let spec = svc.spec.clone().unwrap_or_default();
        let mut cluster_ips = spec.cluster_ips.clone().unwrap_or_default();
        if cluster_ips.is_empty()
            && let Some(ip) = &spec.cluster_ip
        {
            cluster_ips.push(ip.clone());
        }
        cluster_ips.retain(|ip| !ip.is_empty() && ip != "None");
        let external_name = (spec.type_.as_deref() == Some("ExternalName"))
            .then(|| spec.external_name.clone())
            .flatten()
            .filter(|n| !n.is_empty());
        if external_name.is_some() {
            cluster_ips.clear();
        }
        let ports = spec
            .ports
            .unwrap_or_default()
            .iter()
            .map(|p| {
                let name = p.name.clone().unwrap_or_default();
                ServicePort {
                    protocol: super::protocol::port_protocol(
                        p.port,
                        &name,
                        p.protocol.as_deref(),
                        p.app_protocol.as_deref(),
                    ),
                    name,
                    number: u32::try_from(p.port).unwrap_or_default(),
                    target_port: match &p.target_port {
                        Some(IntOrString::Int(n)) => u32::try_from(*n).ok().filter(|n| *n > 0),
                        _ => None,
                    },
                }
            })
            .collect();
        let export_to = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(EXPORT_TO_ANNOTATION))
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            cluster_ips,
            external_name,
            ports,
            export_to,
        }
    }
}

/// One endpoint of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    pub addresses: Vec<String>,
    /// `conditions.ready` (unset means ready, as the API defines it).
    pub ready: bool,
    /// The Pod behind it (same namespace as the slice), from `targetRef`.
    pub pod: Option<String>,
    pub node: Option<String>,
}

/// An EndpointSlice of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    pub namespace: String,
    /// The Service it belongs to (`kubernetes.io/service-name`).
    pub service: String,
    /// Port name (the Service port's name) → port on the endpoints.
    pub ports: BTreeMap<String, u32>,
    pub endpoints: Vec<EndpointInfo>,
}

impl SliceInfo {
    /// `None` for slices of no Service and for FQDN slices.
    pub fn from_slice(slice: &EndpointSlice) -> Option<Self> {
        let meta = &slice.metadata;
        let service = meta.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
        if slice.address_type == "FQDN" {
            return None;
        }
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let port = u32::try_from(p.port?).ok()?;
                Some((p.name.clone().unwrap_or_default(), port))
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .flatten()
            .map(|e| EndpointInfo {
                addresses: e.addresses.clone(),
                ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
                pod: e
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                    .and_then(|r| r.name.clone()),
                node: e.node_name.clone(),
            })
            .collect();
        Some(Self {
            namespace: meta.namespace.clone().unwrap_or_default(),
            service,
            ports,
            endpoints,
        })
    }
}

/// A Pod: what its endpoints carry (labels for subsets, service account for identity) and
/// where it runs (for locality).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub node: String,
    pub ips: Vec<String>,
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let mut ips: Vec<String> = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().map(|i| i.ip.clone()).collect())
            .unwrap_or_default();
        if ips.is_empty()
            && let Some(ip) = status.and_then(|s| s.pod_ip.clone())
        {
            ips.push(ip);
        }
        Self {
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            service_account: spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".to_string()),
            node: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            ips,
        }
    }
}

/// A Node: its locality and kubelet version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// `region/zone/subzone` from the topology labels; empty when none is set.
    pub locality: String,
    pub kubelet_version: String,
}

impl NodeInfo {
    pub fn from_node(node: &Node) -> Self {
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let label = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| labels.get(*n).cloned())
                .unwrap_or_default()
        };
        let region = label(&[
            "topology.kubernetes.io/region",
            "failure-domain.beta.kubernetes.io/region",
        ]);
        let zone = label(&[
            "topology.kubernetes.io/zone",
            "failure-domain.beta.kubernetes.io/zone",
        ]);
        let subzone = label(&["topology.istio.io/subzone"]);
        let locality = if region.is_empty() && zone.is_empty() && subzone.is_empty() {
            String::new()
        } else {
            format!("{region}/{zone}/{subzone}")
        };
        Self {
            locality,
            kubelet_version: node
                .status
                .as_ref()
                .and_then(|s| s.node_info.as_ref())
                .map(|i| i.kubelet_version.clone())
                .unwrap_or_default(),
        }
    }
}

/// A Namespace's labels (discovery selectors and the injection webhook read them).
pub fn namespace_labels(ns: &Namespace) -> BTreeMap<String, String> {
    ns.metadata.labels.clone().unwrap_or_default()
}

/// A pod's locality: its `istio-locality` label (`region.zone.subzone`), else its node's.
pub fn pod_locality(pod: Option<&PodInfo>, node: Option<&NodeInfo>) -> String {
    if let Some(label) = pod.and_then(|p| p.labels.get(POD_LOCALITY_LABEL)) {
        return label.replace('.', "/");
    }
    node.map(|n| n.locality.clone()).unwrap_or_default()
}
