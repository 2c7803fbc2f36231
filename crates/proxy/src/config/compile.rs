//! Checks a [`ProxyConfig`] as a whole (names unique, references resolved, regexes valid,
//! weights sensible) and compiles it into a [`Snapshot`]. Every problem is reported with the
//! path of the field it is about; a config with any problem is rejected whole.

use regex::Regex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::model::{self, Capture, ProxyConfig, RouteAction};
use super::snapshot::*;
use crate::metrics::PeerLabels;

/// One problem in a configuration, located by its field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Compiles `config`; on failure returns every problem found.
pub fn compile(config: ProxyConfig) -> Result<Snapshot, Vec<Problem>> {
    let mut problems = Problems::default();
    let local = PeerLabels::from_node(&config.node);

    let mut clusters = HashMap::new();
    for (index, cluster) in config.clusters.iter().enumerate() {
        let path = format!("clusters[{index}]");
        if cluster.name.is_empty() {
            problems.add(format!("{path}.name"), "must not be empty");
        }
        if clusters.contains_key(cluster.name.as_str()) {
            problems.add(
                format!("{path}.name"),
                format!("duplicate cluster name {:?}", cluster.name),
            );
        }
        check_cluster_policies(cluster, &path, &mut problems);
        let tls = cluster
            .tls
            .as_ref()
            .and_then(|tls| upstream_tls(tls, &format!("{path}.tls"), &mut problems));
        clusters.insert(
            cluster.name.clone(),
            Arc::new(ClusterRt::new(cluster, &local, tls)),
        );
    }

    let mut tables = HashMap::new();
    for (index, table) in config.route_configs.iter().enumerate() {
        let path = format!("route_configs[{index}]");
        if tables.contains_key(table.name.as_str()) {
            problems.add(
                format!("{path}.name"),
                format!("duplicate route config name {:?}", table.name),
            );
        }
        let compiled = compile_route_table(table, &path, &clusters, &mut problems);
        tables.insert(table.name.clone(), Arc::new(compiled));
    }

    let mut listeners = Vec::new();
    let mut by_address = HashMap::new();
    let mut names = HashSet::new();
    let mut bound_addresses = HashMap::new();
    for (index, listener) in config.listeners.iter().enumerate() {
        let path = format!("listeners[{index}]");
        if !names.insert(listener.name.as_str()) {
            problems.add(
                format!("{path}.name"),
                format!("duplicate listener name {:?}", listener.name),
            );
        }
        let routes = listener.route_config.as_ref().and_then(|name| {
            let found = tables.get(name).cloned();
            if found.is_none() {
                problems.add(
                    format!("{path}.route_config"),
                    format!("route config {name:?} is not defined"),
                );
            }
            found
        });
        let tcp_cluster = listener.tcp_cluster.as_ref().and_then(|name| {
            let found = clusters.get(name).cloned();
            if found.is_none() {
                problems.add(
                    format!("{path}.tcp_cluster"),
                    format!("cluster {name:?} is not defined"),
                );
            }
            found
        });
        if listener.capture == Capture::OriginalDst && !listener.bind {
            problems.add(
                format!("{path}.bind"),
                "a capture listener must bind its address",
            );
        }
        let is_http = !matches!(listener.protocol, model::ListenerProtocol::Tcp);
        if listener.capture == Capture::None
            && is_http
            && listener.route_config.is_none()
            && listener.tcp_cluster.is_none()
        {
            problems.add(
                path.clone(),
                "needs a route_config for HTTP or a tcp_cluster for TCP",
            );
        }
        if listener.limits.max_headers == 0 || listener.limits.max_header_bytes < 1024 {
            problems.add(
                format!("{path}.limits"),
                "max_headers must be at least 1 and max_header_bytes at least 1024",
            );
        }
        let tracing = listener.tracing.as_ref().and_then(|tracing| {
            super::tracing::TracingRt::compile(tracing, &format!("{path}.tracing"))
                .map_err(|(field, message)| problems.add(field, message))
                .ok()
                .map(Arc::new)
        });
        let stats = listener.stats.as_ref().and_then(|stats| {
            crate::stats_overrides::StatsTable::compile(stats)
                .map_err(|(field, message)| problems.add(format!("{path}.stats.{field}"), message))
                .ok()
                .map(Arc::new)
        });
        let (access_logs, log_problems) = crate::access_log::loggers(&listener.access_log, &path);
        for (field, message) in log_problems {
            problems.add(field, message);
        }
        let compiled = Arc::new(ListenerRt {
            name: listener.name.as_str().into(),
            address: listener.address,
            bind: listener.bind,
            is_capture: listener.capture == Capture::OriginalDst,
            direction: listener.direction,
            protocol: listener.protocol,
            detect_timeout: listener.detect_timeout,
            routes,
            tcp_cluster,
            limits: listener.limits.clone(),
            access_logs,
            mtls: listener.mtls,
            tracing,
            stats,
            http_authz: listener.http_authz.clone(),
            tcp_authz: listener.tcp_authz.clone(),
        });
        if listener.bind
            && listener.address.port() != 0
            && let Some(previous) = bound_addresses.insert(listener.address, listener.name.as_str())
        {
            problems.add(
                format!("{path}.address"),
                format!(
                    "{} is already used by listener {previous:?}",
                    listener.address
                ),
            );
        }
        if let Some(previous) =
            by_address.insert((listener.address, listener.direction), compiled.clone())
            && !previous.bind
            && !compiled.bind
        {
            problems.add(
                format!("{path}.address"),
                format!(
                    "{} is already the target of listener {:?} for the same direction",
                    listener.address, previous.name
                ),
            );
        }
        listeners.push(compiled);
    }

    if !problems.0.is_empty() {
        return Err(problems.0);
    }
    Ok(Snapshot {
        local_peer: crate::http::peer::encode(&local, config.node.id.as_deref()),
        local: Arc::new(local),
        source: Arc::new(config),
        listeners,
        by_address,
        clusters,
    })
}

