//! Traffic policies pushed over xDS as lateend sends them: a per-route fault abort and a
//! cluster with circuit breakers, outlier detection and least-request balancing are
//! accepted (no longer NACKed) and act on traffic.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;
mod xds_support;

use lateen_xds::pb::envoy::config::cluster::v3::{
    CircuitBreakers, OutlierDetection, circuit_breakers, cluster,
};
use lateen_xds::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use lateen_xds::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use lateen_xds::pb::google::protobuf::UInt32Value;
use lateen_xds::{Snapshot, XdsServer};
use std::net::SocketAddr;
use std::time::Duration;
use support::upstream::Upstream;
use support::{eventually as until, get};
use xds_support::*;

#[tokio::test]
async fn fault_and_cluster_policies_over_xds() {
    let server = XdsServer::default();
    let xds = server
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .expect("bind xDS server");
    let upstream = Upstream::start("alpha").await;
    let listen: SocketAddr = ([127, 0, 0, 1], unique_port()).into();

    let mut backend = eds_cluster("backend");
    backend.lb_policy = cluster::LbPolicy::LeastRequest as i32;
    backend.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![circuit_breakers::Thresholds {
            max_connections: Some(UInt32Value { value: 100 }),
            ..Default::default()
        }],
        ..Default::default()
    });
    backend.outlier_detection = Some(OutlierDetection {
        consecutive_5xx: Some(UInt32Value { value: 5 }),
        enforcing_consecutive_5xx: Some(UInt32Value { value: 100 }),
        enforcing_success_rate: Some(UInt32Value { value: 0 }),
        ..Default::default()
    });
    let plain = route_to("main", "backend");
    let base = Snapshot::new()
        .with(&http_listener("http", listen, "main"))
        .with(&backend)
        .with(&endpoints("backend", &[upstream.address]));
    server.set_snapshot(NODE_ID, base.clone().with(&plain));
    let mut sidecar = SidecarProcess::start(xds);
    sidecar.wait_ready().await;
    assert!(
        until(Duration::from_secs(10), || async {
            get(listen, "/")
                .await
                .is_ok_and(|(status, body)| status == 200 && body.contains("alpha"))
        })
        .await,
        "log:\n{}",
        sidecar.log_text()
    );

    let mut faulty = plain.clone();
    let fault = HttpFault {
        abort: Some(FaultAbort {
            percentage: Some(FractionalPercent {
                numerator: 1_000_000,
                denominator: fractional_percent::DenominatorType::Million as i32,
            }),
            error_type: Some(fault_abort::ErrorType::HttpStatus(418)),
            ..Default::default()
        }),
        ..Default::default()
    };
    faulty.virtual_hosts[0].routes[0]
        .typed_per_filter_config
        .insert("envoy.filters.http.fault".into(), pack(&fault));
    server.set_snapshot(NODE_ID, base.with(&faulty));
    assert!(
        until(Duration::from_secs(10), || async {
            get(listen, "/")
                .await
                .is_ok_and(|(status, _)| status == 418)
        })
        .await,
        "the fault route was not applied; log:\n{}",
        sidecar.log_text()
    );
}
