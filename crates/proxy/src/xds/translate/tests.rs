//! Translation of the resource shapes lateend and Istio send, and rejections that name the
//! resource and field.

use lateen_xds::pb::envoy::config::cluster::v3::{CircuitBreakers, Cluster, cluster};
use lateen_xds::pb::envoy::config::core::v3::{
    AggregatedConfigSource, BindConfig, ConfigSource, HeaderValue, HeaderValueOption, HealthCheck,
    Http2ProtocolOptions, Metadata, SocketAddress, address, config_source, socket_address,
};
use lateen_xds::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use lateen_xds::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use lateen_xds::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, header_matcher,
    query_parameter_matcher, redirect_action, route, route_action, route_match, weighted_cluster,
};
use lateen_xds::pb::envoy::extensions::filters::http::router::v3::Router;
use lateen_xds::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use lateen_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use lateen_xds::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use lateen_xds::pb::google::protobuf::{self, Any, Struct, Value, value::Kind};
use lateen_xds::prost::{Message, Name};

use super::*;
use crate::config::model::{
    self, Capture, Direction, ListenerProtocol, PathMatch, RouteAction as ModelAction,
    UpstreamProtocol, ValueMatch,
};

pub(crate) fn pack<M: Message + Name>(message: &M) -> Any {
    Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
    }
}

fn socket(ip: &str, port: u32) -> lateen_xds::pb::envoy::config::core::v3::Address {
    lateen_xds::pb::envoy::config::core::v3::Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

pub(crate) fn router() -> HttpFilter {
    HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack(
            &Router::default(),
        ))),
        ..Default::default()
    }
}

pub(crate) fn hcm_filter(
    routes: http_connection_manager::RouteSpecifier,
    filters: Vec<HttpFilter>,
) -> Filter {
    let manager = HttpConnectionManager {
        stat_prefix: "x".into(),
        route_specifier: Some(routes),
        http_filters: filters,
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack(&manager))),
    }
}

pub(crate) fn tcp_filter(cluster: &str) -> Filter {
    let proxy = TcpProxy {
        stat_prefix: cluster.into(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack(&proxy))),
    }
}

