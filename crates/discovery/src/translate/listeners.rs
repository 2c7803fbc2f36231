//! LDS. Sidecars in REDIRECT/TPROXY mode get Istio's capture layout: `virtualOutbound`
//! (15001, original destination, passthrough chain), `virtualInbound` (15006) and one
//! `0.0.0.0_PORT` listener per outbound service port with `bind_to_port: false` (the capture
//! listeners bind the proxy's `capture_bind`, see [`crate::proxy`]). Sidecars in
//! NONE mode (no iptables) get real listeners from their Sidecar resource: `egress[].port` on
//! `egress[].bind` (default 127.0.0.1) and `ingress[].port` on `ingress[].bind` (default
//! 0.0.0.0). Routers get one listener per Gateway server port. HTTP listeners take their routes
//! over RDS, named by port (`"9080"`) for sidecars and `http.PORT` for gateways.

use std::collections::BTreeSet;

use lateen_api::networking::OutboundTrafficMode;
use lateen_xds::pb::envoy::config::core::v3::TrafficDirection;
use lateen_xds::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use lateen_xds::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action,
    route_match,
};
use lateen_xds::pb::envoy::extensions::filters::http::cors::v3::Cors;
use lateen_xds::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use lateen_xds::pb::envoy::extensions::filters::http::router::v3::Router;
use lateen_xds::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use lateen_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};

use super::Context;
use super::clusters::{InboundPort, inbound_ports};
use super::mtls_inbound;
use super::names::{self, BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER};
use crate::proxy::InterceptionMode;
use crate::registry::labels_match;

/// Which routes a route configuration holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteTarget {
    /// Sidecar outbound routes for services on this port.
    Sidecar { port: u32 },
    /// Gateway routes: VirtualServices bound to `gateways` (`ns/name`) for `hosts`.
    Gateway {
        port: u32,
        hosts: Vec<String>,
        gateways: Vec<String>,
    },
}

/// A route configuration a listener refers to over RDS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteRequest {
    pub name: String,
    pub target: RouteTarget,
}

pub struct BuiltListeners {
    pub listeners: Vec<Listener>,
    pub route_names: Vec<RouteRequest>,
}

pub fn build(ctx: &Context<'_>) -> BuiltListeners {
    let mut out = BuiltListeners {
        listeners: Vec::new(),
        route_names: Vec::new(),
    };
    if ctx.is_router() {
        gateway_listeners(ctx, &mut out);
    } else if ctx.interception() == InterceptionMode::None {
        explicit_listeners(ctx, &mut out);
    } else {
        capture_listeners(ctx, &mut out);
    }
    let mut seen = BTreeSet::new();
    out.listeners.retain(|l| seen.insert(l.name.clone()));
    super::access_log::apply(ctx, &mut out.listeners);
    super::stats::apply(ctx, &mut out.listeners);
    let mut seen = BTreeSet::new();
    out.route_names.retain(|r| seen.insert(r.name.clone()));
    out
}

/// Outbound route config for a sidecar port; TCP ports forward to their only service.
fn outbound_chain(
    ctx: &Context<'_>,
    port: u32,
    http: bool,
    out: &mut BuiltListeners,
) -> Option<FilterChain> {
    if http {
        let name = port.to_string();
        out.route_names.push(RouteRequest {
            name: name.clone(),
            target: RouteTarget::Sidecar { port },
        });
        return Some(chain(vec![hcm_rds(
            &format!("outbound_0.0.0.0_{port}"),
            &name,
            super::tracing::hcm_tracing(ctx, true),
        )]));
    }
    match ctx.services_on_port(port).as_slice() {
        [only] => {
            let stat = names::outbound_cluster(port, "", &only.hostname);
            Some(chain(vec![weighted_tcp_proxy(
                &stat,
                super::routes::tcp_destinations(ctx, only, port),
            )]))
        }
        _ => {
            tracing::debug!(
                port,
                "several TCP services share a port; no listener without capture"
            );
            None
        }
    }
}

