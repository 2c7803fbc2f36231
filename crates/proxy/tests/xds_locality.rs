//! Locality-weighted EDS over xDS, as Istio sends it (`common_lb_config` with
//! `locality_weighted_lb_config`, locality weights from `localityLbSetting.distribute`): the
//! cluster is accepted and each locality takes its weight's share of the traffic, whatever
//! the number of endpoints in it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;
mod xds_support;

use lateen_xds::pb::envoy::config::cluster::v3::cluster;
use lateen_xds::pb::envoy::config::core::v3::Locality;
use lateen_xds::pb::google::protobuf::UInt32Value;
use lateen_xds::{Snapshot, XdsServer};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::upstream::Upstream;
use support::{eventually as until, get};
use xds_support::*;

#[tokio::test]
async fn each_locality_takes_its_weight_of_the_traffic() {
    let server = XdsServer::default();
    let xds = server
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .expect("bind xDS server");
    let (a1, a2, b) = (
        Upstream::start("a1").await,
        Upstream::start("a2").await,
        Upstream::start("b").await,
    );
    let listen: SocketAddr = ([127, 0, 0, 1], unique_port()).into();

    let mut backend = eds_cluster("backend");
    backend.lb_policy = cluster::LbPolicy::RoundRobin as i32;
    backend.common_lb_config = Some(cluster::CommonLbConfig {
        locality_config_specifier: Some(
            cluster::common_lb_config::LocalityConfigSpecifier::LocalityWeightedLbConfig(
                cluster::common_lb_config::LocalityWeightedLbConfig {},
            ),
        ),
        ..Default::default()
    });
    // Zone a: two endpoints sharing 25; zone b: one endpoint taking 75.
    let mut assignment = endpoints("backend", &[a1.address, a2.address]);
    let mut zone_a = assignment.endpoints.remove(0);
    zone_a.locality = Some(Locality {
        region: "r".into(),
        zone: "a".into(),
        sub_zone: String::new(),
    });
    zone_a.load_balancing_weight = Some(UInt32Value { value: 25 });
    let mut zone_b = endpoints("backend", &[b.address]).endpoints.remove(0);
    zone_b.locality = Some(Locality {
        region: "r".into(),
        zone: "b".into(),
        sub_zone: String::new(),
    });
    zone_b.load_balancing_weight = Some(UInt32Value { value: 75 });
    assignment.endpoints = vec![zone_a, zone_b];

    let snapshot = Snapshot::new()
        .with(&http_listener("http", listen, "main"))
        .with(&route_to("main", "backend"))
        .with(&backend)
        .with(&assignment);
    server.set_snapshot(NODE_ID, snapshot);
    let mut sidecar = SidecarProcess::start(xds);
    sidecar.wait_ready().await;
    assert!(
        until(Duration::from_secs(10), || async {
            get(listen, "/")
                .await
                .is_ok_and(|(status, _)| status == 200)
        })
        .await,
        "log:\n{}",
        sidecar.log_text()
    );

    let before = [&a1, &a2, &b].map(|u| u.hits.load(Ordering::Relaxed));
    for _ in 0..400 {
        let (status, _) = get(listen, "/").await.expect("request");
        assert_eq!(status, 200);
    }
    let hits: Vec<usize> = [&a1, &a2, &b]
        .iter()
        .zip(before)
        .map(|(u, was)| u.hits.load(Ordering::Relaxed) - was)
        .collect();
    // Round robin over the weighted list is exact: 50 / 50 / 300.
    assert_eq!(hits, [50, 50, 300], "log:\n{}", sidecar.log_text());
}
