//! Builders for the Envoy resources the tests serve, and small helpers.
#![allow(dead_code)]

use std::time::Duration;

use lateen_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use lateen_xds::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, DataSource, Node, SocketAddress, address,
    config_source, data_source, socket_address,
};
use lateen_xds::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use lateen_xds::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use lateen_xds::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route,
    route_action, route_match,
};
use lateen_xds::pb::envoy::extensions::filters::http::router::v3::Router;
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use lateen_xds::pb::google::protobuf;
use lateen_xds::prost::{Message, Name};

pub const NODE_ID: &str = "sidecar~127.0.0.1~test.default~default.svc.cluster.local";

pub fn node(id: &str) -> Node {
    Node {
        id: id.to_string(),
        cluster: "test.default".to_string(),
        ..Default::default()
    }
}

pub fn pack<M: Message + Name>(m: &M) -> protobuf::Any {
    protobuf::Any {
        type_url: M::type_url(),
        value: m.encode_to_vec(),
    }
}

fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

pub fn socket(ip: &str, port: u16) -> lateen_xds::pb::envoy::config::core::v3::Address {
    lateen_xds::pb::envoy::config::core::v3::Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

pub fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.to_string(),
        connect_timeout: Some(protobuf::Duration {
            seconds: 1,
            nanos: 0,
        }),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: String::new(),
        }),
        ..Default::default()
    }
}

pub fn endpoints(cluster: &str, port: u16) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(socket("127.0.0.1", port)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn route_config(name: &str, action: route::Action) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts: vec![VirtualHost {
            name: "all".to_string(),
            domains: vec!["*".to_string()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_string())),
                    ..Default::default()
                }),
                action: Some(action),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn route_to(name: &str, cluster: &str) -> RouteConfiguration {
    route_config(
        name,
        route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.to_string())),
            ..Default::default()
        }),
    )
}

pub fn direct_response(name: &str, body: &str) -> RouteConfiguration {
    route_config(
        name,
        route::Action::DirectResponse(DirectResponseAction {
            status: 200,
            body: Some(DataSource {
                specifier: Some(data_source::Specifier::InlineString(body.to_string())),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
}

/// An HTTP listener on `ip:port` whose routes come from RDS `route_name`.
pub fn http_listener(name: &str, ip: &str, port: u16, route_name: &str) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: name.to_string(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route_name.to_string(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack(
                &Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    Listener {
        name: name.to_string(),
        address: Some(socket(ip, port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(pack(&hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Polls `check` until it returns `Some` or `limit` passes.
pub async fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    lateen_test_support::wait::poll_async(limit, || std::future::ready(check())).await
}