fn port_is_http(ctx: &Context<'_>, port: u32) -> bool {
    let services = ctx.services_on_port(port);
    !services.is_empty()
        && services
            .iter()
            .all(|s| s.port(port).is_some_and(|p| p.is_http()))
}

/// MeshConfig `proxyListenPort` / `proxyInboundListenPort`, else Istio's 15001 / 15006.
fn capture_port(configured: Option<i32>, default: u16) -> u32 {
    configured
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| (1..=65535).contains(p))
        .unwrap_or(u32::from(default))
}

fn capture_listeners(ctx: &Context<'_>, out: &mut BuiltListeners) {
    let passthrough = match ctx.outbound_mode() {
        OutboundTrafficMode::AllowAny => PASSTHROUGH_CLUSTER,
        OutboundTrafficMode::RegistryOnly => BLACKHOLE_CLUSTER,
    };
    out.listeners.push(Listener {
        name: names::VIRTUAL_OUTBOUND.to_string(),
        address: Some(names::socket(
            &ctx.proxy.capture_bind,
            capture_port(
                ctx.config.mesh.proxy_listen_port,
                names::OUTBOUND_CAPTURE_PORT,
            ),
        )),
        use_original_dst: Some(names::boolean(true)),
        traffic_direction: TrafficDirection::Outbound as i32,
        default_filter_chain: Some(FilterChain {
            name: "PassthroughFilterChain".to_string(),
            ..chain(vec![tcp_proxy(passthrough, passthrough)])
        }),
        ..Default::default()
    });
    let mtls = mtls_inbound::modes(ctx);
    let inbound_chains = inbound_ports(ctx)
        .into_iter()
        .flat_map(|p| {
            let plain = FilterChain {
                filter_chain_match: Some(FilterChainMatch {
                    destination_port: Some(names::uint32(p.port)),
                    ..Default::default()
                }),
                name: names::inbound_cluster(p.port),
                ..inbound_chain(ctx, &p)
            };
            mtls_inbound::chains(mtls.as_ref(), p.port, p.http, plain)
        })
        .collect();
    let mut listener_filters = vec![ListenerFilter {
        name: "envoy.filters.listener.original_dst".to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(names::pack(
            &OriginalDst {},
        ))),
        ..Default::default()
    }];
    if mtls.is_some() {
        listener_filters.push(mtls_inbound::tls_inspector());
    }
    out.listeners.push(Listener {
        name: names::VIRTUAL_INBOUND.to_string(),
        address: Some(names::socket(
            &ctx.proxy.capture_bind,
            capture_port(
                ctx.config.mesh.proxy_inbound_listen_port,
                names::INBOUND_CAPTURE_PORT,
            ),
        )),
        traffic_direction: TrafficDirection::Inbound as i32,
        listener_filters,
        filter_chains: inbound_chains,
        default_filter_chain: Some(FilterChain {
            name: "InboundPassthroughFilterChain".to_string(),
            ..chain(vec![tcp_proxy(
                INBOUND_PASSTHROUGH_CLUSTER,
                INBOUND_PASSTHROUGH_CLUSTER,
            )])
        }),
        ..Default::default()
    });
    let ports: BTreeSet<u32> = ctx
        .services
        .iter()
        .flat_map(|s| s.ports.iter().map(|p| p.number))
        .collect();
    for port in ports {
        let http = port_is_http(ctx, port);
        if let Some(c) = outbound_chain(ctx, port, http, out) {
            out.listeners.push(Listener {
                name: names::listener_name("0.0.0.0", port),
                address: Some(names::socket(&ctx.proxy.wildcard, port)),
                bind_to_port: Some(names::boolean(false)),
                traffic_direction: TrafficDirection::Outbound as i32,
                filter_chains: vec![c],
                ..Default::default()
            });
        }
    }
}

