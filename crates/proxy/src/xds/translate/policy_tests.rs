//! Translation of the traffic-policy messages as lateend emits them (see
//! crates/discovery/src/translate/policies.rs and clusters.rs): fault, CORS, mirrors and hash
//! policies on routes; ring hash, circuit breakers and outlier detection on clusters.

use lateen_xds::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection, circuit_breakers, cluster,
};
use lateen_xds::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use lateen_xds::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteMatch, route, route_action, route_match,
};
use lateen_xds::pb::envoy::extensions::filters::common::fault::v3::{FaultDelay, fault_delay};
use lateen_xds::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use lateen_xds::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use lateen_xds::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use lateen_xds::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use lateen_xds::pb::google::protobuf::{
    BoolValue, Duration as PbDuration, UInt32Value, UInt64Value,
};
use std::time::Duration;

use super::tests::pack;
use crate::config::model::{self, ValueMatch};

fn million(percent: f64) -> FractionalPercent {
    FractionalPercent {
        numerator: (percent * 10_000.0) as u32,
        denominator: fractional_percent::DenominatorType::Million as i32,
    }
}

fn seconds(value: i64) -> PbDuration {
    PbDuration {
        seconds: value,
        nanos: 0,
    }
}

fn table(route: Route) -> lateen_xds::pb::envoy::config::route::v3::RouteConfiguration {
    lateen_xds::pb::envoy::config::route::v3::RouteConfiguration {
        name: "80".into(),
        virtual_hosts: vec![lateen_xds::pb::envoy::config::route::v3::VirtualHost {
            name: "web".into(),
            domains: vec!["*".into()],
            routes: vec![route],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn lateend_route() -> Route {
    let fault = HttpFault {
        delay: Some(FaultDelay {
            percentage: Some(million(10.0)),
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(seconds(5))),
        }),
        abort: Some(FaultAbort {
            percentage: Some(million(0.5)),
            error_type: Some(fault_abort::ErrorType::HttpStatus(503)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cors = CorsPolicy {
        allow_origin_string_match: vec![StringMatcher {
            match_pattern: Some(string_matcher::MatchPattern::Exact(
                "https://a.example".into(),
            )),
            ignore_case: false,
        }],
        allow_methods: "GET,POST".into(),
        allow_headers: "x-token".into(),
        expose_headers: "x-trace".into(),
        max_age: "86400".into(),
        allow_credentials: Some(BoolValue { value: true }),
        forward_not_matching_preflights: Some(BoolValue { value: false }),
        ..Default::default()
    };
    use route_action::hash_policy;
    let action = RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
            "outbound|80|v1|web".into(),
        )),
        request_mirror_policies: vec![route_action::RequestMirrorPolicy {
            cluster: "outbound|80|v2|web".into(),
            runtime_fraction: Some(RuntimeFractionalPercent {
                default_value: Some(million(25.0)),
                runtime_key: String::new(),
            }),
            ..Default::default()
        }],
        hash_policy: vec![
            route_action::HashPolicy {
                terminal: false,
                policy_specifier: Some(hash_policy::PolicySpecifier::Header(hash_policy::Header {
                    header_name: "X-User".into(),
                    ..Default::default()
                })),
            },
            route_action::HashPolicy {
                terminal: false,
                policy_specifier: Some(hash_policy::PolicySpecifier::Cookie(hash_policy::Cookie {
                    name: "session".into(),
                    ttl: Some(seconds(60)),
                    path: "/".into(),
                    attributes: Vec::new(),
                })),
            },
            route_action::HashPolicy {
                terminal: false,
                policy_specifier: Some(hash_policy::PolicySpecifier::ConnectionProperties(
                    hash_policy::ConnectionProperties { source_ip: true },
                )),
            },
            route_action::HashPolicy {
                terminal: false,
                policy_specifier: Some(hash_policy::PolicySpecifier::QueryParameter(
                    hash_policy::QueryParameter {
                        name: "tenant".into(),
                    },
                )),
            },
        ],
        ..Default::default()
    };
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(action)),
        typed_per_filter_config: [
            ("envoy.filters.http.fault".to_string(), pack(&fault)),
            ("envoy.filters.http.cors".to_string(), pack(&cors)),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

#[test]
fn route_policies_as_lateend_sends_them() {
    let out = super::route::translate(&table(lateend_route())).expect("accepted");
    let route = &out.config.virtual_hosts[0].routes[0];
    let fault = route.fault.as_ref().expect("fault");
    let delay = fault.delay.as_ref().expect("delay");
    assert_eq!(
        (delay.fixed_delay, delay.percentage),
        (Duration::from_secs(5), 10.0)
    );
    let abort = fault.abort.as_ref().expect("abort");
    assert_eq!(
        (abort.http_status, abort.grpc_status, abort.percentage),
        (Some(503), None, 0.5)
    );
    let cors = route.cors.as_ref().expect("cors");
    assert_eq!(
        cors.allow_origins,
        vec![ValueMatch::Exact("https://a.example".into())]
    );
    assert_eq!(
        (
            cors.allow_methods.clone(),
            cors.allow_headers.clone(),
            cors.expose_headers.clone()
        ),
        (
            vec!["GET".to_string(), "POST".into()],
            vec!["x-token".to_string()],
            vec!["x-trace".to_string()]
        )
    );
    assert_eq!(
        (
            cors.max_age,
            cors.allow_credentials,
            cors.forward_not_matching_preflights
        ),
        (Some(86400), true, false)
    );
    let model::RouteAction::Route(forward) = &route.action else {
        panic!("a forward route")
    };
    assert_eq!(
        forward.mirrors,
        vec![model::MirrorPolicy {
            cluster: "outbound|80|v2|web".into(),
            percentage: 25.0
        }]
    );
    assert_eq!(
        forward.hash_policy,
        vec![
            model::HashPolicy::Header("x-user".into()),
            model::HashPolicy::Cookie("session".into()),
            model::HashPolicy::SourceIp(true),
            model::HashPolicy::QueryParameter("tenant".into())
        ]
    );
    assert!(
        out.clusters.contains("outbound|80|v2|web"),
        "the mirror cluster is awaited too"
    );

    // gRPC aborts.
    let mut grpc = lateend_route();
    let fault = HttpFault {
        abort: Some(FaultAbort {
            percentage: Some(million(100.0)),
            error_type: Some(fault_abort::ErrorType::GrpcStatus(14)),
            ..Default::default()
        }),
        ..Default::default()
    };
    grpc.typed_per_filter_config = [("envoy.filters.http.fault".to_string(), pack(&fault))]
        .into_iter()
        .collect();
    let out = super::route::translate(&table(grpc)).expect("accepted");
    let abort = out.config.virtual_hosts[0].routes[0]
        .fault
        .as_ref()
        .and_then(|fault| fault.abort.clone())
        .expect("abort");
    assert_eq!((abort.grpc_status, abort.percentage), (Some(14), 100.0));
}

#[test]
fn unsupported_route_policies_are_rejected_by_field() {
    let mut route = lateend_route();
    let fault = HttpFault {
        max_active_faults: Some(UInt32Value { value: 3 }),
        ..Default::default()
    };
    route.typed_per_filter_config = [("envoy.filters.http.fault".to_string(), pack(&fault))]
        .into_iter()
        .collect();
    let err = super::route::translate(&table(route)).expect_err("rejected");
    assert_eq!(
        err.field,
        "virtual_hosts[0].routes[0].typed_per_filter_config[\"envoy.filters.http.fault\"].max_active_faults"
    );

    let mut route = lateend_route();
    route.typed_per_filter_config = [(
        "envoy.filters.http.rbac".to_string(),
        pack(&BoolValue { value: true }),
    )]
    .into_iter()
    .collect();
    let err = super::route::translate(&table(route)).expect_err("rejected");
    assert!(
        err.field
            .ends_with("typed_per_filter_config[\"envoy.filters.http.rbac\"]"),
        "{err}"
    );

    let mut route = lateend_route();
    if let Some(route::Action::Route(action)) = &mut route.action {
        action.hash_policy[0].terminal = true;
    }
    let err = super::route::translate(&table(route)).expect_err("rejected");
    assert_eq!(
        err.field,
        "virtual_hosts[0].routes[0].route.hash_policy[0].terminal"
    );
}

fn lateend_cluster() -> Cluster {
    Cluster {
        name: "outbound|80||web".into(),
        lb_policy: cluster::LbPolicy::RingHash as i32,
        lb_config: Some(cluster::LbConfig::RingHashLbConfig(
            cluster::RingHashLbConfig {
                minimum_ring_size: Some(UInt64Value { value: 2048 }),
                ..Default::default()
            },
        )),
        circuit_breakers: Some(CircuitBreakers {
            thresholds: vec![circuit_breakers::Thresholds {
                max_connections: Some(UInt32Value { value: 1 }),
                max_pending_requests: Some(UInt32Value { value: 2 }),
                max_requests: Some(UInt32Value { value: 10 }),
                max_retries: Some(UInt32Value { value: 4 }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        outlier_detection: Some(OutlierDetection {
            consecutive_5xx: Some(UInt32Value { value: 7 }),
            enforcing_consecutive_5xx: Some(UInt32Value { value: 100 }),
            consecutive_gateway_failure: Some(UInt32Value { value: 3 }),
            enforcing_consecutive_gateway_failure: Some(UInt32Value { value: 100 }),
            interval: Some(seconds(5)),
            base_ejection_time: Some(seconds(60)),
            max_ejection_percent: Some(UInt32Value { value: 40 }),
            enforcing_success_rate: Some(UInt32Value { value: 0 }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn cluster_policies_as_lateend_sends_them() {
    let out = super::cluster::translate(&lateend_cluster())
        .expect("accepted")
        .cluster;
    assert_eq!(
        (out.lb_policy, out.minimum_ring_size),
        (model::LbPolicy::RingHash, Some(2048))
    );
    assert_eq!(
        out.circuit_breakers,
        Some(model::CircuitBreakers {
            max_connections: 1,
            max_pending_requests: 2,
            max_requests: 10,
            max_retries: 4
        })
    );
    let outlier = out.outlier_detection.expect("outlier detection");
    assert_eq!(
        (
            outlier.consecutive_5xx,
            outlier.consecutive_gateway_failure,
            outlier.max_ejection_percent
        ),
        (7, 3, 40)
    );
    assert_eq!(
        (outlier.interval, outlier.base_ejection_time),
        (Duration::from_secs(5), Duration::from_secs(60))
    );

    // Istio's consecutive5xxErrors: 0 turns the detector off (enforcing 0).
    let mut off = lateend_cluster();
    if let Some(outlier) = &mut off.outlier_detection {
        outlier.consecutive_5xx = Some(UInt32Value { value: 0 });
        outlier.enforcing_consecutive_5xx = Some(UInt32Value { value: 0 });
        outlier.consecutive_gateway_failure = None;
        outlier.enforcing_consecutive_gateway_failure = None;
    }
    let outlier = super::cluster::translate(&off)
        .expect("accepted")
        .cluster
        .outlier_detection
        .expect("outlier detection");
    assert_eq!(
        (outlier.consecutive_5xx, outlier.consecutive_gateway_failure),
        (0, 0)
    );

    let maglev = Cluster {
        lb_policy: cluster::LbPolicy::Maglev as i32,
        lb_config: None,
        ..lateend_cluster()
    };
    assert_eq!(
        super::cluster::translate(&maglev)
            .expect("accepted")
            .cluster
            .lb_policy,
        model::LbPolicy::Maglev
    );

    let mut success_rate = lateend_cluster();
    if let Some(outlier) = &mut success_rate.outlier_detection {
        outlier.enforcing_success_rate = Some(UInt32Value { value: 100 });
    }
    let err = super::cluster::translate(&success_rate)
        .expect_err("success-rate ejection is not implemented");
    assert_eq!(err.field, "outlier_detection.enforcing_success_rate");
}