pub(crate) fn catch_all(cluster: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: "inline".into(),
        virtual_hosts: vec![VirtualHost {
            name: "all".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                    ..Default::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                        cluster.into(),
                    )),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Istio's virtualInbound as lateend sends it: original_dst listener filter, one chain per
/// inbound port, passthrough by default.
pub(crate) fn virtual_inbound() -> Listener {
    Listener {
        name: "virtualInbound".into(),
        address: Some(socket("0.0.0.0", 15006)),
        traffic_direction: 1,
        listener_filters: vec![ListenerFilter {
            name: "envoy.filters.listener.original_dst".into(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(pack(
                &OriginalDst {},
            ))),
            ..Default::default()
        }],
        filter_chains: vec![FilterChain {
            filter_chain_match: Some(FilterChainMatch {
                destination_port: Some(protobuf::UInt32Value { value: 9080 }),
                ..Default::default()
            }),
            filters: vec![hcm_filter(
                http_connection_manager::RouteSpecifier::RouteConfig(catch_all("inbound|9080||")),
                vec![router()],
            )],
            name: "inbound|9080||".into(),
            ..Default::default()
        }],
        default_filter_chain: Some(FilterChain {
            filters: vec![tcp_filter("InboundPassthroughCluster")],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn capture_listener_with_port_chains() {
    let out = listener::translate(&virtual_inbound()).expect("accepted");
    let [main, child] = out.listeners.as_slice() else {
        panic!("two listeners: {out:?}")
    };
    assert_eq!(
        (main.capture, main.bind, main.direction, main.protocol),
        (
            Capture::OriginalDst,
            true,
            Direction::Inbound,
            ListenerProtocol::Tcp
        )
    );
    assert_eq!(
        main.tcp_cluster.as_deref(),
        Some("InboundPassthroughCluster")
    );
    assert_eq!(child.name, "virtualInbound~9080");
    assert_eq!(child.address, "0.0.0.0:9080".parse().expect("literal"));
    assert_eq!(
        (child.bind, child.capture, child.protocol),
        (false, Capture::None, ListenerProtocol::Http)
    );
    assert_eq!(
        child.route_config.as_deref(),
        Some("virtualInbound~9080#inline")
    );
    assert_eq!(out.inline_routes[0].name, "virtualInbound~9080#inline");
    assert!(
        out.clusters.contains("inbound|9080||")
            && out.clusters.contains("InboundPassthroughCluster")
    );
}

#[test]
fn unsupported_filters_and_fields_are_named() {
    let mut listener = virtual_inbound();
    listener.filter_chains[0].filters[0] = Filter {
        name: "istio.metadata_exchange".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack(&Router::default()))),
    };
    let err = listener::translate(&listener).expect_err("unknown network filter");
    assert_eq!(err.field, "filter_chains[0].filters[0]");
    assert!(
        err.to_string().starts_with("Listener \"virtualInbound\": "),
        "{err}"
    );

    let mut listener = virtual_inbound();
    let stats = HttpFilter {
        name: "istio.stats".into(),
        ..Default::default()
    };
    listener.filter_chains[0].filters[0] = hcm_filter(
        http_connection_manager::RouteSpecifier::RouteConfig(catch_all("c")),
        vec![stats, router()],
    );
    let err = listener::translate(&listener).expect_err("istio.stats without its config");
    assert_eq!(
        err.field,
        "filter_chains[0].filters[0].typed_config.http_filters[0]"
    );
    assert!(err.reason.contains("istio.stats"), "{err}");

    let mut listener = virtual_inbound();
    listener.filter_chains[0].filter_chain_match = Some(FilterChainMatch {
        server_names: vec!["a.example".into()],
        ..Default::default()
    });
    let err = listener::translate(&listener).expect_err("unsupported chain match");
    assert_eq!(
        err.field,
        "filter_chains[0].filter_chain_match.server_names"
    );
}

#[test]
#[allow(deprecated)] // prefix_match: still what control planes send
fn routes_translate_matches_actions_and_header_levels() {
    let header = |key: &str, value: &str, append: bool| HeaderValueOption {
        header: Some(HeaderValue {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        }),
        append_action: if append { 0 } else { 2 },
        ..Default::default()
    };
    let weighted = WeightedCluster {
        clusters: ["a", "b"]
            .iter()
            .zip([80, 20])
            .map(|(name, weight)| weighted_cluster::ClusterWeight {
                name: name.to_string(),
                weight: Some(protobuf::UInt32Value { value: weight }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let table = RouteConfiguration {
        name: "80".into(),
        response_headers_to_add: vec![header("x-table", "t", false)],
        virtual_hosts: vec![VirtualHost {
            name: "web".into(),
            domains: vec!["web".into(), "web:80".into()],
            request_headers_to_add: vec![header("x-level", "vhost", false)],
            routes: vec![
                Route {
                    r#match: Some(RouteMatch {
                        path_specifier: Some(route_match::PathSpecifier::Path("/login".into())),
                        headers: vec![
                            HeaderMatcher { name: ":method".into(), header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(StringMatcher { match_pattern: Some(string_matcher::MatchPattern::Exact("POST".into())), ..Default::default() })), ..Default::default() },
                            HeaderMatcher { name: "End-User".into(), header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::PrefixMatch("ja".into())), invert_match: true, ..Default::default() },
                        ],
                        query_parameters: vec![QueryParameterMatcher { name: "debug".into(), query_parameter_match_specifier: Some(query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true)) }],
                        ..Default::default()
                    }),
                    request_headers_to_add: vec![header("x-level", "route", true)],
                    action: Some(route::Action::Route(RouteAction {
                        cluster_specifier: Some(route_action::ClusterSpecifier::WeightedClusters(weighted)),
                        timeout: Some(protobuf::Duration { seconds: 3, nanos: 0 }),
                        prefix_rewrite: "/v2/".into(),
                        host_rewrite_specifier: Some(route_action::HostRewriteSpecifier::HostRewriteLiteral("backend".into())),
                        retry_policy: Some(RetryPolicy {
                            retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes".into(),
                            num_retries: Some(protobuf::UInt32Value { value: 3 }),
                            retriable_status_codes: vec![503],
                            ..Default::default()
                        }),
                        ..Default::default()
                    })),
                    ..Default::default()
                },
                Route {
                    r#match: Some(RouteMatch { path_specifier: Some(route_match::PathSpecifier::Prefix("/old".into())), ..Default::default() }),
                    action: Some(route::Action::Redirect(RedirectAction {
                        host_redirect: "new".into(),
                        response_code: redirect_action::RedirectResponseCode::Found as i32,
                        ..Default::default()
                    })),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }],
        ..Default::default()
    };
    let out = super::route::translate(&table).expect("accepted");
    assert_eq!(
        out.clusters.iter().cloned().collect::<Vec<_>>(),
        vec!["a".to_string(), "b".to_string()]
    );
    let routes = &out.config.virtual_hosts[0].routes;
    let first = &routes[0];
    assert_eq!(first.matcher.path, Some(PathMatch::Exact("/login".into())));
    assert_eq!(first.matcher.method.as_deref(), Some("POST"));
    assert_eq!(
        (
            first.matcher.headers[0].name.as_str(),
            &first.matcher.headers[0].value,
            first.matcher.headers[0].invert
        ),
        ("end-user", &ValueMatch::Prefix("ja".into()), true)
    );
    assert_eq!(
        first.matcher.query_params[0].value,
        ValueMatch::Present(true)
    );
    // The route's own header wins over the virtual host's; the table's applies below both.
    assert_eq!(
        first.request_headers.add.get("x-level").map(String::as_str),
        Some("route")
    );
    assert!(!first.request_headers.set.contains_key("x-level"));
    assert_eq!(
        first
            .response_headers
            .set
            .get("x-table")
            .map(String::as_str),
        Some("t")
    );
    let ModelAction::Route(forward) = &first.action else {
        panic!("forward action")
    };
    assert_eq!(
        forward
            .weighted_clusters
            .iter()
            .map(|w| w.weight)
            .collect::<Vec<_>>(),
        vec![80, 20]
    );
    assert_eq!(forward.timeout, Some(std::time::Duration::from_secs(3)));
    assert_eq!(
        (
            forward.prefix_rewrite.as_deref(),
            forward.host_rewrite.as_deref()
        ),
        (Some("/v2/"), Some("backend"))
    );
    let retry = forward.retry.as_ref().expect("retry policy");
    assert_eq!(
        retry.retry_on,
        vec![
            "connect-failure",
            "refused-stream",
            "retriable-status-codes"
        ]
    );
    assert_eq!(
        (retry.num_retries, retry.retriable_status_codes.as_slice()),
        (3, [503].as_slice())
    );
    let ModelAction::Redirect(redirect) = &routes[1].action else {
        panic!("redirect")
    };
    assert_eq!(
        (redirect.host.as_deref(), redirect.response_code),
        (Some("new"), 302)
    );

    let mut faulty = table.clone();
    faulty.virtual_hosts[0].routes[1]
        .typed_per_filter_config
        .insert("envoy.filters.http.fault".into(), pack(&Router::default()));
    let err = super::route::translate(&faulty).expect_err("per-route filter config");
    assert_eq!(
        err.field,
        "virtual_hosts[0].routes[1].typed_per_filter_config[\"envoy.filters.http.fault\"]"
    );
}

pub(crate) fn assignment(name: &str, endpoints: &[(&str, u32, i32, u32)]) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: endpoints
                .iter()
                .map(|(ip, port, health, weight)| LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(socket(ip, *port)),
                        ..Default::default()
                    })),
                    health_status: *health,
                    load_balancing_weight: Some(protobuf::UInt32Value { value: *weight }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn endpoints_keep_healthy_ones_and_weights() {
    // HealthStatus: 0 UNKNOWN, 1 HEALTHY, 2 UNHEALTHY.
    let out = endpoint::translate(&assignment(
        "c",
        &[
            ("10.0.0.1", 80, 0, 3),
            ("10.0.0.2", 80, 1, 1),
            ("10.0.0.3", 80, 2, 1),
        ],
    ))
    .expect("accepted");
    let addresses: Vec<String> = out.iter().map(|e| e.address.to_string()).collect();
    assert_eq!(
        addresses,
        ["10.0.0.1:80", "10.0.0.1:80", "10.0.0.1:80", "10.0.0.2:80"]
    );
    let err = endpoint::translate(&assignment("c", &[("web.local", 80, 0, 1)]))
        .expect_err("names are not resolved");
    assert_eq!(err.field, "endpoints[0].lb_endpoints[0].endpoint.address");
}

#[test]
#[allow(deprecated)]
fn clusters_of_each_kind() {
    let ads = ConfigSource {
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    };
    let eds = Cluster {
        name: "outbound|80||web".into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads),
            service_name: String::new(),
        }),
        lb_policy: cluster::LbPolicy::LeastRequest as i32,
        circuit_breakers: Some(CircuitBreakers::default()),
        http2_protocol_options: Some(Http2ProtocolOptions::default()),
        metadata: Some(Metadata {
            filter_metadata: [(
                "istio".to_string(),
                Struct {
                    fields: [(
                        "services".to_string(),
                        Value {
                            kind: Some(Kind::ListValue(protobuf::ListValue {
                                values: vec![Value {
                                    kind: Some(Kind::StructValue(Struct {
                                        fields: [
                                            ("host", "web.shop.svc.cluster.local"),
                                            ("name", "web"),
                                            ("namespace", "shop"),
                                        ]
                                        .iter()
                                        .map(|(k, v)| {
                                            (
                                                k.to_string(),
                                                Value {
                                                    kind: Some(Kind::StringValue(v.to_string())),
                                                },
                                            )
                                        })
                                        .collect(),
                                    })),
                                }],
                            })),
                        },
                    )]
                    .into(),
                },
            )]
            .into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let out = super::cluster::translate(&eds).expect("accepted");
    assert_eq!(out.eds_name.as_deref(), Some("outbound|80||web"));
    assert_eq!(
        (out.cluster.protocol, out.cluster.lb_policy),
        (UpstreamProtocol::Http2, model::LbPolicy::LeastRequest)
    );
    assert_eq!(
        out.cluster.destination.service.as_deref(),
        Some("web.shop.svc.cluster.local")
    );
    assert_eq!(out.cluster.destination.namespace.as_deref(), Some("shop"));

    let inbound = Cluster {
        name: "inbound|9080||".into(),
        load_assignment: Some(assignment("inbound|9080||", &[("127.0.0.1", 9080, 0, 1)])),
        upstream_bind_config: Some(BindConfig {
            source_address: Some(SocketAddress {
                address: "127.0.0.6".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(0)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let out = super::cluster::translate(&inbound).expect("accepted");
    assert_eq!(out.cluster.endpoints.len(), 1);
    assert_eq!(
        out.cluster.source_address,
        Some("127.0.0.6".parse().expect("literal"))
    );

    let passthrough = Cluster {
        name: "PassthroughCluster".into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        ..Default::default()
    };
    assert!(
        super::cluster::translate(&passthrough)
            .expect("accepted")
            .original_dst
    );

    let checked = Cluster {
        health_checks: vec![HealthCheck::default()],
        ..inbound
    };
    let err = super::cluster::translate(&checked).expect_err("health checks are not implemented");
    assert_eq!(
        err.to_string(),
        "Cluster \"inbound|9080||\": health_checks: not supported by lateen-proxy"
    );
}

/// A cluster carrying what istiod makes of `connectionPool: {http: {idleTimeout, maxRequestsPerConnection}, tcp: {maxConnectionDuration}}`.
fn with_common_options(
    common: lateen_xds::pb::envoy::config::core::v3::HttpProtocolOptions,
) -> Cluster {
    use lateen_xds::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
    Cluster {
        name: "outbound|80||web".into(),
        load_assignment: Some(assignment("outbound|80||web", &[("10.0.0.1", 80, 0, 1)])),
        typed_extension_protocol_options: [(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
            pack(&HttpProtocolOptions {
                common_http_protocol_options: Some(common),
                ..Default::default()
            }),
        )]
        .into(),
        ..Default::default()
    }
}

#[test]
fn the_limits_on_each_upstream_connection_are_read_and_others_refused() {
    use lateen_xds::pb::envoy::config::core::v3::HttpProtocolOptions as Common;
    let seconds = |seconds: i64| protobuf::Duration { seconds, nanos: 0 };
    let limits_of = |common: Common| {
        let out = super::cluster::translate(&with_common_options(common)).expect("accepted");
        assert_eq!(out.cluster.protocol, UpstreamProtocol::Http1);
        out.cluster.connection_limits
    };
    let requests = |value: u32| Some(protobuf::UInt32Value { value });
    assert_eq!(
        limits_of(Common {
            idle_timeout: Some(seconds(30)),
            max_requests_per_connection: requests(1),
            max_connection_duration: Some(seconds(600)),
            ..Default::default()
        }),
        model::ConnectionLimits {
            idle_timeout: Some(std::time::Duration::from_secs(30)),
            max_requests_per_connection: Some(1),
            max_connection_duration: Some(std::time::Duration::from_secs(600)),
        }
    );

    // Zero: no idle timeout at all (kept, unlike unset, which is Envoy's 1 h), and no
    // maximum of requests or duration.
    assert_eq!(
        limits_of(Common {
            idle_timeout: Some(seconds(0)),
            max_requests_per_connection: requests(0),
            max_connection_duration: Some(seconds(0)),
            ..Default::default()
        }),
        model::ConnectionLimits {
            idle_timeout: Some(std::time::Duration::ZERO),
            ..Default::default()
        }
    );

    let err = super::cluster::translate(&with_common_options(Common {
        max_headers_count: requests(10),
        ..Default::default()
    }))
    .expect_err("max_headers_count is not applied upstream");
    assert!(
        err.to_string().contains(
            "common_http_protocol_options.max_headers_count: not supported by lateen-proxy"
        ),
        "{err}"
    );
}
