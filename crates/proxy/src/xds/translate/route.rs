//! `RouteConfiguration` → [`model::RouteConfig`]: virtual hosts and domains; routes matched by
//! prefix/path/safe_regex, headers (exact, prefix, suffix, contains, regex, present, invert),
//! `:method` and query parameters; actions to a cluster or weighted clusters with timeout,
//! retries, prefix and host rewrite, mirrors and hash policies, redirects and direct
//! responses; per-route fault injection and CORS; header additions and removals at route,
//! virtual host and configuration level (more specific wins).

use lateen_xds::pb::envoy::config::core::v3::data_source;
use lateen_xds::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, header_matcher,
    query_parameter_matcher, redirect_action, route, route_action, route_match, weighted_cluster,
};
use std::collections::BTreeSet;

use super::{Check, Rejection, checked_regex, duration, header_ops, policy, string_match};
use crate::config::model;

/// The translated table, and the clusters its routes name (so missing ones can be filled in
/// as empty clusters: Envoy answers 503 for a route to an unknown cluster).
#[derive(Debug, Clone, PartialEq)]
pub struct TranslatedRoutes {
    pub config: model::RouteConfig,
    pub clusters: BTreeSet<String>,
}

pub fn translate(source: &RouteConfiguration) -> Result<TranslatedRoutes, Rejection> {
    translate_named(
        source,
        &source.name,
        Check::new("RouteConfiguration", &source.name),
        "",
    )
}

/// Translates a table under `name` (an inline table of a listener gets a derived name);
/// `prefix` is the field path of the table inside its resource.
pub(crate) fn translate_named(
    source: &RouteConfiguration,
    name: &str,
    check: Check,
    prefix: &str,
) -> Result<TranslatedRoutes, Rejection> {
    let at = |field: &str| super::join(prefix, field);
    let rest = RouteConfiguration {
        name: String::new(),
        virtual_hosts: Vec::new(),
        request_headers_to_add: Vec::new(),
        request_headers_to_remove: Vec::new(),
        response_headers_to_add: Vec::new(),
        response_headers_to_remove: Vec::new(),
        // Only tells Envoy whether to check cluster names up front; either way a route to
        // a missing cluster answers 503 here.
        validate_clusters: None,
        ..source.clone()
    };
    check.no_leftover(prefix, &rest)?;
    let table_ops = ops(
        &source.request_headers_to_add,
        &source.request_headers_to_remove,
        &source.response_headers_to_add,
        &source.response_headers_to_remove,
    )
    .map_err(|(field, reason)| check.reject(at(&field), reason))?;
    let mut clusters = BTreeSet::new();
    let mut virtual_hosts = Vec::new();
    for (vh_index, vhost) in source.virtual_hosts.iter().enumerate() {
        let vh_path = at(&format!("virtual_hosts[{vh_index}]"));
        virtual_hosts.push(virtual_host(
            vhost,
            &vh_path,
            &check,
            &table_ops,
            &mut clusters,
        )?);
    }
    Ok(TranslatedRoutes {
        config: model::RouteConfig {
            name: name.to_string(),
            virtual_hosts,
        },
        clusters,
    })
}

type Ops = (model::HeaderOps, model::HeaderOps);

fn ops(
    request_add: &[lateen_xds::pb::envoy::config::core::v3::HeaderValueOption],
    request_remove: &[String],
    response_add: &[lateen_xds::pb::envoy::config::core::v3::HeaderValueOption],
    response_remove: &[String],
) -> Result<Ops, (String, String)> {
    Ok((
        header_ops(request_add, request_remove, "request_headers")?,
        header_ops(response_add, response_remove, "response_headers")?,
    ))
}

/// `specific` over `general`: a header the more specific level sets or adds wins.
fn merge(specific: &model::HeaderOps, general: &model::HeaderOps) -> model::HeaderOps {
    let mut merged = general.clone();
    for (name, value) in &specific.set {
        merged.add.remove(name);
        merged.set.insert(name.clone(), value.clone());
    }
    for (name, value) in &specific.add {
        merged.set.remove(name);
        merged.add.insert(name.clone(), value.clone());
    }
    for name in &specific.remove {
        if !merged.remove.contains(name) {
            merged.remove.push(name.clone());
        }
    }
    merged
}