fn compile_route_table(
    table: &model::RouteConfig,
    path: &str,
    clusters: &HashMap<String, Arc<ClusterRt>>,
    problems: &mut Problems,
) -> RouteTable {
    let mut virtual_hosts = Vec::new();
    let mut domains = Vec::new();
    let mut seen_domains = HashSet::new();
    for (vh_index, vhost) in table.virtual_hosts.iter().enumerate() {
        let vh_path = format!("{path}.virtual_hosts[{vh_index}]");
        if vhost.domains.is_empty() {
            problems.add(
                format!("{vh_path}.domains"),
                "must list at least one domain",
            );
        }
        for (d_index, domain) in vhost.domains.iter().enumerate() {
            if !seen_domains.insert(domain.to_ascii_lowercase()) {
                problems.add(
                    format!("{vh_path}.domains[{d_index}]"),
                    format!("domain {domain:?} appears in more than one virtual host"),
                );
            }
            if domain != "*"
                && domain.matches('*').count() > 0
                && !(domain.starts_with('*') ^ domain.ends_with('*'))
            {
                problems.add(
                    format!("{vh_path}.domains[{d_index}]"),
                    format!("wildcard domain {domain:?} must have one leading or trailing '*'"),
                );
            }
        }
        let routes = vhost
            .routes
            .iter()
            .enumerate()
            .map(|(r_index, route)| {
                compile_route(
                    route,
                    &format!("{vh_path}.routes[{r_index}]"),
                    clusters,
                    problems,
                )
            })
            .collect();
        virtual_hosts.push(VirtualHostRt {
            name: vhost.name.as_str().into(),
            routes,
        });
        domains.push(vhost.domains.clone());
    }
    RouteTable::new(&table.name, virtual_hosts, &domains)
}

