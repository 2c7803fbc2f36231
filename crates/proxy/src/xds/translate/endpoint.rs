//! `ClusterLoadAssignment` → endpoint addresses. Only HEALTHY and UNKNOWN endpoints take
//! traffic, as in Envoy without active health checking. Endpoint weights become repetitions
//! in the balancing list; priorities beyond the first are rejected rather than ignored.
//!
//! Locality weights (`LocalityLbEndpoints.load_balancing_weight`) are Envoy's locality-
//! weighted balancing: a locality takes its weight's share of the traffic and its endpoints
//! split that share by their own weights. The per-endpoint shares become the repetitions, so
//! a flat pick over the list gives each locality its share. Envoy applies locality weights
//! only when the cluster sets `common_lb_config.locality_weighted_lb_config`; an assignment
//! is translated without its cluster here, so lateen-proxy applies them whenever a locality
//! carries one (lateend always weighs a locality by the sum of its endpoints' weights, so
//! both readings give the same split). A locality without a weight then gets no traffic,
//! as in Envoy's locality-weighted mode; with no locality weight at all, endpoints are
//! flattened.

use lateen_xds::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LocalityLbEndpoints, lb_endpoint,
};

use super::{Check, Rejection, socket_addr};
use crate::config::model;

/// `HealthStatus`: UNKNOWN = 0, HEALTHY = 1.
const ROUTABLE_HEALTH: [i32; 2] = [0, 1];

/// The endpoints that take traffic.
pub fn translate(assignment: &ClusterLoadAssignment) -> Result<Vec<model::Endpoint>, Rejection> {
    let check = Check::new("ClusterLoadAssignment", &assignment.cluster_name);
    endpoints(assignment, &check)
}

pub(crate) fn endpoints(
    assignment: &ClusterLoadAssignment,
    check: &Check,
) -> Result<Vec<model::Endpoint>, Rejection> {
    // `policy` (overprovisioning, drop overloads) has no effect with one priority and no
    // drops; reject drops, which would change what traffic gets through.
    if assignment
        .policy
        .as_ref()
        .is_some_and(|policy| !policy.drop_overloads.is_empty())
    {
        return Err(check.reject("policy.drop_overloads", "not supported by lateen-proxy"));
    }
    check.no_leftover(
        "",
        &ClusterLoadAssignment {
            cluster_name: String::new(),
            endpoints: Vec::new(),
            policy: None,
            ..assignment.clone()
        },
    )?;
    let mut localities = Vec::new();
    for (l_index, locality) in assignment.endpoints.iter().enumerate() {
        let mut out = Vec::new();
        let l_path = format!("endpoints[{l_index}]");
        if locality.priority != 0 {
            return Err(check.reject(format!("{l_path}.priority"), "only priority 0 is supported"));
        }
        // The locality names the group (informational here, as is metadata); its weight is
        // folded into the endpoint weights below.
        let rest = LocalityLbEndpoints {
            locality: None,
            metadata: None,
            lb_endpoints: Vec::new(),
            load_balancing_weight: None,
            priority: 0,
            ..locality.clone()
        };
        check.no_leftover(&l_path, &rest)?;
        for (e_index, lb) in locality.lb_endpoints.iter().enumerate() {
            let e_path = format!("{l_path}.lb_endpoints[{e_index}]");
            let weight = match &lb.load_balancing_weight {
                Some(weight) if weight.value == 0 => {
                    return Err(check.reject(
                        format!("{e_path}.load_balancing_weight"),
                        "must be at least 1",
                    ));
                }
                Some(weight) => weight.value,
                None => 1,
            };
            let endpoint = match &lb.host_identifier {
                Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) => endpoint,
                Some(lb_endpoint::HostIdentifier::EndpointName(_)) => {
                    return Err(check.reject(
                        format!("{e_path}.endpoint_name"),
                        "named endpoints are not supported",
                    ));
                }
                None => return Err(check.reject(format!("{e_path}.endpoint"), "missing")),
            };
            let rest = Endpoint {
                address: None,
                hostname: String::new(),
                health_check_config: None,
                ..endpoint.clone()
            };
            check.no_leftover(&format!("{e_path}.endpoint"), &rest)?;
            let address = socket_addr(endpoint.address.as_ref())
                .map_err(|reason| check.reject(format!("{e_path}.endpoint.address"), reason))?;
            if address.port() == 0 {
                return Err(check.reject(
                    format!("{e_path}.endpoint.address.port_value"),
                    "must not be 0",
                ));
            }
            if ROUTABLE_HEALTH.contains(&lb.health_status) {
                let tls_mode = super::tls::endpoint_tls_mode(lb.metadata.as_ref());
                out.push((model::Endpoint { address, tls_mode }, u64::from(weight)));
            }
        }
        if locality
            .load_balancing_weight
            .as_ref()
            .is_some_and(|weight| weight.value == 0)
        {
            return Err(check.reject(
                format!("{l_path}.load_balancing_weight"),
                "must be at least 1",
            ));
        }
        localities.push((
            locality
                .load_balancing_weight
                .as_ref()
                .map(|weight| u64::from(weight.value)),
            out,
        ));
    }
    Ok(weighted(by_locality(localities)))
}

