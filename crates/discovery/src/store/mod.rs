//! The configuration the control plane runs on: every accepted Istio resource plus MeshConfig.
//! [`folder::FolderStore`] fills it from a folder of YAML files; [`sources::ConfigSources`]
//! merges it with the cluster's (`crate::kube`).

pub mod folder;
pub mod sources;
mod telemetry_check;

use lateen_api::networking::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry, WorkloadGroup,
};
use lateen_api::{MeshConfig, Object, Resource};

pub use folder::{FolderStore, ScanOutcome};

/// An immutable view of the accepted configuration. Resources are ordered by file name, then by
/// position in the file, so "first wins" conflicts resolve the same way on every rebuild.
#[derive(Clone, Debug, Default)]
pub struct Config {
    pub mesh: MeshConfig,
    pub resources: Vec<Resource>,
}

impl Config {
    pub fn virtual_services(&self) -> impl Iterator<Item = &Object<VirtualService>> {
        self.resources
            .iter()
            .filter_map(Resource::as_virtual_service)
    }

    pub fn destination_rules(&self) -> impl Iterator<Item = &Object<DestinationRule>> {
        self.resources
            .iter()
            .filter_map(Resource::as_destination_rule)
    }

    pub fn gateways(&self) -> impl Iterator<Item = &Object<Gateway>> {
        self.resources.iter().filter_map(Resource::as_gateway)
    }

    pub fn service_entries(&self) -> impl Iterator<Item = &Object<ServiceEntry>> {
        self.resources.iter().filter_map(Resource::as_service_entry)
    }

    pub fn peer_authentications(
        &self,
    ) -> impl Iterator<Item = &Object<lateen_api::security::PeerAuthentication>> {
        self.resources.iter().filter_map(|r| match r {
            Resource::PeerAuthentication(o) => Some(o),
            _ => None,
        })
    }

    pub fn sidecars(&self) -> impl Iterator<Item = &Object<Sidecar>> {
        self.resources.iter().filter_map(Resource::as_sidecar)
    }

    pub fn workload_entries(&self) -> impl Iterator<Item = &Object<WorkloadEntry>> {
        self.resources.iter().filter_map(|r| match r {
            Resource::WorkloadEntry(o) => Some(o),
            _ => None,
        })
    }

    pub fn workload_groups(&self) -> impl Iterator<Item = &Object<WorkloadGroup>> {
        self.resources.iter().filter_map(|r| match r {
            Resource::WorkloadGroup(o) => Some(o),
            _ => None,
        })
    }

    /// Mesh domain suffix (`cluster.local` unless MeshConfig says otherwise).
    pub fn domain_suffix(&self) -> &str {
        lateen_api::host::DEFAULT_DOMAIN_SUFFIX
    }

    /// MeshConfig `rootNamespace` (`istio-system` by default).
    pub fn root_namespace(&self) -> &str {
        self.mesh.root_namespace()
    }
}
