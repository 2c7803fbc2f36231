//! Localities of EDS endpoints and Istio's `localityLbSetting.distribute`.
//!
//! Endpoints are grouped by their locality (`region/zone/subzone` of the WorkloadEntry or
//! ServiceEntry endpoint), each group weighted by the sum of its endpoints' weights, as
//! Istio does. A `distribute` rule whose `from` matches the proxy's locality re-weights the
//! groups its `to` entries match (Istio's `applyLocalityWeights`: a `to` weight is shared
//! among the groups it matches in proportion to their weights, rounded up) and empties the
//! groups no entry matches.
//!
//! The locality weights only take effect in a proxy whose cluster enables locality-weighted
//! balancing (`common_lb_config.locality_weighted_lb_config`, set with the clusters). So the
//! same split is also carried by the endpoint weights: each group's endpoint weights are
//! scaled to sum to the group's weight (times one common factor). A flat weighted pick over
//! all endpoints and a locality-weighted pick then choose each endpoint equally often.

use std::collections::BTreeMap;

use lateen_api::networking::LocalityLbSetting;
use lateen_xds::pb::envoy::config::core::v3::Locality;

/// `region/zone/subzone`, any part may be missing.
pub fn parse(text: &str) -> Locality {
    let mut parts = text.splitn(3, '/').map(str::to_string);
    Locality {
        region: parts.next().unwrap_or_default(),
        zone: parts.next().unwrap_or_default(),
        sub_zone: parts.next().unwrap_or_default(),
    }
}

/// Istio's `LocalityMatch`: `*` matches any value and a missing zone or subzone in the rule
/// matches any zone or subzone.
pub fn matches(locality: &Locality, rule: &str) -> bool {
    let rule = parse(rule);
    let part = |want: &str, have: &str, optional: bool| {
        want == "*" || (optional && want.is_empty()) || want == have
    };
    part(&rule.region, &locality.region, false)
        && part(&rule.zone, &locality.zone, true)
        && part(&rule.sub_zone, &locality.sub_zone, true)
}

/// One group of endpoints: its locality and its endpoints' weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub locality: Locality,
    pub weights: Vec<u32>,
}

/// The groups' weights after `setting` (None: each group weighs the sum of its endpoints);
/// a group `distribute` leaves out weighs 0 (it gets no traffic).
pub fn group_weights(
    groups: &[Group],
    proxy: &Locality,
    setting: Option<&LocalityLbSetting>,
) -> Vec<u64> {
    let natural: Vec<u64> = groups
        .iter()
        .map(|g| g.weights.iter().map(|w| u64::from(*w)).sum())
        .collect();
    let rule = setting.and_then(|s| s.distribute.iter().find(|d| matches(proxy, &d.from)));
    let Some(rule) = rule else { return natural };
    let mut weights = vec![0u64; groups.len()];
    let mut taken = vec![false; groups.len()];
    for (to, share) in &rule.to {
        let picked: Vec<usize> = (0..groups.len())
            .filter(|&i| !taken[i] && matches(&groups[i].locality, to))
            .collect();
        let total: u64 = picked.iter().map(|&i| natural[i]).sum();
        for &i in &picked {
            taken[i] = true;
            weights[i] = (natural[i] * u64::from(*share)).div_ceil(total.max(1));
        }
    }
    weights
}

/// Endpoint weights (per group, in order) whose group sums are proportional to
/// `group_weights`, reduced by their common divisor; None when they would not fit Envoy's
/// 32-bit weights. Groups of weight 0 get no endpoints.
pub fn endpoint_weights(groups: &[Group], group_weights: &[u64]) -> Option<Vec<Vec<u32>>> {
    let sums: Vec<u64> = groups
        .iter()
        .map(|g| g.weights.iter().map(|w| u64::from(*w)).sum::<u64>().max(1))
        .collect();
    // Scale every group by one factor so each endpoint's share is a whole number.
    let factor = sums.iter().try_fold(1u64, |acc, s| {
        lcm(acc, *s).filter(|v| *v <= u64::from(u32::MAX))
    })?;
    let mut scaled: Vec<Vec<u64>> = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let per_unit = group_weights[i].checked_mul(factor)? / sums[i];
        scaled.push(
            group
                .weights
                .iter()
                .map(|w| u64::from(*w) * per_unit)
                .collect(),
        );
    }
    let divisor = scaled
        .iter()
        .flatten()
        .fold(0, |acc, w| gcd(acc, *w))
        .max(1);
    let mut out = Vec::new();
    for group in scaled {
        let reduced: Vec<u32> = group
            .iter()
            .map(|w| u32::try_from(w / divisor).ok())
            .collect::<Option<_>>()?;
        // A locality's endpoint weights must sum within 32 bits (Envoy rejects more).
        if reduced.iter().map(|w| u64::from(*w)).sum::<u64>() > u64::from(u32::MAX) {
            return None;
        }
        out.push(reduced);
    }
    Some(out)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: u64, b: u64) -> Option<u64> {
    (a / gcd(a, b).max(1)).checked_mul(b)
}

/// The proxy's locality from its pod's topology labels, as Istio reads them.
pub fn of_labels(labels: &BTreeMap<String, String>) -> Locality {
    let get = |key: &str| labels.get(key).cloned().unwrap_or_default();
    Locality {
        region: get("topology.kubernetes.io/region"),
        zone: get("topology.kubernetes.io/zone"),
        sub_zone: get("topology.istio.io/subzone"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lateen_api::networking::LocalityDistribute;

    fn group(locality: &str, weights: &[u32]) -> Group {
        Group {
            locality: parse(locality),
            weights: weights.to_vec(),
        }
    }

    #[test]
    fn wildcards_match_like_istio() {
        let l = parse("us-east/zone-1/rack-2");
        assert!(
            matches(&l, "*")
                && matches(&l, "us-east/*")
                && matches(&l, "us-east")
                && matches(&l, "us-east/zone-1/rack-2")
        );
        assert!(!matches(&l, "us-west/*") && !matches(&l, "us-east/zone-2/*"));
    }

    #[test]
    fn distribute_shares_a_weight_among_matching_groups_and_drops_the_rest() {
        let groups = [
            group("a/z/s1", &[1]),
            group("a/z/s2", &[1]),
            group("b/z/s1", &[1]),
            group("c/z/s1", &[1]),
        ];
        let setting = LocalityLbSetting {
            distribute: vec![LocalityDistribute {
                from: "*".into(),
                to: [("a/z/*".to_string(), 20), ("b/z/*".to_string(), 80)].into(),
            }],
            ..Default::default()
        };
        let weights = group_weights(&groups, &Locality::default(), Some(&setting));
        assert_eq!(weights, vec![10, 10, 80, 0]);
        let endpoints = endpoint_weights(&groups, &weights).expect("fits");
        assert_eq!(endpoints, vec![vec![1], vec![1], vec![8], vec![0]]);
    }

    #[test]
    fn endpoint_weights_keep_their_ratio_inside_a_group() {
        let groups = [group("a", &[1, 3]), group("b", &[1])];
        let endpoints = endpoint_weights(&groups, &[50, 50]).expect("fits");
        // Group a: 50 split 1:3; group b: 50.
        assert_eq!(endpoints, vec![vec![1, 3], vec![4]]);
        assert_eq!(
            group_weights(&groups, &Locality::default(), None),
            vec![4, 1]
        );
    }
}
