//! `Listener` → [`model::Listener`]s. A plain listener has one filter chain; a capture
//! listener (`use_original_dst`, or the `original_dst` listener filter as Istio's
//! virtualInbound has) may also have chains matched by `destination_port`, which become
//! `bind: false` listeners on `0.0.0.0:PORT` that the capture listener hands connections to.
//! A chain is an HTTP connection manager (routes by RDS name or inline) or a TCP proxy.

use lateen_xds::pb::envoy::config::core::v3::config_source;
use lateen_xds::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use lateen_xds::pb::envoy::extensions::filters::http::cors::v3::Cors;
use lateen_xds::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use lateen_xds::pb::envoy::extensions::filters::http::jwt_authn::v3::JwtAuthentication;
use lateen_xds::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use lateen_xds::pb::envoy::extensions::filters::http::router::v3::Router;
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use lateen_xds::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use lateen_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use lateen_xds::pb::google::protobuf::Any;
use lateen_xds::prost::Name;
use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::{Check, Rejection, duration, socket_addr, unpack};
use crate::config::model;

/// A translated listener: the listeners it becomes, its inline route tables, and what it
/// refers to (RDS names to subscribe to, clusters that must exist).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TranslatedListener {
    pub listeners: Vec<model::Listener>,
    pub inline_routes: Vec<model::RouteConfig>,
    pub rds: BTreeSet<String>,
    pub clusters: BTreeSet<String>,
}

const HCM: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";

pub fn translate(source: &Listener) -> Result<TranslatedListener, Rejection> {
    let check = Check::new("Listener", &source.name);
    if source.name.is_empty() {
        return Err(check.reject("name", "must not be empty"));
    }
    let rest = Listener {
        name: String::new(),
        address: None,
        bind_to_port: None,
        use_original_dst: None,
        traffic_direction: 0,
        filter_chains: Vec::new(),
        default_filter_chain: None,
        listener_filters: Vec::new(),
        listener_filters_timeout: None,
        // Detection always falls back to TCP when the filters time out.
        continue_on_listener_filters_timeout: false,
        stat_prefix: String::new(),
        metadata: None,
        ..source.clone()
    };
    check.no_leftover("", &rest)?;
    let address =
        socket_addr(source.address.as_ref()).map_err(|reason| check.reject("address", reason))?;
    let mut capture = source
        .use_original_dst
        .as_ref()
        .is_some_and(|flag| flag.value);
    for (index, listener_filter) in source.listener_filters.iter().enumerate() {
        match listener_filter_kind(listener_filter) {
            Some(ListenerFilterKind::OriginalDst) => capture = true,
            Some(ListenerFilterKind::Inspector) => {}
            None => {
                return Err(check.reject(
                    format!("listener_filters[{index}]"),
                    format!(
                        "listener filter {:?} is not supported",
                        listener_filter.name
                    ),
                ));
            }
        }
        if listener_filter.filter_disabled.is_some() {
            return Err(check.reject(
                format!("listener_filters[{index}].filter_disabled"),
                "not supported by lateen-proxy",
            ));
        }
    }
    // TrafficDirection: UNSPECIFIED = 0, INBOUND = 1, OUTBOUND = 2.
    let direction = match source.traffic_direction {
        1 => model::Direction::Inbound,
        0 | 2 => model::Direction::Outbound,
        other => {
            return Err(check.reject("traffic_direction", format!("unknown direction {other}")));
        }
    };
    let detect_timeout = match &source.listener_filters_timeout {
        Some(timeout) => {
            duration(timeout).map_err(|reason| check.reject("listener_filters_timeout", reason))?
        }
        None => model::defaults::detect_timeout(),
    };
    let base = model::Listener {
        name: source.name.clone(),
        address,
        bind: source.bind_to_port.as_ref().is_none_or(|flag| flag.value),
        capture: if capture {
            model::Capture::OriginalDst
        } else {
            model::Capture::None
        },
        direction,
        protocol: model::ListenerProtocol::Auto,
        detect_timeout,
        route_config: None,
        tcp_cluster: None,
        limits: model::HttpLimits::default(),
        access_log: Vec::new(),
        stats: None,
        mtls: model::MtlsMode::Disable,
        tracing: None,
        http_authz: Default::default(),
        tcp_authz: Default::default(),
    };

    let mut out = TranslatedListener::default();
    // Chains grouped by the port they match (none: every connection); the chains of a group
    // differ only by transport (TLS or plaintext) and ALPN, and become one listener.
    let mut main_chains: Vec<(String, &FilterChain)> = Vec::new();
    let mut port_chains: std::collections::BTreeMap<u16, Vec<(String, &FilterChain)>> =
        Default::default();
    for (index, chain) in source.filter_chains.iter().enumerate() {
        let path = format!("filter_chains[{index}]");
        match chain_port(
            chain.filter_chain_match.as_ref(),
            &format!("{path}.filter_chain_match"),
            &check,
        )? {
            Some(port) if capture => port_chains.entry(port).or_default().push((path, chain)),
            Some(port) if port == address.port() => main_chains.push((path, chain)),
            Some(port) => {
                return Err(check.reject(
                    format!("{path}.filter_chain_match.destination_port"),
                    format!("{port} is not this listener's port and it does not capture"),
                ));
            }
            None => main_chains.push((path, chain)),
        }
    }
    if let Some(chain) = &source.default_filter_chain {
        main_chains.push(("default_filter_chain".to_string(), chain));
    }
    check_alternatives(&main_chains, &check)?;

    let mut listener = base.clone();
    if !main_chains.is_empty() {
        super::inbound_chains::merge(&mut listener, &main_chains, &check, &mut out, &apply_chain)?;
    } else if capture {
        listener.protocol = model::ListenerProtocol::Tcp;
    } else {
        return Err(check.reject("filter_chains", "a listener needs a filter chain"));
    }
    out.listeners.push(listener);

    for (port, chains) in port_chains {
        check_alternatives(&chains, &check)?;
        let mut child = model::Listener {
            name: format!("{}~{port}", source.name),
            address: SocketAddr::new(wildcard_like(address), port),
            bind: false,
            capture: model::Capture::None,
            ..base.clone()
        };
        super::inbound_chains::merge(&mut child, &chains, &check, &mut out, &apply_chain)?;
        out.listeners.push(child);
    }
    Ok(out)
}