fn virtual_host(
    vhost: &VirtualHost,
    path: &str,
    check: &Check,
    table_ops: &Ops,
    clusters: &mut BTreeSet<String>,
) -> Result<model::VirtualHost, Rejection> {
    let rest = VirtualHost {
        name: String::new(),
        domains: Vec::new(),
        routes: Vec::new(),
        request_headers_to_add: Vec::new(),
        request_headers_to_remove: Vec::new(),
        response_headers_to_add: Vec::new(),
        response_headers_to_remove: Vec::new(),
        retry_policy: None,
        metadata: None,
        ..vhost.clone()
    };
    check.no_leftover(path, &rest)?;
    let own = ops(
        &vhost.request_headers_to_add,
        &vhost.request_headers_to_remove,
        &vhost.response_headers_to_add,
        &vhost.response_headers_to_remove,
    )
    .map_err(|(field, reason)| check.reject(format!("{path}.{field}"), reason))?;
    let vhost_ops = (merge(&own.0, &table_ops.0), merge(&own.1, &table_ops.1));
    let default_retry = match &vhost.retry_policy {
        Some(policy) => Some(retry(policy, &format!("{path}.retry_policy"), check)?),
        None => None,
    };
    let mut routes = Vec::new();
    for (r_index, source) in vhost.routes.iter().enumerate() {
        let r_path = format!("{path}.routes[{r_index}]");
        routes.push(route(
            source,
            &r_path,
            check,
            &vhost_ops,
            default_retry.as_ref(),
            clusters,
        )?);
    }
    Ok(model::VirtualHost {
        name: vhost.name.clone(),
        domains: vhost.domains.clone(),
        routes,
    })
}

