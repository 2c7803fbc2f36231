//! Locality weights in EDS and `common_lb_config` in CDS.

use lateen_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use lateen_xds::pb::envoy::config::core::v3::Locality;
use lateen_xds::pb::google::protobuf::UInt32Value;

use super::tests::assignment;
use super::{cluster as cds, endpoint};

/// Endpoints of `zone` (each weight 1), the locality weighing `weight`.
fn zone(
    zone: &str,
    ips: &[&str],
    weight: Option<u32>,
) -> lateen_xds::pb::envoy::config::endpoint::v3::LocalityLbEndpoints {
    let endpoints: Vec<(&str, u32, i32, u32)> = ips.iter().map(|ip| (*ip, 80, 0, 1)).collect();
    let mut group = assignment("c", &endpoints).endpoints.remove(0);
    group.locality = Some(Locality {
        region: "r".into(),
        zone: zone.into(),
        sub_zone: String::new(),
    });
    group.load_balancing_weight = weight.map(|value| UInt32Value { value });
    group
}

fn counts(
    groups: Vec<lateen_xds::pb::envoy::config::endpoint::v3::LocalityLbEndpoints>,
) -> Vec<(String, usize)> {
    let mut source = assignment("c", &[]);
    source.endpoints = groups;
    let out = endpoint::translate(&source).expect("accepted");
    let mut seen: Vec<(String, usize)> = Vec::new();
    for endpoint in out {
        let ip = endpoint.address.ip().to_string();
        match seen.iter_mut().find(|(known, _)| *known == ip) {
            Some((_, n)) => *n += 1,
            None => seen.push((ip, 1)),
        }
    }
    seen
}

#[test]
fn a_locality_takes_its_weight_shared_by_its_endpoints() {
    let got = counts(vec![
        zone("a", &["10.0.0.1", "10.0.0.2"], Some(20)),
        zone("b", &["10.0.0.3"], Some(80)),
    ]);
    assert_eq!(
        got,
        [
            ("10.0.0.1".to_string(), 1),
            ("10.0.0.2".to_string(), 1),
            ("10.0.0.3".to_string(), 8)
        ]
    );
}

#[test]
fn without_locality_weights_endpoints_are_flattened() {
    let got = counts(vec![
        zone("a", &["10.0.0.1", "10.0.0.2"], None),
        zone("b", &["10.0.0.3"], None),
    ]);
    assert_eq!(
        got,
        [
            ("10.0.0.1".to_string(), 1),
            ("10.0.0.2".to_string(), 1),
            ("10.0.0.3".to_string(), 1)
        ]
    );
}

#[test]
fn an_unweighted_locality_among_weighted_ones_gets_no_traffic() {
    let got = counts(vec![
        zone("a", &["10.0.0.1"], Some(5)),
        zone("b", &["10.0.0.3"], None),
    ]);
    assert_eq!(got, [("10.0.0.1".to_string(), 1)]);
    let mut zero = assignment("c", &[]);
    zero.endpoints = vec![zone("a", &["10.0.0.1"], Some(0))];
    let err = endpoint::translate(&zero).expect_err("weight 0");
    assert_eq!(err.field, "endpoints[0].load_balancing_weight");
}

#[test]
fn locality_weighted_common_lb_config_is_accepted_and_zone_aware_refused() {
    use cluster::common_lb_config::{
        LocalityConfigSpecifier, LocalityWeightedLbConfig, ZoneAwareLbConfig,
    };
    let mut source = Cluster {
        name: "c".into(),
        ..Default::default()
    };
    source.common_lb_config = Some(cluster::CommonLbConfig {
        locality_config_specifier: Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(
            LocalityWeightedLbConfig {},
        )),
        ..Default::default()
    });
    assert!(cds::translate(&source).is_ok());
    source.common_lb_config = Some(cluster::CommonLbConfig::default());
    assert!(cds::translate(&source).is_ok(), "Istio sends an empty one");
    source.common_lb_config = Some(cluster::CommonLbConfig {
        locality_config_specifier: Some(LocalityConfigSpecifier::ZoneAwareLbConfig(
            ZoneAwareLbConfig::default(),
        )),
        ..Default::default()
    });
    let err = cds::translate(&source).expect_err("zone aware");
    assert_eq!(err.field, "common_lb_config.zone_aware_lb_config");
}