fn wildcard_like(address: SocketAddr) -> std::net::IpAddr {
    match address {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// Chains for the same connections must be told apart by transport or ALPN; two that match
/// exactly the same connections cannot both apply.
fn check_alternatives(chains: &[(String, &FilterChain)], check: &Check) -> Result<(), Rejection> {
    let distinguished = |chain: &FilterChain| {
        chain.filter_chain_match.as_ref().is_some_and(|m| {
            !m.transport_protocol.is_empty() || !m.application_protocols.is_empty()
        })
    };
    if chains.len() > 1 && !chains.iter().any(|(_, chain)| distinguished(chain)) {
        let (first, _) = &chains[0];
        let (path, _) = &chains[1];
        return Err(check.reject(path.clone(), format!("more than one chain matches every connection ({first} too); only destination_port, transport_protocol and application_protocols matches are supported")));
    }
    Ok(())
}

enum ListenerFilterKind {
    OriginalDst,
    /// tls_inspector, http_inspector: our protocol detection does their job.
    Inspector,
}

fn listener_filter_kind(listener_filter: &ListenerFilter) -> Option<ListenerFilterKind> {
    let type_url = match &listener_filter.config_type {
        Some(listener_filter::ConfigType::TypedConfig(any)) => any.type_url.as_str(),
        _ => "",
    };
    let named = |name: &str, kind: &str| listener_filter.name == name || type_url.ends_with(kind);
    if named(
        "envoy.filters.listener.original_dst",
        ".original_dst.v3.OriginalDst",
    ) {
        Some(ListenerFilterKind::OriginalDst)
    } else if named(
        "envoy.filters.listener.tls_inspector",
        ".tls_inspector.v3.TlsInspector",
    ) || named(
        "envoy.filters.listener.http_inspector",
        ".http_inspector.v3.HttpInspector",
    ) {
        Some(ListenerFilterKind::Inspector)
    } else {
        None
    }
}

/// The `destination_port` a chain matches, if any; other match fields are rejected.
fn chain_port(
    matcher: Option<&FilterChainMatch>,
    path: &str,
    check: &Check,
) -> Result<Option<u16>, Rejection> {
    let Some(matcher) = matcher else {
        return Ok(None);
    };
    check.no_leftover(
        path,
        &FilterChainMatch {
            destination_port: None,
            // Which chain of a port a connection takes (TLS or not, ALPN): see
            // inbound_chains.
            transport_protocol: String::new(),
            application_protocols: Vec::new(),
            ..matcher.clone()
        },
    )?;
    matcher
        .destination_port
        .as_ref()
        .map(|port| {
            u16::try_from(port.value).map_err(|_| {
                check.reject(
                    format!("{path}.destination_port"),
                    format!("{} is out of range", port.value),
                )
            })
        })
        .transpose()
}

fn apply_chain(
    listener: &mut model::Listener,
    chain: &FilterChain,
    path: &str,
    check: &Check,
    out: &mut TranslatedListener,
) -> Result<(), Rejection> {
    // The transport socket was checked and taken off by inbound_chains.
    let rest = FilterChain {
        filter_chain_match: None,
        filters: Vec::new(),
        name: String::new(),
        metadata: None,
        ..chain.clone()
    };
    check.no_leftover(path, &rest)?;
    // RBAC network filters and Istio's stats filter may come before the one that serves the
    // connection.
    let Some((network_filter, rbac_filters)) = chain.filters.split_last() else {
        return Err(check.reject(
            format!("{path}.filters"),
            "needs a filter (http_connection_manager or tcp_proxy)",
        ));
    };
    for (index, rbac) in rbac_filters.iter().enumerate() {
        let r_path = format!("{path}.filters[{index}]");
        if rbac.name == lateen_xds::istio_stats::FILTER_NAME && listener.stats.is_none() {
            // Istio's TCP stats filter: the metrics overrides of the chain's connections.
            let any = match &rbac.config_type {
                Some(filter::ConfigType::TypedConfig(any)) => Some(any),
                _ => None,
            };
            let stats = super::stats::translate(any, &format!("{r_path}.typed_config"))
                .map_err(|reason| check.reject(r_path.clone(), reason))?;
            listener.stats = Some(stats);
            continue;
        }
        let config = match &rbac.config_type {
            Some(filter::ConfigType::TypedConfig(any))
                if any.type_url == NetworkRbac::type_url() =>
            {
                unpack::<NetworkRbac>(any)
                    .map_err(|reason| check.reject(format!("{r_path}.typed_config"), reason))?
            }
            _ => {
                return Err(check.reject(
                    r_path,
                    format!(
                        "only envoy.filters.network.rbac may come before the last filter, not {:?}",
                        rbac.name
                    ),
                ));
            }
        };
        let rbac = super::authz::network_rbac(&config, &format!("{r_path}.typed_config"))
            .map_err(|(field, reason)| check.reject(field, reason))?;
        listener.tcp_authz.rbac.push(rbac);
    }
    let f_path = format!("{path}.filters[{}]", chain.filters.len() - 1);
    let Some(filter::ConfigType::TypedConfig(any)) = &network_filter.config_type else {
        return Err(check.reject(format!("{f_path}.typed_config"), "missing"));
    };
    if any.type_url == HttpConnectionManager::type_url()
        || (network_filter.name == HCM && any.type_url.is_empty())
    {
        let manager: HttpConnectionManager =
            unpack(any).map_err(|reason| check.reject(format!("{f_path}.typed_config"), reason))?;
        connection_manager(
            listener,
            &manager,
            &format!("{f_path}.typed_config"),
            check,
            out,
        )
    } else if any.type_url == TcpProxy::type_url()
        || (network_filter.name == TCP_PROXY && any.type_url.is_empty())
    {
        let proxy: TcpProxy =
            unpack(any).map_err(|reason| check.reject(format!("{f_path}.typed_config"), reason))?;
        let p_path = format!("{f_path}.typed_config");
        check.no_leftover(
            &p_path,
            &TcpProxy {
                stat_prefix: String::new(),
                cluster_specifier: None,
                access_log: Vec::new(),
                ..proxy.clone()
            },
        )?;
        listener.access_log = super::access_log::translate(&proxy.access_log, &p_path, check)?;
        let cluster = match &proxy.cluster_specifier {
            Some(tcp_proxy::ClusterSpecifier::Cluster(cluster)) => cluster.clone(),
            Some(_) => {
                return Err(check.reject(
                    format!("{p_path}.weighted_clusters"),
                    "not supported by lateen-proxy",
                ));
            }
            None => return Err(check.reject(format!("{p_path}.cluster"), "missing")),
        };
        listener.protocol = model::ListenerProtocol::Tcp;
        out.clusters.insert(cluster.clone());
        listener.tcp_cluster = Some(cluster);
        Ok(())
    } else {
        let _: &Filter = network_filter;
        Err(check.reject(
            f_path,
            format!(
                "network filter {:?} ({}) is not supported",
                network_filter.name, any.type_url
            ),
        ))
    }
}

fn connection_manager(
    listener: &mut model::Listener,
    manager: &HttpConnectionManager,
    path: &str,
    check: &Check,
    out: &mut TranslatedListener,
) -> Result<(), Rejection> {
    let rest = HttpConnectionManager {
        codec_type: 0,
        stat_prefix: String::new(),
        route_specifier: None,
        http_filters: Vec::new(),
        common_http_protocol_options: None,
        http2_protocol_options: None,
        max_request_headers_kb: None,
        request_headers_timeout: None,
        upgrade_configs: Vec::new(),
        tracing: None,
        access_log: Vec::new(),
        ..manager.clone()
    };
    check.no_leftover(path, &rest)?;
    listener.tracing = manager
        .tracing
        .as_ref()
        .map(|tracing| super::tracing::translate(tracing, &format!("{path}.tracing"), check))
        .transpose()?;
    listener.access_log = super::access_log::translate(&manager.access_log, path, check)?;
    // CodecType: AUTO = 0, HTTP1 = 1, HTTP2 = 2, HTTP3 = 3.
    listener.protocol = match manager.codec_type {
        0 => model::ListenerProtocol::Http,
        1 => model::ListenerProtocol::Http1,
        2 => model::ListenerProtocol::Http2,
        other => {
            return Err(check.reject(
                format!("{path}.codec_type"),
                format!("codec {other} is not supported"),
            ));
        }
    };
    match &manager.route_specifier {
        Some(http_connection_manager::RouteSpecifier::Rds(rds)) => {
            let ads = rds.config_source.as_ref().is_some_and(|source| {
                matches!(
                    source.config_source_specifier,
                    Some(config_source::ConfigSourceSpecifier::Ads(_))
                )
            });
            if !ads {
                return Err(
                    check.reject(format!("{path}.rds.config_source"), "only ADS is supported")
                );
            }
            if rds.route_config_name.is_empty() {
                return Err(
                    check.reject(format!("{path}.rds.route_config_name"), "must not be empty")
                );
            }
            out.rds.insert(rds.route_config_name.clone());
            listener.route_config = Some(rds.route_config_name.clone());
        }
        Some(http_connection_manager::RouteSpecifier::RouteConfig(table)) => {
            // Inline tables get a name of their own so they never clash with RDS ones.
            let name = format!("{}#inline", listener.name);
            let translated = super::route::translate_named(
                table,
                &name,
                Check::new("Listener", &check_name(check)),
                &format!("{path}.route_config"),
            )?;
            out.clusters.extend(translated.clusters);
            out.inline_routes.push(translated.config);
            listener.route_config = Some(name);
        }
        Some(_) => {
            return Err(check.reject(
                format!("{path}.scoped_routes"),
                "not supported by lateen-proxy",
            ));
        }
        None => {
            return Err(check.reject(
                format!("{path}.route_specifier"),
                "missing: set rds or route_config",
            ));
        }
    }
    (listener.http_authz, listener.stats) = http_filters(
        &manager.http_filters,
        &format!("{path}.http_filters"),
        check,
    )?;
    if let Some(options) = &manager.common_http_protocol_options {
        let o_path = format!("{path}.common_http_protocol_options");
        check.no_leftover(
            &o_path,
            &lateen_xds::pb::envoy::config::core::v3::HttpProtocolOptions {
                idle_timeout: None,
                max_headers_count: None,
                ..*options
            },
        )?;
        if let Some(idle) = &options.idle_timeout {
            listener.limits.idle_timeout = duration(idle)
                .map_err(|reason| check.reject(format!("{o_path}.idle_timeout"), reason))?;
        }
        if let Some(count) = &options.max_headers_count {
            listener.limits.max_headers = count.value as usize;
        }
    }
    if let Some(options) = &manager.http2_protocol_options {
        let o_path = format!("{path}.http2_protocol_options");
        check.no_leftover(
            &o_path,
            &lateen_xds::pb::envoy::config::core::v3::Http2ProtocolOptions {
                max_concurrent_streams: None,
                ..options.clone()
            },
        )?;
        if let Some(streams) = &options.max_concurrent_streams {
            listener.limits.max_concurrent_streams = streams.value;
        }
    }
    if let Some(kb) = &manager.max_request_headers_kb {
        listener.limits.max_header_bytes = kb.value as usize * 1024;
    }
    if let Some(timeout) = &manager.request_headers_timeout {
        listener.limits.request_headers_timeout = duration(timeout)
            .map_err(|reason| check.reject(format!("{path}.request_headers_timeout"), reason))?;
    }
    for (index, upgrade) in manager.upgrade_configs.iter().enumerate() {
        // Upgrades (WebSocket and others) are always passed through; turning them off or
        // adding filters to them is not supported.
        if !upgrade.filters.is_empty() || upgrade.enabled.as_ref().is_some_and(|flag| !flag.value) {
            return Err(check.reject(
                format!("{path}.upgrade_configs[{index}]"),
                "only enabled upgrades without filters are supported",
            ));
        }
    }
    Ok(())
}

fn check_name(check: &Check) -> String {
    check.reject("", "").name
}

/// The router must come last; fault and CORS filters are accepted only without a
/// configuration of their own: they act through the routes' per-filter configs. JWT and
/// RBAC filters become the listener's [`crate::authz::HttpAuthz`], Istio's `istio.stats`
/// filter its metrics overrides (the only filter that may be marked `is_optional`).
fn http_filters(
    filters: &[HttpFilter],
    path: &str,
    check: &Check,
) -> Result<
    (
        crate::authz::HttpAuthz,
        Option<crate::stats_overrides::StatsConfig>,
    ),
    Rejection,
> {
    let mut authz = crate::authz::HttpAuthz::default();
    let mut stats = None;
    let Some(last) = filters.last() else {
        return Err(check.reject(path, "needs the router filter"));
    };
    for (index, http) in filters.iter().enumerate() {
        let f_path = format!("{path}[{index}]");
        let is_stats = http.name == lateen_xds::istio_stats::FILTER_NAME;
        check.no_leftover(
            &f_path,
            &HttpFilter {
                name: String::new(),
                config_type: None,
                is_optional: http.is_optional && !is_stats,
                ..http.clone()
            },
        )?;
        let any = match &http.config_type {
            Some(http_filter::ConfigType::TypedConfig(any)) => Some(any),
            Some(_) => {
                return Err(check.reject(
                    format!("{f_path}.config_discovery"),
                    "not supported by lateen-proxy",
                ));
            }
            None => None,
        };
        let kind = filter_kind(&http.name, any);
        let is_last = std::ptr::eq(http, last);
        let verdict = match kind {
            Some("router") if !is_last => Err("the router must be the last filter".to_string()),
            Some("router") => empty_config::<Router>(any),
            Some("fault") if !is_last => empty_config::<HttpFault>(any),
            Some("cors") if !is_last => empty_config::<Cors>(any),
            Some("jwt_authn") if !is_last && authz.jwt.is_none() && authz.rbac.is_empty() => {
                security_filter::<JwtAuthentication>(any).and_then(|config| {
                    super::authz::jwt_authn(&config, &format!("{f_path}.typed_config"))
                        .map(|jwt| authz.jwt = Some(jwt))
                        .map_err(|(field, reason)| format!("{field}: {reason}"))
                })
            }
            Some("jwt_authn") if !is_last => {
                Err("only one jwt_authn filter, before the RBAC filters, is supported".to_string())
            }
            _ if is_stats && !is_last && stats.is_none() => {
                super::stats::translate(any, &format!("{f_path}.typed_config"))
                    .map(|config| stats = Some(config))
            }
            Some("rbac") if !is_last => security_filter::<HttpRbac>(any).and_then(|config| {
                super::authz::http_rbac(&config, &format!("{f_path}.typed_config"))
                    .map(|rbac| authz.rbac.push(rbac))
                    .map_err(|(field, reason)| format!("{field}: {reason}"))
            }),
            _ if is_last => Err("the last filter must be the router".to_string()),
            _ => Err(format!("HTTP filter {:?} is not supported", http.name)),
        };
        verdict.map_err(|reason| check.reject(f_path, reason))?;
    }
    Ok((authz, stats))
}

fn security_filter<M: lateen_xds::prost::Message + Name + Default>(
    any: Option<&Any>,
) -> Result<M, String> {
    match any {
        Some(any) => unpack(any),
        None => Err("needs a typed_config".to_string()),
    }
}

fn filter_kind(name: &str, any: Option<&Any>) -> Option<&'static str> {
    let type_url = any.map(|any| any.type_url.as_str()).unwrap_or_default();
    [
        ("router", Router::type_url(), "envoy.filters.http.router"),
        ("fault", HttpFault::type_url(), "envoy.filters.http.fault"),
        ("cors", Cors::type_url(), "envoy.filters.http.cors"),
        (
            "jwt_authn",
            JwtAuthentication::type_url(),
            "envoy.filters.http.jwt_authn",
        ),
        ("rbac", HttpRbac::type_url(), "envoy.filters.http.rbac"),
    ]
    .into_iter()
    .find(|(_, url, known)| type_url == url || (type_url.is_empty() && name == *known))
    .map(|(kind, _, _)| kind)
}

fn empty_config<M: lateen_xds::prost::Message + Name + Default + PartialEq + std::fmt::Debug>(
    any: Option<&Any>,
) -> Result<(), String> {
    let Some(any) = any else { return Ok(()) };
    let config: M = unpack(any)?;
    let left = super::fields::leftover(&config);
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} fields {} are not supported",
            M::full_name(),
            left.join(", ")
        ))
    }
}
