//! EDS: one ClusterLoadAssignment per EDS cluster, holding the service's instances (those
//! whose labels carry the subset's labels, for subset clusters) at their workload port,
//! grouped by locality and weighted by `localityLbSetting` ([`locality`]).

mod locality;

use std::collections::BTreeMap;
use std::net::IpAddr;

use lateen_xds::pb::envoy::config::core::v3::Locality;
use lateen_xds::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};

use super::Context;
use super::clusters::EdsTarget;
use super::names;
use crate::registry::Instance;

/// Whether an instance belongs to a subset (every subset label present with the same value).
pub fn subset_matches(
    subset: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    crate::registry::labels_match(subset, labels)
}

pub fn build(ctx: &Context<'_>, targets: &[EdsTarget<'_>]) -> Vec<ClusterLoadAssignment> {
    targets.iter().map(|t| assignment(ctx, t)).collect()
}

fn assignment(ctx: &Context<'_>, t: &EdsTarget<'_>) -> ClusterLoadAssignment {
    // Instances by locality text, in a stable order so pushes encode identically.
    let mut by_locality: BTreeMap<String, Vec<&Instance>> = BTreeMap::new();
    for i in t
        .service
        .instances
        .iter()
        .filter(|i| subset_matches(&t.labels, &i.labels))
    {
        // EDS carries addresses only; names and unix sockets cannot be endpoints here.
        if i.address.parse::<IpAddr>().is_err() {
            tracing::debug!(address = %i.address, cluster = %t.cluster, "skipping non-IP endpoint");
            continue;
        }
        by_locality.entry(i.locality.clone()).or_default().push(i);
    }
    let groups: Vec<locality::Group> = by_locality
        .iter()
        .map(|(text, instances)| locality::Group {
            locality: locality::parse(text),
            weights: instances.iter().map(|i| i.weight.max(1)).collect(),
        })
        .collect();
    let setting = locality_setting(ctx, t);
    let proxy = locality::of_labels(&ctx.proxy.labels);
    let group_weights = locality::group_weights(&groups, &proxy, setting.as_ref());
    // Without a distribute rule the endpoints keep their own weights.
    let endpoint_weights = match &setting {
        Some(_) => locality::endpoint_weights(&groups, &group_weights),
        None => None,
    }
    .unwrap_or_else(|| groups.iter().map(|g| g.weights.clone()).collect());

    let mut endpoints = Vec::new();
    for (((_, instances), group), weights) in by_locality.iter().zip(&groups).zip(&endpoint_weights)
    {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        // A locality `distribute` leaves out gets no traffic: Istio sends it empty; we omit it.
        if total == 0 {
            continue;
        }
        let lb_endpoints = instances
            .iter()
            .zip(weights)
            .map(|(i, weight)| LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(names::socket(
                        &i.address,
                        t.service.endpoint_port(i, t.port),
                    )),
                    ..Default::default()
                })),
                load_balancing_weight: Some(names::uint32(*weight)),
                metadata: super::mtls_outbound::endpoint_metadata(&i.labels),
                ..Default::default()
            })
            .collect();
        endpoints.push(LocalityLbEndpoints {
            locality: (group.locality != Locality::default()).then(|| group.locality.clone()),
            lb_endpoints,
            load_balancing_weight: Some(names::uint32(u32::try_from(total).unwrap_or(u32::MAX))),
            ..Default::default()
        });
    }
    if endpoints.is_empty() {
        endpoints.push(LocalityLbEndpoints::default());
    }
    ClusterLoadAssignment {
        cluster_name: t.cluster.clone(),
        endpoints,
        ..Default::default()
    }
}

/// `localityLbSetting` of the cluster's DestinationRule (subset and port level applied),
/// else MeshConfig's; ignored when `enabled: false`.
fn locality_setting(
    ctx: &Context<'_>,
    t: &EdsTarget<'_>,
) -> Option<lateen_api::networking::LocalityLbSetting> {
    // `outbound|PORT|SUBSET|HOST`: the subset is the third field.
    let subset = t.cluster.split('|').nth(2).unwrap_or_default();
    let policy = super::effective_policy(ctx.destination_rule(t.service), subset, t.port.number);
    let setting = policy
        .load_balancer
        .and_then(|lb| lb.locality_lb_setting)
        .or_else(|| ctx.config.mesh.locality_lb_setting.clone())?;
    (setting.enabled != Some(false) && !setting.distribute.is_empty()).then_some(setting)
}