fn compile_route(
    route: &model::Route,
    path: &str,
    clusters: &HashMap<String, Arc<ClusterRt>>,
    problems: &mut Problems,
) -> RouteRt {
    let matcher = &route.matcher;
    let path_matcher = matcher.path.as_ref().map(|path_match| match path_match {
        model::PathMatch::Exact(exact) => PathMatcher::Exact(exact.clone()),
        model::PathMatch::Prefix(prefix) => PathMatcher::Prefix(prefix.clone()),
        model::PathMatch::Regex(pattern) => match anchored_regex(pattern) {
            Ok(regex) => PathMatcher::Regex(regex),
            Err(err) => {
                problems.add(format!("{path}.match.path.regex"), err);
                PathMatcher::Exact(String::new())
            }
        },
    });
    let headers = compile_value_matchers(
        &matcher.headers,
        &format!("{path}.match.headers"),
        true,
        problems,
    );
    let query_params = compile_value_matchers(
        &matcher.query_params,
        &format!("{path}.match.query_params"),
        false,
        problems,
    );
    let method = matcher.method.as_ref().and_then(|method| {
        match http::Method::from_bytes(method.as_bytes()) {
            Ok(method) => Some(method),
            Err(_) => {
                problems.add(
                    format!("{path}.match.method"),
                    format!("{method:?} is not an HTTP method"),
                );
                None
            }
        }
    });
    for (ops, name) in [
        (&route.request_headers, "request_headers"),
        (&route.response_headers, "response_headers"),
    ] {
        for header in ops
            .set
            .keys()
            .chain(ops.add.keys())
            .chain(ops.remove.iter())
        {
            if http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                problems.add(
                    format!("{path}.{name}"),
                    format!("{header:?} is not a valid header name"),
                );
            }
        }
        for value in ops.set.values().chain(ops.add.values()) {
            if http::HeaderValue::from_str(value).is_err() {
                problems.add(
                    format!("{path}.{name}"),
                    format!("{value:?} is not a valid header value"),
                );
            }
        }
    }
    let action = match &route.action {
        RouteAction::Route(forward) => ActionRt::Forward(compile_forward(
            forward,
            &format!("{path}.route"),
            clusters,
            problems,
        )),
        RouteAction::Redirect(redirect) => {
            if !matches!(redirect.response_code, 301 | 302 | 303 | 307 | 308) {
                problems.add(
                    format!("{path}.redirect.response_code"),
                    "must be 301, 302, 303, 307 or 308",
                );
            }
            ActionRt::Redirect(redirect.clone())
        }
        RouteAction::DirectResponse(direct) => {
            let status = http::StatusCode::from_u16(direct.status).unwrap_or_else(|_| {
                problems.add(
                    format!("{path}.direct_response.status"),
                    format!("{} is not an HTTP status", direct.status),
                );
                http::StatusCode::INTERNAL_SERVER_ERROR
            });
            ActionRt::Direct {
                status,
                body: bytes::Bytes::from(direct.body.clone().unwrap_or_default()),
            }
        }
    };
    let fault =
        route.fault.as_ref().and_then(|policy| {
            match crate::http::fault::FaultRt::compile(policy) {
                Ok(fault) => Some(fault),
                Err((field, message)) => {
                    problems.add(format!("{path}.fault.{field}"), message);
                    None
                }
            }
        });
    let cors = route.cors.as_ref().and_then(|policy| {
        match crate::http::cors::CorsRt::compile(policy, anchored_regex) {
            Ok(cors) => Some(cors),
            Err((field, message)) => {
                problems.add(format!("{path}.cors.{field}"), message);
                None
            }
        }
    });
    RouteRt {
        fault,
        cors,
        name: route.name.as_deref().map(Arc::from),
        path: path_matcher,
        headers,
        query_params,
        method,
        action,
        request_headers: route.request_headers.clone(),
        response_headers: route.response_headers.clone(),
        decorator: route.decorator.as_deref().map(Arc::from),
    }
}