fn route(
    source: &Route,
    path: &str,
    check: &Check,
    vhost_ops: &Ops,
    default_retry: Option<&model::RetryPolicy>,
    clusters: &mut BTreeSet<String>,
) -> Result<model::Route, Rejection> {
    let rest = Route {
        name: String::new(),
        r#match: None,
        action: None,
        request_headers_to_add: Vec::new(),
        request_headers_to_remove: Vec::new(),
        response_headers_to_add: Vec::new(),
        response_headers_to_remove: Vec::new(),
        metadata: None,
        // Names the span of a traced request (`propagate` is not read: the context is
        // always propagated).
        decorator: None,
        typed_per_filter_config: Default::default(),
        ..source.clone()
    };
    check.no_leftover(path, &rest)?;
    let own = ops(
        &source.request_headers_to_add,
        &source.request_headers_to_remove,
        &source.response_headers_to_add,
        &source.response_headers_to_remove,
    )
    .map_err(|(field, reason)| check.reject(format!("{path}.{field}"), reason))?;
    let matcher = route_match(source.r#match.as_ref(), &format!("{path}.match"), check)?;
    let action = match &source.action {
        Some(route::Action::Route(action)) => model::RouteAction::Route(forward(
            action,
            &format!("{path}.route"),
            check,
            default_retry,
            clusters,
        )?),
        Some(route::Action::Redirect(redirect)) => {
            model::RouteAction::Redirect(redirect_of(redirect, &format!("{path}.redirect"), check)?)
        }
        Some(route::Action::DirectResponse(direct)) => {
            let body = match direct
                .body
                .as_ref()
                .and_then(|body| body.specifier.as_ref())
            {
                None => None,
                Some(data_source::Specifier::InlineString(text)) => Some(text.clone()),
                Some(data_source::Specifier::InlineBytes(bytes)) => {
                    Some(String::from_utf8(bytes.clone()).map_err(|_| {
                        check.reject(
                            format!("{path}.direct_response.body.inline_bytes"),
                            "must be UTF-8",
                        )
                    })?)
                }
                Some(_) => {
                    return Err(check.reject(
                        format!("{path}.direct_response.body"),
                        "only inline bodies are supported",
                    ));
                }
            };
            if direct.body_format.is_some() {
                return Err(check.reject(
                    format!("{path}.direct_response.body_format"),
                    "not supported by lateen-proxy",
                ));
            }
            if !(100..=599).contains(&direct.status) {
                return Err(check.reject(
                    format!("{path}.direct_response.status"),
                    format!("{} is not an HTTP status", direct.status),
                ));
            }
            model::RouteAction::DirectResponse(model::DirectResponse {
                status: direct.status as u16,
                body,
            })
        }
        Some(_) => {
            return Err(check.reject(
                format!("{path}.action"),
                "only route, redirect and direct_response are supported",
            ));
        }
        None => return Err(check.reject(format!("{path}.action"), "missing")),
    };
    let mut route = model::Route {
        name: (!source.name.is_empty()).then(|| source.name.clone()),
        matcher,
        action,
        request_headers: merge(&own.0, &vhost_ops.0),
        response_headers: merge(&own.1, &vhost_ops.1),
        fault: None,
        cors: None,
        decorator: source
            .decorator
            .as_ref()
            .map(|decorator| decorator.operation.clone())
            .filter(|operation| !operation.is_empty()),
    };
    policy::per_filter(&source.typed_per_filter_config, &mut route)
        .map_err(|(field, reason)| check.reject(format!("{path}.{field}"), reason))?;
    Ok(route)
}

fn route_match(
    source: Option<&RouteMatch>,
    path: &str,
    check: &Check,
) -> Result<model::RouteMatch, Rejection> {
    let Some(source) = source else {
        return Err(check.reject(path, "missing"));
    };
    if source
        .case_sensitive
        .as_ref()
        .is_some_and(|flag| !flag.value)
    {
        return Err(check.reject(
            format!("{path}.case_sensitive"),
            "case-insensitive path matching is not supported",
        ));
    }
    let rest = RouteMatch {
        path_specifier: None,
        headers: Vec::new(),
        query_parameters: Vec::new(),
        case_sensitive: None,
        ..source.clone()
    };
    check.no_leftover(path, &rest)?;
    let path_match = match &source.path_specifier {
        Some(route_match::PathSpecifier::Prefix(prefix)) if prefix.is_empty() || prefix == "/" => {
            Some(model::PathMatch::Prefix("/".into()))
        }
        Some(route_match::PathSpecifier::Prefix(prefix)) => {
            Some(model::PathMatch::Prefix(prefix.clone()))
        }
        Some(route_match::PathSpecifier::Path(exact)) => {
            Some(model::PathMatch::Exact(exact.clone()))
        }
        Some(route_match::PathSpecifier::SafeRegex(regex)) => Some(model::PathMatch::Regex(
            checked_regex(&regex.regex)
                .map_err(|reason| check.reject(format!("{path}.safe_regex.regex"), reason))?,
        )),
        Some(_) => {
            return Err(check.reject(
                format!("{path}.path_specifier"),
                "only prefix, path and safe_regex are supported",
            ));
        }
        None => return Err(check.reject(format!("{path}.path_specifier"), "missing")),
    };
    let mut result = model::RouteMatch {
        path: path_match,
        ..Default::default()
    };
    for (index, header) in source.headers.iter().enumerate() {
        let h_path = format!("{path}.headers[{index}]");
        let (name, value, invert) = header_match(header, &h_path, check)?;
        if name == ":method" {
            match (&value, invert) {
                (model::ValueMatch::Exact(method), false) => result.method = Some(method.clone()),
                _ => {
                    return Err(check.reject(
                        h_path,
                        "only an exact, non-inverted :method match is supported",
                    ));
                }
            }
        } else if name.starts_with(':') {
            return Err(check.reject(
                format!("{h_path}.name"),
                format!("matching pseudo-header {name:?} is not supported"),
            ));
        } else {
            result.headers.push(model::HeaderMatch {
                name,
                value,
                invert,
            });
        }
    }
    for (index, param) in source.query_parameters.iter().enumerate() {
        let q_path = format!("{path}.query_parameters[{index}]");
        let value = match &param.query_parameter_match_specifier {
            Some(query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(matcher)) => {
                string_match(matcher)
                    .map_err(|reason| check.reject(format!("{q_path}.string_match"), reason))?
            }
            Some(query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(present)) => {
                model::ValueMatch::Present(*present)
            }
            None => model::ValueMatch::Present(true),
        };
        let _: &QueryParameterMatcher = param;
        result.query_params.push(model::HeaderMatch {
            name: param.name.clone(),
            value,
            invert: false,
        });
    }
    Ok(result)
}

fn header_match(
    header: &HeaderMatcher,
    path: &str,
    check: &Check,
) -> Result<(String, model::ValueMatch, bool), Rejection> {
    use header_matcher::HeaderMatchSpecifier as Spec;
    if header.treat_missing_header_as_empty {
        return Err(check.reject(
            format!("{path}.treat_missing_header_as_empty"),
            "not supported by lateen-proxy",
        ));
    }
    #[allow(deprecated)]
    let value = match &header.header_match_specifier {
        Some(Spec::ExactMatch(value)) => model::ValueMatch::Exact(value.clone()),
        Some(Spec::PrefixMatch(value)) => model::ValueMatch::Prefix(value.clone()),
        Some(Spec::SuffixMatch(value)) => {
            model::ValueMatch::Regex(format!(".*{}", regex::escape(value)))
        }
        Some(Spec::ContainsMatch(value)) => {
            model::ValueMatch::Regex(format!(".*{}.*", regex::escape(value)))
        }
        Some(Spec::SafeRegexMatch(regex)) => model::ValueMatch::Regex(
            checked_regex(&regex.regex)
                .map_err(|reason| check.reject(format!("{path}.safe_regex_match"), reason))?,
        ),
        Some(Spec::StringMatch(matcher)) => string_match(matcher)
            .map_err(|reason| check.reject(format!("{path}.string_match"), reason))?,
        Some(Spec::PresentMatch(present)) => model::ValueMatch::Present(*present),
        Some(Spec::RangeMatch(_)) => {
            return Err(check.reject(
                format!("{path}.range_match"),
                "not supported by lateen-proxy",
            ));
        }
        None => model::ValueMatch::Present(true),
    };
    Ok((header.name.to_ascii_lowercase(), value, header.invert_match))
}

fn forward(
    action: &RouteAction,
    path: &str,
    check: &Check,
    default_retry: Option<&model::RetryPolicy>,
    clusters: &mut BTreeSet<String>,
) -> Result<model::ForwardAction, Rejection> {
    let rest = RouteAction {
        cluster_specifier: None,
        timeout: None,
        retry_policy: None,
        prefix_rewrite: String::new(),
        host_rewrite_specifier: None,
        // 503 (the default) or 404 for a missing cluster: ours answer 503.
        cluster_not_found_response_code: 0,
        request_mirror_policies: Vec::new(),
        hash_policy: Vec::new(),
        ..action.clone()
    };
    check.no_leftover(path, &rest)?;
    let mut forward = model::ForwardAction::default();
    match &action.cluster_specifier {
        Some(route_action::ClusterSpecifier::Cluster(name)) => {
            clusters.insert(name.clone());
            forward.cluster = Some(name.clone());
        }
        Some(route_action::ClusterSpecifier::WeightedClusters(weighted)) => {
            forward.weighted_clusters = weighted_clusters(
                weighted,
                &format!("{path}.weighted_clusters"),
                check,
                clusters,
            )?;
        }
        Some(_) => {
            return Err(check.reject(
                format!("{path}.cluster_specifier"),
                "only cluster and weighted_clusters are supported",
            ));
        }
        None => return Err(check.reject(format!("{path}.cluster_specifier"), "missing")),
    }
    // Envoy's default route timeout is 15 s; 0 disables it.
    forward.timeout = Some(match &action.timeout {
        Some(timeout) => {
            duration(timeout).map_err(|reason| check.reject(format!("{path}.timeout"), reason))?
        }
        None => std::time::Duration::from_secs(15),
    });
    forward.retry = match &action.retry_policy {
        Some(policy) => Some(retry(policy, &format!("{path}.retry_policy"), check)?),
        None => default_retry.cloned(),
    };
    if !action.prefix_rewrite.is_empty() {
        forward.prefix_rewrite = Some(action.prefix_rewrite.clone());
    }
    match &action.host_rewrite_specifier {
        None => {}
        Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(host)) => {
            forward.host_rewrite = Some(host.clone())
        }
        Some(_) => {
            return Err(check.reject(
                format!("{path}.host_rewrite_specifier"),
                "only host_rewrite_literal is supported",
            ));
        }
    }
    for (index, mirror) in action.request_mirror_policies.iter().enumerate() {
        let mirror = policy::mirror_of(mirror).map_err(|(field, reason)| {
            check.reject(
                format!("{path}.request_mirror_policies[{index}].{field}"),
                reason,
            )
        })?;
        clusters.insert(mirror.cluster.clone());
        forward.mirrors.push(mirror);
    }
    for (index, hash) in action.hash_policy.iter().enumerate() {
        forward
            .hash_policy
            .push(policy::hash_of(hash).map_err(|(field, reason)| {
                check.reject(format!("{path}.hash_policy[{index}].{field}"), reason)
            })?);
    }
    Ok(forward)
}

