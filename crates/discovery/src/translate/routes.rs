//! RDS. A sidecar route configuration (named by port, `"9080"`) has one virtual host per
//! service on that port (domains like Istio's: host, short names, `host:port`, addresses),
//! routes from the VirtualService that covers the host or else one default route, and a last
//! `allow_any`/`block_all` host. A gateway route configuration (`http.PORT`) has one virtual
//! host per host of each VirtualService bound to the gateway.

use std::collections::BTreeSet;

use lateen_api::Object;
use lateen_api::host::hosts_match;
use lateen_api::networking::{
    CorsPolicy, Destination, HeaderOperations, HttpFaultInjection, HttpMatchRequest, HttpRetry,
    HttpRoute, OutboundTrafficMode, StringMatch, StringMatchKind, UnmatchedPreflights,
    VirtualService,
};
use lateen_xds::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, RuntimeFractionalPercent, data_source,
    header_value_option,
};
use lateen_xds::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, Route,
    RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, header_matcher,
    query_parameter_matcher, redirect_action, retry_policy, route, route_action, route_match,
    weighted_cluster,
};
use lateen_xds::pb::envoy::extensions::filters::common::fault::v3::{FaultDelay, fault_delay};
use lateen_xds::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCors;
use lateen_xds::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use lateen_xds::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use lateen_xds::pb::envoy::r#type::matcher::v3::{
    RegexMatchAndSubstitute, RegexMatcher, StringMatcher, string_matcher,
};

use super::listeners::{RouteRequest, RouteTarget};
use super::names::{self, PASSTHROUGH_CLUSTER};
use super::{Context, effective_policy};
use crate::proxy::InterceptionMode;
use crate::registry::{Service, labels_match};

/// Istio's retry policy when a route sets none.
const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

pub fn build(ctx: &Context<'_>, requests: &[RouteRequest]) -> Vec<RouteConfiguration> {
    requests
        .iter()
        .map(|r| match &r.target {
            RouteTarget::Sidecar { port } => sidecar_routes(ctx, &r.name, *port),
            RouteTarget::Gateway {
                port,
                hosts,
                gateways,
            } => gateway_routes(ctx, &r.name, *port, hosts, gateways),
        })
        .collect()
}

fn sidecar_routes(ctx: &Context<'_>, name: &str, port: u32) -> RouteConfiguration {
    let mesh = ["mesh".to_string()];
    let mut used = BTreeSet::new();
    let mut virtual_hosts = Vec::new();
    for service in ctx.services_on_port(port) {
        let domains = names::service_domains(
            service,
            port,
            &ctx.proxy.namespace,
            ctx.domain_suffix(),
            &mut used,
        );
        if domains.is_empty() {
            continue;
        }
        let mut routes = ctx
            .virtual_service(&service.hostname, &mesh)
            .map(|vs| vs_routes(ctx, vs, port, &mesh))
            .unwrap_or_default();
        if routes.is_empty() {
            routes.push(default_route(ctx, service, port));
        }
        virtual_hosts.push(VirtualHost {
            name: format!("{}:{port}", service.hostname),
            domains,
            routes,
            ..Default::default()
        });
    }
    if used.insert("*".to_string()) {
        virtual_hosts.push(catch_all(ctx));
    }
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts,
        ..Default::default()
    }
}

fn gateway_routes(
    ctx: &Context<'_>,
    name: &str,
    port: u32,
    hosts: &[String],
    gateways: &[String],
) -> RouteConfiguration {
    let mut used = BTreeSet::new();
    let mut virtual_hosts = Vec::new();
    for vs in ctx
        .config
        .virtual_services()
        .filter(|vs| super::vs_bound_to(vs, gateways))
    {
        for host in &vs.spec.hosts {
            if !hosts.iter().any(|h| hosts_match(h, host)) {
                continue;
            }
            let domains: Vec<String> = [host.clone(), format!("{host}:{port}")]
                .into_iter()
                .filter(|d| used.insert(d.clone()))
                .collect();
            if domains.is_empty() {
                continue;
            }
            virtual_hosts.push(VirtualHost {
                name: format!("{host}:{port}"),
                domains,
                routes: vs_routes(ctx, vs, port, gateways),
                ..Default::default()
            });
        }
    }
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts,
        ..Default::default()
    }
}