/// An endpoint and its weight.
type Weighted = (model::Endpoint, u64);

/// Per-endpoint weights with locality weights folded in: an endpoint's share is its
/// locality's weight times its weight over its locality's total. Every locality is scaled by
/// one common factor (the least common multiple of the locality totals) so the shares stay
/// whole numbers; past 32 bits the totals are rounded instead.
fn by_locality(localities: Vec<(Option<u64>, Vec<Weighted>)>) -> Vec<Weighted> {
    if localities.iter().all(|(weight, _)| weight.is_none()) {
        return localities
            .into_iter()
            .flat_map(|(_, endpoints)| endpoints)
            .collect();
    }
    let total = |endpoints: &[Weighted]| {
        endpoints
            .iter()
            .map(|(_, weight)| *weight)
            .sum::<u64>()
            .max(1)
    };
    let factor = localities
        .iter()
        .try_fold(1u64, |acc, (_, endpoints)| {
            let sum = total(endpoints);
            (acc / gcd(acc, sum))
                .checked_mul(sum)
                .filter(|value| *value <= u64::from(u32::MAX))
        })
        .unwrap_or(1 << 16);
    let mut out = Vec::new();
    for (weight, endpoints) in localities {
        let sum = total(&endpoints);
        let share = weight.unwrap_or(0).saturating_mul(factor);
        for (endpoint, own) in endpoints {
            let scaled = own.saturating_mul(share) / sum;
            // An endpoint of a weighted locality keeps at least some traffic.
            if share > 0 {
                out.push((endpoint, scaled.max(1)));
            }
        }
    }
    out
}

/// Endpoint weights as repetitions in the round-robin list: each endpoint appears
/// weight / gcd(weights) times (at most [`MAX_REPEAT`]), so equal weights cost nothing. A
/// list that would grow past [`MAX_ENTRIES`] keeps one entry per endpoint.
fn weighted(endpoints: Vec<Weighted>) -> Vec<model::Endpoint> {
    let divisor = endpoints
        .iter()
        .fold(0, |acc, (_, weight)| gcd(acc, *weight))
        .max(1);
    let repeats = |weight: u64| (weight / divisor).clamp(1, MAX_REPEAT) as usize;
    let total: usize = endpoints.iter().map(|(_, weight)| repeats(*weight)).sum();
    if total > MAX_ENTRIES {
        return endpoints
            .into_iter()
            .map(|(endpoint, _)| endpoint)
            .collect();
    }
    endpoints
        .into_iter()
        .flat_map(|(endpoint, weight)| std::iter::repeat_n(endpoint, repeats(weight)))
        .collect()
}

const MAX_REPEAT: u64 = 100;
const MAX_ENTRIES: usize = 20_000;

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}