#[allow(deprecated)] // total_weight: accepted; the weights themselves decide
fn weighted_clusters(
    weighted: &WeightedCluster,
    path: &str,
    check: &Check,
    clusters: &mut BTreeSet<String>,
) -> Result<Vec<model::WeightedCluster>, Rejection> {
    let rest = WeightedCluster {
        clusters: Vec::new(),
        total_weight: None,
        ..weighted.clone()
    };
    check.no_leftover(path, &rest)?;
    let mut out = Vec::new();
    for (index, entry) in weighted.clusters.iter().enumerate() {
        let c_path = format!("{path}.clusters[{index}]");
        let rest = weighted_cluster::ClusterWeight {
            name: String::new(),
            weight: None,
            ..entry.clone()
        };
        check.no_leftover(&c_path, &rest)?;
        if entry.name.is_empty() {
            return Err(check.reject(format!("{c_path}.name"), "must name a cluster"));
        }
        clusters.insert(entry.name.clone());
        out.push(model::WeightedCluster {
            name: entry.name.clone(),
            weight: entry.weight.as_ref().map_or(0, |weight| weight.value),
        });
    }
    if out.iter().all(|cluster| cluster.weight == 0) {
        return Err(check.reject(format!("{path}.clusters"), "weights must not all be zero"));
    }
    Ok(out)
}