fn explicit_listeners(ctx: &Context<'_>, out: &mut BuiltListeners) {
    let Some(sidecar) = ctx.sidecar else {
        tracing::debug!(namespace = %ctx.proxy.namespace, labels = ?ctx.proxy.labels, "NONE interception without a Sidecar resource: no listeners");
        return;
    };
    for egress in &sidecar.spec.egress {
        let Some(port) = &egress.port else {
            continue; // a catch-all egress needs capture; it only scopes hosts here
        };
        let bind = egress
            .bind
            .clone()
            .unwrap_or_else(|| "127.0.0.1".to_string());
        let http = if port.protocol.is_empty() {
            port_is_http(ctx, port.number)
        } else {
            super::clusters::is_http_protocol(&port.protocol, &port.name)
        };
        if let Some(c) = outbound_chain(ctx, port.number, http, out) {
            out.listeners.push(Listener {
                name: names::listener_name(&bind, port.number),
                address: Some(names::socket(&bind, port.number)),
                traffic_direction: TrafficDirection::Outbound as i32,
                filter_chains: vec![c],
                ..Default::default()
            });
        }
    }
    let mtls = mtls_inbound::modes(ctx);
    for inbound in inbound_ports(ctx).into_iter().filter(|p| p.explicit) {
        let bind = inbound
            .bind
            .clone()
            .unwrap_or_else(|| "0.0.0.0".to_string());
        out.listeners.push(Listener {
            name: names::listener_name(&bind, inbound.port),
            address: Some(names::socket(&bind, inbound.port)),
            traffic_direction: TrafficDirection::Inbound as i32,
            listener_filters: mtls.iter().map(|_| mtls_inbound::tls_inspector()).collect(),
            filter_chains: mtls_inbound::chains(
                mtls.as_ref(),
                inbound.port,
                inbound.http,
                inbound_chain(ctx, &inbound),
            ),
            ..Default::default()
        });
    }
}

fn gateway_listeners(ctx: &Context<'_>, out: &mut BuiltListeners) {
    let selected: Vec<_> = ctx
        .config
        .gateways()
        .filter(|g| {
            !g.spec.selector.is_empty() && labels_match(&g.spec.selector, &ctx.proxy.labels)
        })
        .collect();
    let mut by_port: std::collections::BTreeMap<(String, u32), (Vec<String>, Vec<String>)> =
        Default::default();
    for gw in &selected {
        let gw_name = format!("{}/{}", gw.namespace(), gw.name());
        for server in &gw.spec.servers {
            let Some(port) = &server.port else { continue };
            let protocol = port.protocol.to_ascii_uppercase();
            if !matches!(protocol.as_str(), "HTTP" | "HTTP2" | "GRPC") {
                tracing::warn!(gateway = %gw_name, port = port.number, %protocol, "gateway server protocol not supported yet; skipped");
                continue;
            }
            let bind = server.bind.clone().unwrap_or_else(|| "0.0.0.0".to_string());
            let entry = by_port.entry((bind, port.number)).or_default();
            entry.0.extend(
                server
                    .hosts
                    .iter()
                    .map(|h| h.split_once('/').map_or(h.clone(), |(_, h)| h.to_string())),
            );
            if !entry.1.contains(&gw_name) {
                entry.1.push(gw_name.clone());
            }
        }
    }
    for ((bind, port), (hosts, gateways)) in by_port {
        let route_name = format!("http.{port}");
        out.route_names.push(RouteRequest {
            name: route_name.clone(),
            target: RouteTarget::Gateway {
                port,
                hosts,
                gateways,
            },
        });
        out.listeners.push(Listener {
            name: names::listener_name(&bind, port),
            address: Some(names::socket(&bind, port)),
            traffic_direction: TrafficDirection::Outbound as i32,
            filter_chains: vec![chain(vec![hcm_rds(
                &names::listener_name(&bind, port),
                &route_name,
                super::tracing::hcm_tracing(ctx, true),
            )])],
            ..Default::default()
        });
    }
}

fn chain(filters: Vec<Filter>) -> FilterChain {
    FilterChain {
        filters,
        ..Default::default()
    }
}