/// ALLOW_ANY with capture: unknown hosts pass through; otherwise they get a 502.
fn catch_all(ctx: &Context<'_>) -> VirtualHost {
    let pass = ctx.outbound_mode() == OutboundTrafficMode::AllowAny
        && ctx.interception() != InterceptionMode::None;
    let action = if pass {
        route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                PASSTHROUGH_CLUSTER.to_string(),
            )),
            timeout: Some(names::duration(std::time::Duration::ZERO)),
            ..Default::default()
        })
    } else {
        route::Action::DirectResponse(DirectResponseAction {
            status: 502,
            ..Default::default()
        })
    };
    VirtualHost {
        name: if pass { "allow_any" } else { "block_all" }.to_string(),
        domains: vec!["*".to_string()],
        routes: vec![Route {
            name: if pass { "allow_any" } else { "block_all" }.to_string(),
            r#match: Some(prefix_match("/")),
            action: Some(action),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn prefix_match(prefix: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix(prefix.to_string())),
        ..Default::default()
    }
}

fn default_route(ctx: &Context<'_>, service: &Service, port: u32) -> Route {
    let dr = ctx.destination_rule(service);
    Route {
        name: "default".to_string(),
        r#match: Some(prefix_match("/")),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                names::outbound_cluster(port, "", &service.hostname),
            )),
            timeout: Some(names::duration(std::time::Duration::ZERO)),
            retry_policy: retry_policy_of(ctx.config.mesh.default_http_retry_policy.as_ref()),
            hash_policy: super::clusters::hash_policy(
                effective_policy(dr, "", port).load_balancer.as_ref(),
            ),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// Envoy routes of a VirtualService's `http` rules that apply on `port` for `gateways`.
fn vs_routes(
    ctx: &Context<'_>,
    vs: &Object<VirtualService>,
    port: u32,
    gateways: &[String],
) -> Vec<Route> {
    let mut out = Vec::new();
    for (i, http) in vs.spec.http.iter().enumerate() {
        let matches: Vec<Option<&HttpMatchRequest>> = if http.matches.is_empty() {
            vec![None]
        } else {
            http.matches.iter().map(Some).collect()
        };
        for m in matches {
            if let Some(m) = m
                && !match_applies(ctx, vs, m, port, gateways)
            {
                continue;
            }
            let Some(action) = action_of(ctx, vs, http, port) else {
                continue;
            };
            let mut r = Route {
                name: http
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{}.{}.{i}", vs.namespace(), vs.name())),
                r#match: Some(route_match_of(m)),
                action: Some(action),
                ..Default::default()
            };
            apply_headers(
                &mut r,
                http.headers.as_ref().and_then(|h| h.request.as_ref()),
                true,
            );
            apply_headers(
                &mut r,
                http.headers.as_ref().and_then(|h| h.response.as_ref()),
                false,
            );
            if let Some(fault) = &http.fault {
                r.typed_per_filter_config.insert(
                    names::FAULT_FILTER.to_string(),
                    names::pack(&fault_of(fault)),
                );
            }
            if let Some(cors) = &http.cors_policy {
                r.typed_per_filter_config
                    .insert(names::CORS_FILTER.to_string(), names::pack(&cors_of(cors)));
            }
            out.push(r);
        }
    }
    out
}

/// Port, gateway, source label and source namespace conditions, checked here because they
/// depend on the proxy rather than on the request.
fn match_applies(
    ctx: &Context<'_>,
    vs: &Object<VirtualService>,
    m: &HttpMatchRequest,
    port: u32,
    gateways: &[String],
) -> bool {
    if m.port.is_some_and(|p| p != port) {
        return false;
    }
    if !m.gateways.is_empty() {
        let wanted: Vec<String> = m
            .gateways
            .iter()
            .map(|g| {
                if g == "mesh" || g.contains('/') {
                    g.clone()
                } else {
                    format!("{}/{g}", vs.namespace())
                }
            })
            .collect();
        if !wanted.iter().any(|g| gateways.contains(g)) {
            return false;
        }
    }
    if !m.source_labels.is_empty() && !labels_match(&m.source_labels, &ctx.proxy.labels) {
        return false;
    }
    m.source_namespace
        .as_ref()
        .is_none_or(|ns| *ns == ctx.proxy.namespace)
}

fn regex(pattern: &str) -> RegexMatcher {
    RegexMatcher {
        regex: pattern.to_string(),
        engine_type: None,
    }
}

fn string_matcher(m: &StringMatch) -> Option<StringMatcher> {
    let pattern = match m.kind()? {
        StringMatchKind::Exact(v) => string_matcher::MatchPattern::Exact(v.to_string()),
        StringMatchKind::Prefix(v) => string_matcher::MatchPattern::Prefix(v.to_string()),
        StringMatchKind::Regex(v) => string_matcher::MatchPattern::SafeRegex(regex(v)),
        StringMatchKind::Present => return None,
    };
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    })
}