/// gRPC status conditions: the data path does not retry on `grpc-status` yet, so these are
/// accepted (Istio's default policy lists them) and have no effect.
const GRPC_CONDITIONS: [&str; 5] = [
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];
const HTTP_CONDITIONS: [&str; 6] = [
    "5xx",
    "gateway-error",
    "connect-failure",
    "reset",
    "refused-stream",
    "retriable-status-codes",
];

fn retry(policy: &RetryPolicy, path: &str, check: &Check) -> Result<model::RetryPolicy, Rejection> {
    let rest = RetryPolicy {
        retry_on: String::new(),
        num_retries: None,
        per_try_timeout: None,
        retriable_status_codes: Vec::new(),
        // Our retries already avoid the host that just failed (Envoy's previous_hosts).
        retry_host_predicate: Vec::new(),
        host_selection_retry_max_attempts: 0,
        // Retries are sent at once; the back-off interval is accepted and not waited.
        retry_back_off: None,
        ..policy.clone()
    };
    check.no_leftover(path, &rest)?;
    for (index, predicate) in policy.retry_host_predicate.iter().enumerate() {
        if predicate.name != "envoy.retry_host_predicates.previous_hosts" {
            return Err(check.reject(
                format!("{path}.retry_host_predicate[{index}]"),
                format!("{:?} is not supported", predicate.name),
            ));
        }
    }
    let mut retry_on = Vec::new();
    for condition in policy
        .retry_on
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        if HTTP_CONDITIONS.contains(&condition) {
            retry_on.push(condition.to_string());
        } else if !GRPC_CONDITIONS.contains(&condition) {
            return Err(check.reject(
                format!("{path}.retry_on"),
                format!("retry condition {condition:?} is not supported"),
            ));
        }
    }
    let mut codes = Vec::new();
    for (index, code) in policy.retriable_status_codes.iter().enumerate() {
        match u16::try_from(*code) {
            Ok(code) if (100..=599).contains(&code) => codes.push(code),
            _ => {
                return Err(check.reject(
                    format!("{path}.retriable_status_codes[{index}]"),
                    format!("{code} is not an HTTP status"),
                ));
            }
        }
    }
    let per_try_timeout = match &policy.per_try_timeout {
        Some(timeout) => Some(
            duration(timeout)
                .map_err(|reason| check.reject(format!("{path}.per_try_timeout"), reason))?,
        )
        .filter(|t| !t.is_zero()),
        None => None,
    };
    Ok(model::RetryPolicy {
        retry_on,
        num_retries: policy.num_retries.as_ref().map_or(1, |n| n.value),
        per_try_timeout,
        retriable_status_codes: codes,
    })
}

fn redirect_of(
    redirect: &RedirectAction,
    path: &str,
    check: &Check,
) -> Result<model::RedirectAction, Rejection> {
    let rest = RedirectAction {
        host_redirect: String::new(),
        path_rewrite_specifier: None,
        response_code: 0,
        ..redirect.clone()
    };
    check.no_leftover(path, &rest)?;
    let path_redirect = match &redirect.path_rewrite_specifier {
        None => None,
        Some(redirect_action::PathRewriteSpecifier::PathRedirect(target)) => Some(target.clone()),
        Some(_) => {
            return Err(check.reject(
                format!("{path}.path_rewrite_specifier"),
                "only path_redirect is supported",
            ));
        }
    };
    let code = match redirect_action::RedirectResponseCode::try_from(redirect.response_code) {
        Ok(redirect_action::RedirectResponseCode::MovedPermanently) => 301,
        Ok(redirect_action::RedirectResponseCode::Found) => 302,
        Ok(redirect_action::RedirectResponseCode::SeeOther) => 303,
        Ok(redirect_action::RedirectResponseCode::TemporaryRedirect) => 307,
        Ok(redirect_action::RedirectResponseCode::PermanentRedirect) => 308,
        Err(_) => {
            return Err(check.reject(
                format!("{path}.response_code"),
                format!("unknown code {}", redirect.response_code),
            ));
        }
    };
    Ok(model::RedirectAction {
        host: (!redirect.host_redirect.is_empty()).then(|| redirect.host_redirect.clone()),
        path: path_redirect,
        response_code: code,
    })
}
