//! xDS test harness: Envoy resources to serve with lateen-xds's server in-process, and the
//! built `lateen-proxy sidecar` as a child process with Istio's injected environment.
#![allow(dead_code)]

use lateen_test_support::process::ChildGuard;
use lateen_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use lateen_xds::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, DataSource, SocketAddress, address,
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
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::get;

pub mod tls;

/// A free port never handed out before in this test process (test-support's `free_port`).
pub use lateen_test_support::free_port as unique_port;

pub const NODE_ID: &str = "sidecar~127.0.0.1~web-7d4b9c8f6d-abcde.shop~shop.svc.cluster.local";

pub fn pack<M: Message + Name>(message: &M) -> protobuf::Any {
    protobuf::Any {
        type_url: M::type_url(),
        value: message.encode_to_vec(),
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

pub fn socket(address: SocketAddr) -> lateen_xds::pb::envoy::config::core::v3::Address {
    lateen_xds::pb::envoy::config::core::v3::Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.ip().to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                address.port(),
            ))),
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

pub fn endpoints(cluster: &str, addresses: &[SocketAddr]) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: addresses
                .iter()
                .map(|address| LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(socket(*address)),
                        ..Default::default()
                    })),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

pub fn route_config(
    name: &str,
    path_specifier: route_match::PathSpecifier,
    action: route::Action,
) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts: vec![VirtualHost {
            name: "all".to_string(),
            domains: vec!["*".to_string()],
            routes: vec![Route {
                r#match: Some(RouteMatch {
                    path_specifier: Some(path_specifier),
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
        route_match::PathSpecifier::Prefix("/".into()),
        route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.to_string())),
            ..Default::default()
        }),
    )
}

pub fn direct_response(name: &str, body: &str) -> RouteConfiguration {
    route_config(
        name,
        route_match::PathSpecifier::Prefix("/".into()),
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

/// An HTTP listener on `address` whose routes come from RDS `route_name`.
pub fn http_listener(name: &str, address: SocketAddr, route_name: &str) -> Listener {
    let manager = HttpConnectionManager {
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
        address: Some(socket(address)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(pack(&manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// `lateen-proxy sidecar` run as a child process against `discovery`.
pub struct SidecarProcess {
    child: ChildGuard,
    pub admin: SocketAddr,
    pub health: SocketAddr,
    pub metrics: SocketAddr,
    _dir: tempfile::TempDir,
    log: std::path::PathBuf,
}

impl SidecarProcess {
    /// Starts the sidecar with Istio's injected environment; does not wait for readiness.
    pub fn start(discovery: SocketAddr) -> SidecarProcess {
        SidecarProcess::start_with(discovery, &[])
    }

    /// [`SidecarProcess::start`] with more flags.
    pub fn start_with(discovery: SocketAddr, extra: &[&str]) -> SidecarProcess {
        SidecarProcess::start_with_env(discovery, extra, &[])
    }

    /// [`SidecarProcess::start_with`] with more environment variables.
    pub fn start_with_env(
        discovery: SocketAddr,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> SidecarProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("proxy.log");
        let admin: SocketAddr = ([127, 0, 0, 1], unique_port()).into();
        let health: SocketAddr = ([127, 0, 0, 1], unique_port()).into();
        let metrics: SocketAddr = ([127, 0, 0, 1], unique_port()).into();
        let child = Command::new(env!("CARGO_BIN_EXE_lateen-proxy"))
            .args(["sidecar", "--discovery-address", &discovery.to_string()])
            .args([
                "--admin-address",
                &admin.to_string(),
                "--health-address",
                &health.to_string(),
                "--metrics-address",
                &metrics.to_string(),
            ])
            .args(["--concurrency", "2", "--labels-file", "/nonexistent/labels"])
            .args(if extra.contains(&"--warm-timeout") {
                &[][..]
            } else {
                &["--warm-timeout", "5"][..]
            })
            .args(extra)
            // What Istio's injector adds; accepted and ignored.
            .args([
                "--domain",
                "shop.svc.cluster.local",
                "--proxyLogLevel=warning",
                "--proxyComponentLogLevel=misc:error",
                "--log_output_level=default:info",
            ])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("POD_NAME", "web-7d4b9c8f6d-abcde")
            .env("POD_NAMESPACE", "shop")
            .env("INSTANCE_IP", "127.0.0.1")
            .env("SERVICE_ACCOUNT", "web")
            .env("ISTIO_META_INTERCEPTION_MODE", "NONE")
            .env("ISTIO_META_CLUSTER_ID", "test-cluster")
            .env("ISTIO_METAJSON_LABELS", r#"{"app":"web","version":"v2"}"#)
            .env("LATEEN_LOG", "info,lateen_proxy=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start lateen-proxy sidecar");
        SidecarProcess {
            child: ChildGuard::new(child),
            admin,
            health,
            metrics,
            _dir: dir,
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id, to read its descriptors and memory from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn is_ready(&self) -> bool {
        matches!(get(self.health, "/healthz/ready").await, Ok((200, _)))
    }

    /// Waits until `/healthz/ready` says 200.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.is_ready().await {
            assert!(
                self.child.try_wait().ok().flatten().is_none(),
                "sidecar exited; log:\n{}",
                self.log_text()
            );
            assert!(
                Instant::now() < deadline,
                "sidecar not ready in 20s; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn config_dump(&self) -> serde_json::Value {
        let (status, body) = get(self.admin, "/config_dump").await.expect("config_dump");
        assert_eq!(status, 200);
        serde_json::from_str(&body).expect("config_dump is JSON")
    }
}