fn header_matcher(name: &str, m: &StringMatch, invert: bool) -> HeaderMatcher {
    let spec = match string_matcher(m) {
        Some(sm) => header_matcher::HeaderMatchSpecifier::StringMatch(sm),
        None => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
    };
    HeaderMatcher {
        name: name.to_string(),
        invert_match: invert,
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

fn route_match_of(m: Option<&HttpMatchRequest>) -> RouteMatch {
    let Some(m) = m else {
        return prefix_match("/");
    };
    let path = match m.uri.as_ref().and_then(StringMatch::kind) {
        Some(StringMatchKind::Exact(p)) => route_match::PathSpecifier::Path(p.to_string()),
        Some(StringMatchKind::Prefix(p)) => route_match::PathSpecifier::Prefix(p.to_string()),
        Some(StringMatchKind::Regex(r)) => route_match::PathSpecifier::SafeRegex(regex(r)),
        _ => route_match::PathSpecifier::Prefix("/".to_string()),
    };
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .map(|(k, v)| header_matcher(k, v, false))
        .collect();
    headers.extend(
        m.without_headers
            .iter()
            .map(|(k, v)| header_matcher(k, v, true)),
    );
    for (pseudo, value) in [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ] {
        if let Some(v) = value {
            headers.push(header_matcher(pseudo, v, false));
        }
    }
    let query_parameters = m
        .query_params
        .iter()
        .map(|(k, v)| QueryParameterMatcher {
            name: k.clone(),
            query_parameter_match_specifier: Some(match string_matcher(v) {
                Some(sm) => query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(sm),
                None => query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(true),
            }),
        })
        .collect();
    RouteMatch {
        path_specifier: Some(path),
        case_sensitive: m.ignore_uri_case.then(|| names::boolean(false)),
        headers,
        query_parameters,
        ..Default::default()
    }
}

/// Where a TCP listener on `port` sends a service's connections: the first `tcp` rule of its
/// VirtualService that applies (port, source labels), as (cluster, weight); else the service's
/// default cluster.
pub fn tcp_destinations(ctx: &Context<'_>, service: &Service, port: u32) -> Vec<(String, u32)> {
    let mesh = ["mesh".to_string()];
    let default = || vec![(names::outbound_cluster(port, "", &service.hostname), 1)];
    let Some(vs) = ctx.virtual_service(&service.hostname, &mesh) else {
        return default();
    };
    let applies = |m: &lateen_api::networking::L4MatchAttributes| {
        m.port.is_none_or(|p| p == port)
            && (m.source_labels.is_empty() || labels_match(&m.source_labels, &ctx.proxy.labels))
            && m.source_namespace
                .as_ref()
                .is_none_or(|ns| *ns == ctx.proxy.namespace)
    };
    let rule = vs
        .spec
        .tcp
        .iter()
        .find(|r| r.matches.is_empty() || r.matches.iter().any(applies));
    let destinations: Vec<(String, u32)> = rule
        .map(|r| {
            let single = r.route.len() == 1;
            r.route
                .iter()
                .filter_map(|d| {
                    let dest = d.destination.as_ref()?;
                    let weight = if single {
                        1
                    } else {
                        u32::try_from(d.weight).ok()?
                    };
                    (weight > 0).then(|| {
                        (
                            destination_cluster(ctx, vs.namespace(), dest, port).0,
                            weight,
                        )
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if destinations.is_empty() {
        default()
    } else {
        destinations
    }
}

/// (cluster name, port) of a destination written in a VirtualService of `namespace`. Without
/// a port: the service's only port, else the listener's port.
fn destination_cluster(
    ctx: &Context<'_>,
    namespace: &str,
    dest: &Destination,
    listener_port: u32,
) -> (String, u32) {
    let host = ctx.resolve(&dest.host, namespace);
    let port = dest
        .port_number()
        .unwrap_or_else(|| match ctx.registry.service(&host) {
            Some(s) if s.ports.len() == 1 => s.ports[0].number,
            _ => listener_port,
        });
    (
        names::outbound_cluster(port, dest.subset.as_deref().unwrap_or_default(), &host),
        port,
    )
}

fn action_of(
    ctx: &Context<'_>,
    vs: &Object<VirtualService>,
    http: &HttpRoute,
    port: u32,
) -> Option<route::Action> {
    if let Some(redirect) = &http.redirect {
        let code = match redirect.redirect_code.unwrap_or(301) {
            302 => redirect_action::RedirectResponseCode::Found,
            303 => redirect_action::RedirectResponseCode::SeeOther,
            307 => redirect_action::RedirectResponseCode::TemporaryRedirect,
            308 => redirect_action::RedirectResponseCode::PermanentRedirect,
            _ => redirect_action::RedirectResponseCode::MovedPermanently,
        };
        return Some(route::Action::Redirect(RedirectAction {
            host_redirect: redirect.authority.clone().unwrap_or_default(),
            port_redirect: redirect.port.unwrap_or(0),
            response_code: code as i32,
            scheme_rewrite_specifier: redirect
                .scheme
                .clone()
                .map(redirect_action::SchemeRewriteSpecifier::SchemeRedirect),
            path_rewrite_specifier: redirect
                .uri
                .clone()
                .map(redirect_action::PathRewriteSpecifier::PathRedirect),
            ..Default::default()
        }));
    }
    if let Some(direct) = &http.direct_response {
        return Some(route::Action::DirectResponse(DirectResponseAction {
            status: direct.status,
            body: direct
                .body
                .as_ref()
                .and_then(|b| b.string.clone())
                .map(|s| DataSource {
                    specifier: Some(data_source::Specifier::InlineString(s)),
                    ..Default::default()
                }),
            ..Default::default()
        }));
    }
    if http.delegate.is_some() {
        tracing::warn!(vs = %format!("{}/{}", vs.namespace(), vs.name()), "delegate VirtualServices are not supported yet; rule skipped");
        return None;
    }
    let destinations: Vec<_> = http
        .route
        .iter()
        .filter_map(|d| d.destination.as_ref().map(|dest| (d, dest)))
        .collect();
    let (first, _) = destinations.first()?;
    let first_dest = first.destination.as_ref()?;
    let mut action = RouteAction {
        timeout: Some(names::duration(http.timeout.unwrap_or_default())),
        ..Default::default()
    };
    action.cluster_specifier = Some(if destinations.len() == 1 {
        route_action::ClusterSpecifier::Cluster(
            destination_cluster(ctx, vs.namespace(), first_dest, port).0,
        )
    } else {
        let clusters = destinations
            .iter()
            .filter(|(d, _)| d.weight > 0)
            .map(|(d, dest)| {
                let mut cw = weighted_cluster::ClusterWeight {
                    name: destination_cluster(ctx, vs.namespace(), dest, port).0,
                    weight: Some(names::uint32(u32::try_from(d.weight).unwrap_or(0))),
                    ..Default::default()
                };
                if let Some(h) = &d.headers {
                    let (add, remove) = header_ops(h.request.as_ref());
                    cw.request_headers_to_add = add;
                    cw.request_headers_to_remove = remove;
                    let (add, remove) = header_ops(h.response.as_ref());
                    cw.response_headers_to_add = add;
                    cw.response_headers_to_remove = remove;
                }
                cw
            })
            .collect();
        route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters,
            ..Default::default()
        })
    });
    if let Some(rw) = &http.rewrite {
        if let Some(uri) = &rw.uri {
            action.prefix_rewrite = uri.clone();
        }
        if let Some(authority) = &rw.authority {
            action.host_rewrite_specifier = Some(
                route_action::HostRewriteSpecifier::HostRewriteLiteral(authority.clone()),
            );
        }
        if let Some(re) = &rw.uri_regex_rewrite {
            action.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(regex(&re.pattern)),
                substitution: re.rewrite.clone(),
            });
        }
    }
    action.retry_policy = match &http.retries {
        Some(r) => retry_policy_of(Some(r)),
        None => retry_policy_of(ctx.config.mesh.default_http_retry_policy.as_ref()),
    };
    action.request_mirror_policies = mirrors_of(ctx, vs, http, port);
    let host = ctx.resolve(&first_dest.host, vs.namespace());
    if let Some(service) = ctx.registry.service(&host) {
        let dr = ctx.destination_rule(service);
        let (_, dest_port) = destination_cluster(ctx, vs.namespace(), first_dest, port);
        let policy = effective_policy(
            dr,
            first_dest.subset.as_deref().unwrap_or_default(),
            dest_port,
        );
        action.hash_policy = super::clusters::hash_policy(policy.load_balancer.as_ref());
    }
    Some(route::Action::Route(action))
}

/// Istio's retries: `attempts: 0` turns retries off; unset `retryOn` means Istio's default
/// conditions; numeric conditions become retriable status codes.
fn retry_policy_of(retry: Option<&HttpRetry>) -> Option<RetryPolicy> {
    let mut policy = RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.to_string(),
        num_retries: Some(names::uint32(2)),
        retriable_status_codes: vec![503],
        host_selection_retry_max_attempts: 5,
        retry_host_predicate: vec![retry_policy::RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".to_string(),
            config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                names::pack(&PreviousHostsPredicate {}),
            )),
        }],
        ..Default::default()
    };
    let Some(r) = retry else {
        return Some(policy);
    };
    if r.attempts <= 0 {
        return None;
    }
    policy.num_retries = Some(names::uint32(u32::try_from(r.attempts).unwrap_or(0)));
    policy.per_try_timeout = r.per_try_timeout.map(names::duration);
    if r.retry_on.is_some() {
        let mut conditions = Vec::new();
        let mut codes = Vec::new();
        for c in r.retry_on_conditions() {
            match c.parse::<u32>() {
                Ok(code) => codes.push(code),
                Err(_) => conditions.push(c.to_string()),
            }
        }
        if !codes.is_empty() && !conditions.iter().any(|c| c == "retriable-status-codes") {
            conditions.push("retriable-status-codes".to_string());
        }
        policy.retry_on = conditions.join(",");
        policy.retriable_status_codes = codes;
    }
    if r.retry_ignore_previous_hosts == Some(false) {
        policy.retry_host_predicate.clear();
    }
    if let Some(backoff) = r.backoff {
        policy.retry_back_off = Some(retry_policy::RetryBackOff {
            base_interval: Some(names::duration(backoff)),
            max_interval: None,
        });
    }
    Some(policy)
}

