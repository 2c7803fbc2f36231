//! The ClusterLoadAssignments of some services only: what an endpoint-only push translates
//! ([`crate::registry::EndpointChanges`]). Built with the same [`Context`] and the same EDS
//! targets as a full translation, so the resources are byte for byte the ones a full
//! translation would make.

use std::collections::BTreeSet;

use lateen_xds::Snapshot;
use lateen_xds::types::ENDPOINT;

use super::{ClusterParts, Context, ProxyView, SharedClusters, clusters, endpoints};
use crate::registry::Registry;
use crate::store::Config;

impl SharedClusters {
    /// The encoded ClusterLoadAssignments of the services `hosts` that proxies with `view`
    /// see, by name; translated once per cluster-relevant view, like the clusters.
    pub fn changed_endpoints(
        &self,
        config: &Config,
        registry: &Registry,
        view: &ProxyView,
        hosts: &BTreeSet<String>,
    ) -> ClusterParts {
        Self::get_or_build_in(&self.endpoints, &self.label_keys, view, || {
            let ctx = Context::new(config, registry, view);
            let mut part = Snapshot::new();
            for &service in ctx.services.iter().filter(|s| hosts.contains(&s.hostname)) {
                for cla in endpoints::build(&ctx, &clusters::eds_targets(&ctx, service)) {
                    part.add(&cla);
                }
            }
            part.resources(ENDPOINT)
                .map(|(name, resource)| (name.clone(), resource.clone()))
                .collect()
        })
    }
}