fn compile_forward(
    forward: &model::ForwardAction,
    path: &str,
    clusters: &HashMap<String, Arc<ClusterRt>>,
    problems: &mut Problems,
) -> ForwardRt {
    let mut targets = Vec::new();
    match (&forward.cluster, forward.weighted_clusters.is_empty()) {
        (Some(name), true) => match clusters.get(name) {
            Some(cluster) => targets.push((cluster.clone(), 1)),
            None => problems.add(
                format!("{path}.cluster"),
                format!("cluster {name:?} is not defined"),
            ),
        },
        (None, false) => {
            for (index, weighted) in forward.weighted_clusters.iter().enumerate() {
                match clusters.get(&weighted.name) {
                    Some(cluster) => targets.push((cluster.clone(), weighted.weight)),
                    None => problems.add(
                        format!("{path}.weighted_clusters[{index}].name"),
                        format!("cluster {:?} is not defined", weighted.name),
                    ),
                }
            }
        }
        (Some(_), false) => problems.add(path, "set either cluster or weighted_clusters, not both"),
        (None, true) => problems.add(path, "needs a cluster or weighted_clusters"),
    }
    let total_weight: u32 = targets
        .iter()
        .map(|(_, weight)| *weight)
        .fold(0u32, u32::saturating_add);
    if !targets.is_empty() && total_weight == 0 {
        problems.add(
            format!("{path}.weighted_clusters"),
            "weights must not all be zero",
        );
    }
    let retry = forward.retry.as_ref().map(|retry| {
        let mut compiled = RetryRt {
            num_retries: retry.num_retries,
            per_try_timeout: retry.per_try_timeout,
            on_5xx: false,
            on_gateway_error: false,
            on_connect_failure: false,
            on_reset: false,
            on_refused_stream: false,
            retriable_status_codes: retry.retriable_status_codes.clone(),
        };
        for (index, condition) in retry.retry_on.iter().enumerate() {
            match condition.trim() {
                "5xx" => compiled.on_5xx = true,
                "gateway-error" => compiled.on_gateway_error = true,
                "connect-failure" => compiled.on_connect_failure = true,
                "reset" => compiled.on_reset = true,
                "refused-stream" => compiled.on_refused_stream = true,
                "retriable-status-codes" => {}
                other => problems.add(
                    format!("{path}.retry.retry_on[{index}]"),
                    format!("unsupported retry condition {other:?}"),
                ),
            }
        }
        compiled
    });
    let host_rewrite =
        forward
            .host_rewrite
            .as_ref()
            .and_then(|host| match http::HeaderValue::from_str(host) {
                Ok(value) => Some(value),
                Err(_) => {
                    problems.add(
                        format!("{path}.host_rewrite"),
                        format!("{host:?} is not a valid host"),
                    );
                    None
                }
            });
    if targets.is_empty() {
        // Keep the route usable as a value; the config is rejected anyway.
        targets.push((
            Arc::new(ClusterRt::passthrough(
                "invalid",
                ([127, 0, 0, 1], 9).into(),
                None,
                Arc::new(PeerLabels::unknown()),
            )),
            1,
        ));
    }
    let mut mirrors = Vec::new();
    for (index, mirror) in forward.mirrors.iter().enumerate() {
        if !(0.0..=100.0).contains(&mirror.percentage) {
            problems.add(
                format!("{path}.mirrors[{index}].percentage"),
                "must be between 0 and 100",
            );
        }
        match clusters.get(&mirror.cluster) {
            Some(cluster) => mirrors.push(crate::http::mirror::MirrorRt {
                cluster: cluster.clone(),
                share: crate::http::fault::per_million(mirror.percentage),
            }),
            None => problems.add(
                format!("{path}.mirrors[{index}].cluster"),
                format!("cluster {:?} is not defined", mirror.cluster),
            ),
        }
    }
    for (index, policy) in forward.hash_policy.iter().enumerate() {
        if let model::HashPolicy::Header(name) = policy
            && http::HeaderName::from_bytes(name.as_bytes()).is_err()
        {
            problems.add(
                format!("{path}.hash_policy[{index}].header"),
                format!("{name:?} is not a valid header name"),
            );
        }
    }
    ForwardRt {
        mirrors,
        hash_policy: forward
            .hash_policy
            .iter()
            .map(|policy| match policy {
                model::HashPolicy::Header(name) => {
                    model::HashPolicy::Header(name.to_ascii_lowercase())
                }
                other => other.clone(),
            })
            .collect(),
        clusters: targets,
        total_weight: total_weight.max(1),
        timeout: forward.timeout.filter(|timeout| !timeout.is_zero()),
        retry,
        prefix_rewrite: forward.prefix_rewrite.clone(),
        host_rewrite,
    }
}