fn mirrors_of(
    ctx: &Context<'_>,
    vs: &Object<VirtualService>,
    http: &HttpRoute,
    port: u32,
) -> Vec<route_action::RequestMirrorPolicy> {
    let mut mirrors: Vec<(&Destination, f64)> = Vec::new();
    if let Some(m) = &http.mirror {
        let percent = http
            .mirror_percentage
            .map(|p| p.value)
            .or(http.mirror_percent.map(f64::from))
            .unwrap_or(100.0);
        mirrors.push((m, percent));
    }
    for m in &http.mirrors {
        if let Some(d) = &m.destination {
            mirrors.push((d, m.percentage.map_or(100.0, |p| p.value)));
        }
    }
    mirrors
        .into_iter()
        .map(|(dest, percent)| route_action::RequestMirrorPolicy {
            cluster: destination_cluster(ctx, vs.namespace(), dest, port).0,
            runtime_fraction: Some(RuntimeFractionalPercent {
                default_value: Some(names::fraction(percent)),
                runtime_key: String::new(),
            }),
            ..Default::default()
        })
        .collect()
}

fn header_ops(ops: Option<&HeaderOperations>) -> (Vec<HeaderValueOption>, Vec<String>) {
    let Some(ops) = ops else {
        return (Vec::new(), Vec::new());
    };
    let option = |k: &String, v: &String, action: header_value_option::HeaderAppendAction| {
        HeaderValueOption {
            header: Some(HeaderValue {
                key: k.clone(),
                value: v.clone(),
                ..Default::default()
            }),
            append_action: action as i32,
            ..Default::default()
        }
    };
    let mut add: Vec<HeaderValueOption> = ops
        .set
        .iter()
        .map(|(k, v)| {
            option(
                k,
                v,
                header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd,
            )
        })
        .collect();
    add.extend(ops.add.iter().map(|(k, v)| {
        option(
            k,
            v,
            header_value_option::HeaderAppendAction::AppendIfExistsOrAdd,
        )
    }));
    (add, ops.remove.clone())
}

