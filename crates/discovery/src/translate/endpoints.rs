//! EDS: one ClusterLoadAssignment per EDS cluster, holding the service's instances (those
//! whose labels carry the subset's labels, for subset clusters) at their workload port.

use std::collections::BTreeMap;
use std::net::IpAddr;

use lateen_xds::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};

use super::Context;
use super::clusters::EdsTarget;
use super::names;

/// Whether an instance belongs to a subset (every subset label present with the same value).
pub fn subset_matches(
    subset: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    crate::registry::labels_match(subset, labels)
}

pub fn build(_ctx: &Context<'_>, targets: &[EdsTarget<'_>]) -> Vec<ClusterLoadAssignment> {
    targets
        .iter()
        .map(|t| {
            let lb_endpoints = t
                .service
                .instances
                .iter()
                .filter(|i| subset_matches(&t.labels, &i.labels))
                .filter(|i| {
                    // EDS carries addresses only; names and unix sockets cannot be endpoints here.
                    let ok = i.address.parse::<IpAddr>().is_ok();
                    if !ok {
                        tracing::debug!(address = %i.address, cluster = %t.cluster, "skipping non-IP endpoint");
                    }
                    ok
                })
                .map(|i| LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(names::socket(&i.address, t.service.endpoint_port(i, t.port))),
                        ..Default::default()
                    })),
                    load_balancing_weight: Some(names::uint32(i.weight.max(1))),
                    ..Default::default()
                })
                .collect();
            ClusterLoadAssignment {
                cluster_name: t.cluster.clone(),
                endpoints: vec![LocalityLbEndpoints {
                    lb_endpoints,
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect()
}