fn check_cluster_policies(cluster: &model::Cluster, path: &str, problems: &mut Problems) {
    if let Some(outlier) = &cluster.outlier_detection {
        if outlier.max_ejection_percent > 100 {
            problems.add(
                format!("{path}.outlier_detection.max_ejection_percent"),
                "must be at most 100",
            );
        }
        if outlier.base_ejection_time.is_zero() {
            problems.add(
                format!("{path}.outlier_detection.base_ejection_time"),
                "must be more than 0",
            );
        }
    }
    if cluster.minimum_ring_size == Some(0) {
        problems.add(format!("{path}.minimum_ring_size"), "must be at least 1");
    }
}

fn compile_value_matchers(
    matchers: &[model::HeaderMatch],
    path: &str,
    is_header: bool,
    problems: &mut Problems,
) -> Vec<ValueMatcher> {
    matchers
        .iter()
        .enumerate()
        .map(|(index, matcher)| {
            let kind = match &matcher.value {
                model::ValueMatch::Exact(value) => ValueMatcherKind::Exact(value.clone()),
                model::ValueMatch::Prefix(value) => ValueMatcherKind::Prefix(value.clone()),
                model::ValueMatch::Present(present) => ValueMatcherKind::Present(*present),
                model::ValueMatch::Regex(pattern) => match anchored_regex(pattern) {
                    Ok(regex) => ValueMatcherKind::Regex(regex),
                    Err(err) => {
                        problems.add(format!("{path}[{index}].regex"), err);
                        ValueMatcherKind::Present(true)
                    }
                },
            };
            if is_header && http::HeaderName::from_bytes(matcher.name.as_bytes()).is_err() {
                problems.add(
                    format!("{path}[{index}].name"),
                    format!("{:?} is not a valid header name", matcher.name),
                );
            }
            let name = if is_header {
                matcher.name.to_ascii_lowercase()
            } else {
                matcher.name.clone()
            };
            ValueMatcher {
                name,
                kind,
                invert: matcher.invert,
            }
        })
        .collect()
}

/// Envoy's regex matchers match the whole value, so anchor the pattern.
fn anchored_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|err| format!("invalid regex {pattern:?}: {err}"))
}

impl PeerLabels {
    fn from_node(node: &model::Node) -> PeerLabels {
        PeerLabels::new(
            node.workload.as_deref(),
            node.namespace.as_deref(),
            node.app.as_deref(),
            node.version.as_deref(),
            node.principal.as_deref(),
            node.cluster.as_deref(),
            None,
            None,
        )
    }

    pub(crate) fn from_destination(destination: &model::Destination) -> PeerLabels {
        PeerLabels::new(
            destination.workload.as_deref(),
            destination.namespace.as_deref(),
            destination.app.as_deref(),
            destination.version.as_deref(),
            destination.principal.as_deref(),
            destination.cluster.as_deref(),
            destination.service.as_deref(),
            destination.service_name.as_deref(),
        )
    }
}

/// A cluster's TLS settings, with its origination files read (problems named by field).
fn upstream_tls(
    tls: &model::UpstreamTls,
    path: &str,
    problems: &mut Problems,
) -> Option<Arc<crate::tls::UpstreamTlsRt>> {
    let rt = crate::tls::UpstreamTlsRt::new(tls.sni.clone(), tls.subject_alt_names.clone())
        .map_err(|err| problems.add(format!("{path}.sni"), err.to_string()))
        .ok()?;
    let Some(files) = &tls.files else {
        return Some(Arc::new(rt));
    };
    match crate::tls::origination::Origination::new(
        files,
        &tls.subject_alt_names,
        crate::tls::provider(),
    ) {
        Ok(origination) => Some(Arc::new(rt.with_origination(origination))),
        Err((field, reason)) => {
            problems.add(format!("{path}.files.{field}"), reason);
            None
        }
    }
}