fn apply_headers(r: &mut Route, ops: Option<&HeaderOperations>, request: bool) {
    let (add, remove) = header_ops(ops);
    if request {
        r.request_headers_to_add = add;
        r.request_headers_to_remove = remove;
    } else {
        r.response_headers_to_add = add;
        r.response_headers_to_remove = remove;
    }
}

fn grpc_code(name: &str) -> Option<u32> {
    const CODES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    CODES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name))
        .and_then(|i| u32::try_from(i).ok())
}

fn fault_of(fault: &HttpFaultInjection) -> HttpFault {
    let mut out = HttpFault::default();
    if let Some(d) = &fault.delay
        && let Some(fixed) = d.fixed_delay
    {
        let percent = d
            .percentage
            .map(|p| p.value)
            .or(d.percent.map(f64::from))
            .unwrap_or(100.0);
        out.delay = Some(FaultDelay {
            percentage: Some(names::fraction(percent)),
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(
                names::duration(fixed),
            )),
        });
    }
    if let Some(a) = &fault.abort {
        let error = if let Some(status) = a.http_status.and_then(|s| u32::try_from(s).ok()) {
            Some(fault_abort::ErrorType::HttpStatus(status))
        } else {
            a.grpc_status
                .as_deref()
                .and_then(grpc_code)
                .map(fault_abort::ErrorType::GrpcStatus)
        };
        if error.is_some() {
            out.abort = Some(FaultAbort {
                percentage: Some(names::fraction(a.percentage.map_or(100.0, |p| p.value))),
                error_type: error,
                ..Default::default()
            });
        }
    }
    out
}

fn cors_of(cors: &CorsPolicy) -> EnvoyCors {
    let mut origins: Vec<StringMatcher> = cors
        .allow_origins
        .iter()
        .filter_map(string_matcher)
        .collect();
    origins.extend(cors.allow_origin.iter().map(|o| StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(o.clone())),
        ignore_case: false,
    }));
    EnvoyCors {
        allow_origin_string_match: origins,
        allow_methods: cors.allow_methods.join(","),
        allow_headers: cors.allow_headers.join(","),
        expose_headers: cors.expose_headers.join(","),
        max_age: cors
            .max_age
            .map(|d| d.as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: cors.allow_credentials.map(names::boolean),
        forward_not_matching_preflights: match cors.unmatched_preflights {
            Some(UnmatchedPreflights::Forward) => Some(names::boolean(true)),
            Some(UnmatchedPreflights::Ignore) => Some(names::boolean(false)),
            _ => None,
        },
        ..Default::default()
    }
}