/// Inbound traffic to the proxy's own workload: HTTP through a connection manager with an
/// inline route, opaque TCP straight to the `inbound|PORT||` cluster.
/// Authorization (RBAC, JWT) filters come first ([`super::authz`], [`super::jwt`]).
fn inbound_chain(ctx: &Context<'_>, port: &InboundPort) -> FilterChain {
    let cluster = names::inbound_cluster(port.port);
    if !port.http {
        let mut filters = super::authz::network_filters(ctx);
        filters.push(tcp_proxy(&cluster, &cluster));
        return chain(filters);
    }
    let routes = RouteConfiguration {
        name: cluster.clone(),
        virtual_hosts: vec![VirtualHost {
            name: cluster.clone(),
            domains: vec!["*".to_string()],
            routes: vec![Route {
                name: "default".to_string(),
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_string())),
                    ..Default::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                        cluster.clone(),
                    )),
                    timeout: Some(names::duration(std::time::Duration::ZERO)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut manager = hcm_config(
        &format!("inbound_0.0.0.0_{}", port.port),
        http_connection_manager::RouteSpecifier::RouteConfig(routes),
        super::tracing::hcm_tracing(ctx, false),
    );
    let security = super::jwt::http_filter(ctx)
        .into_iter()
        .chain(super::authz::http_filters(ctx));
    manager.http_filters.splice(0..0, security);
    chain(vec![hcm_filter(&manager)])
}

fn hcm_rds(
    stat_prefix: &str,
    route_name: &str,
    tracing: Option<http_connection_manager::Tracing>,
) -> Filter {
    hcm(
        stat_prefix,
        http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(names::ads()),
            route_config_name: route_name.to_string(),
        }),
        tracing,
    )
}

/// The HTTP filter chain of every connection manager: fault (per-route faults), CORS
/// (per-route policies), router. Constant, so route changes never touch listeners.
fn http_filters() -> Vec<HttpFilter> {
    let typed = |name: &str, any| HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any)),
        ..Default::default()
    };
    vec![
        typed(names::FAULT_FILTER, names::pack(&HttpFault::default())),
        typed(names::CORS_FILTER, names::pack(&Cors::default())),
        typed(names::ROUTER_FILTER, names::pack(&Router::default())),
    ]
}

fn hcm(
    stat_prefix: &str,
    routes: http_connection_manager::RouteSpecifier,
    tracing: Option<http_connection_manager::Tracing>,
) -> Filter {
    hcm_filter(&hcm_config(stat_prefix, routes, tracing))
}

fn hcm_config(
    stat_prefix: &str,
    routes: http_connection_manager::RouteSpecifier,
    tracing: Option<http_connection_manager::Tracing>,
) -> HttpConnectionManager {
    HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        codec_type: http_connection_manager::CodecType::Auto as i32,
        route_specifier: Some(routes),
        http_filters: http_filters(),
        tracing,
        ..Default::default()
    }
}

fn hcm_filter(manager: &HttpConnectionManager) -> Filter {
    Filter {
        name: names::HTTP_CONNECTION_MANAGER.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(names::pack(manager))),
    }
}

/// TCP proxy to one cluster, or split by weight between several (VirtualService `tcp`).
fn weighted_tcp_proxy(stat_prefix: &str, mut destinations: Vec<(String, u32)>) -> Filter {
    if destinations.len() == 1 {
        let (cluster, _) = destinations.remove(0);
        return tcp_proxy(stat_prefix, &cluster);
    }
    let proxy = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::WeightedClusters(
            tcp_proxy::WeightedCluster {
                clusters: destinations
                    .into_iter()
                    .map(
                        |(name, weight)| tcp_proxy::weighted_cluster::ClusterWeight {
                            name,
                            weight,
                            ..Default::default()
                        },
                    )
                    .collect(),
            },
        )),
        ..Default::default()
    };
    Filter {
        name: names::TCP_PROXY.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(names::pack(&proxy))),
    }
}

fn tcp_proxy(stat_prefix: &str, cluster: &str) -> Filter {
    let proxy = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.to_string())),
        ..Default::default()
    };
    Filter {
        name: names::TCP_PROXY.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(names::pack(&proxy))),
    }
}
