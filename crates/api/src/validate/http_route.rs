//! VirtualService HTTP rules: matches, redirect/rewrite, retries, faults, CORS, headers.

use std::collections::BTreeMap;

use super::virtual_service::{check_destination, check_gateway_names, check_http_destinations};
use super::{
    Issues, check_duration, check_header_name, check_labels, check_percent, check_port_number,
    check_regex, check_string_match,
};
use crate::error::FieldPath;
use crate::host;
use crate::networking::{
    CorsPolicy, FaultAbort, FaultDelay, HeaderOperations, Headers, HttpFaultInjection,
    HttpMatchRequest, HttpRedirect, HttpRetry, HttpRewrite, HttpRoute, StringMatch,
};

/// Which of route/redirect/directResponse/delegate may be combined (Istio's rules and words).
fn check_conflicts(issues: &mut Issues, path: &FieldPath, route: &HttpRoute, in_delegate: bool) {
    let has_route = !route.route.is_empty();
    let name = route.name.as_deref().unwrap_or("");
    if route.delegate.is_some() && !in_delegate {
        // A root rule hands everything to the delegate.
        if route.redirect.is_some() {
            issues.error(
                path,
                format!("root HTTP route {name} must not specify redirect"),
            );
        }
        if has_route {
            issues.error(
                path,
                format!("root HTTP route {name} must not specify route"),
            );
        }
        return;
    }
    if in_delegate && route.delegate.is_some() {
        issues.error(
            &path.field("delegate"),
            "delegate HTTP route cannot contain delegate",
        );
    }
    let mut conflict = |what: &str| issues.error(path, what.to_string());
    if route.redirect.is_some() {
        if has_route {
            conflict("HTTP route cannot contain both route and redirect");
        }
        if route.fault.is_some() {
            conflict("HTTP route cannot contain both fault and redirect");
        }
        if route.rewrite.is_some() {
            conflict("HTTP route rule cannot contain both rewrite and redirect");
        }
        if route.direct_response.is_some() {
            conflict("HTTP route rule cannot contain both direct_response and redirect");
        }
    } else if route.direct_response.is_some() {
        if has_route {
            conflict("HTTP route cannot contain both route and direct_response");
        }
        if route.fault.is_some() {
            conflict("HTTP route cannot contain both fault and direct_response");
        }
        if route.rewrite.is_some() {
            conflict("HTTP route rule cannot contain both rewrite and direct_response");
        }
    } else if !has_route {
        conflict("HTTP route, redirect or direct_response is required");
    }
    if route.mirror.is_some() && !route.mirrors.is_empty() {
        conflict("HTTP route cannot contain both mirror and mirrors");
    }
}

/// Retry conditions Envoy/Istio accept in `retryOn`, besides numeric HTTP status codes.
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// gRPC status names accepted by `fault.abort.grpcStatus`.
const GRPC_STATUSES: &[&str] = &[
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

const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

pub(super) fn check_http_route(
    issues: &mut Issues,
    path: &FieldPath,
    route: &HttpRoute,
    in_delegate: bool,
) {
    check_conflicts(issues, path, route, in_delegate);
    for (i, m) in route.matches.iter().enumerate() {
        check_match(issues, &path.field("match").index(i), m);
    }
    check_http_destinations(issues, &path.field("route"), &route.route);
    if let Some(r) = &route.redirect {
        check_redirect(issues, &path.field("redirect"), r);
    }
    if let Some(d) = &route.direct_response {
        let p = path.field("directResponse");
        check_status(issues, &p.field("status"), i64::from(d.status));
        if let Some(body) = &d.body {
            if body.string.is_some() && body.bytes.is_some() {
                issues.error(&p.field("body"), "only one of string or bytes may be set");
            }
            let size = body
                .string
                .as_ref()
                .or(body.bytes.as_ref())
                .map_or(0, String::len);
            if size > 1024 * 1024 {
                issues.error(
                    &p.field("body"),
                    "direct response body must be less than 1MB",
                );
            }
        }
    }
    if let Some(d) = &route.delegate {
        let p = path.field("delegate");
        if d.name.is_empty() {
            issues.error(&p.field("name"), "delegate name is required");
        } else if !host::is_dns1123_subdomain(&d.name) {
            issues.error(
                &p.field("name"),
                format!("invalid delegate name {:?}", d.name),
            );
        }
        if let Some(ns) = &d.namespace
            && !host::is_dns1123_label(ns)
        {
            issues.error(&p.field("namespace"), format!("invalid namespace {ns:?}"));
        }
    }
    if let Some(r) = &route.rewrite {
        check_rewrite(issues, &path.field("rewrite"), r);
    }
    // Istio refuses `timeout: 0s` too (every duration must be at least 1ms).
    check_duration(issues, &path.field("timeout"), route.timeout);
    if let Some(h) = &route.headers {
        check_authority_rewrite(issues, path, route.rewrite.as_ref(), h);
    }
    if let Some(r) = &route.retries {
        check_retries(issues, &path.field("retries"), r);
    }
    if let Some(f) = &route.fault {
        check_fault(issues, &path.field("fault"), f);
    }
    if let Some(m) = &route.mirror {
        check_destination(issues, &path.field("mirror"), m);
    }
    if route.mirror_percent.is_some() {
        issues.warn(
            &path.field("mirrorPercent"),
            "mirrorPercent is deprecated; use mirrorPercentage",
        );
    }
    if let Some(p) = route.mirror_percent
        && p > 100
    {
        issues.error(
            &path.field("mirrorPercent"),
            format!("mirror percent {p} must be in the range 0..100"),
        );
    }
    check_percent(
        issues,
        &path.field("mirrorPercentage"),
        route.mirror_percentage,
    );
    for (i, mirror) in route.mirrors.iter().enumerate() {
        let p = path.field("mirrors").index(i);
        match &mirror.destination {
            Some(d) => check_destination(issues, &p.field("destination"), d),
            None => issues.error(
                &p.field("destination"),
                "destination is required for mirrors",
            ),
        }
        check_percent(issues, &p.field("percentage"), mirror.percentage);
    }
    if let Some(c) = &route.cors_policy {
        check_cors(issues, &path.field("corsPolicy"), c);
    }
    if let Some(h) = &route.headers {
        check_headers(issues, &path.field("headers"), h);
    }
}

fn check_match(issues: &mut Issues, path: &FieldPath, m: &HttpMatchRequest) {
    for (field, sm) in [
        ("uri", &m.uri),
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        // Envoy accepts an empty path prefix (it matches everything); not for the others.
        let empty_uri_prefix =
            field == "uri" && sm.as_ref().is_some_and(|s| s.prefix.as_deref() == Some(""));
        if let Some(sm) = sm.as_ref().filter(|_| !empty_uri_prefix) {
            check_string_match(issues, &path.field(field), sm, false);
        }
    }
    check_header_matches(issues, &path.field("headers"), &m.headers);
    check_header_matches(issues, &path.field("withoutHeaders"), &m.without_headers);
    for (name, sm) in &m.query_params {
        let p = path.field("queryParams").field(name);
        if name.is_empty() {
            issues.error(&p, "query parameter name cannot be empty");
        }
        check_string_match(issues, &p, sm, true);
    }
    if let Some(port) = m.port {
        check_port_number(issues, &path.field("port"), port);
    }
    check_labels(issues, &path.field("sourceLabels"), &m.source_labels);
    check_gateway_names(issues, &path.field("gateways"), &m.gateways);
    if let Some(ns) = &m.source_namespace
        && !host::is_dns1123_label(ns)
    {
        issues.error(
            &path.field("sourceNamespace"),
            format!("sourceNamespace match {ns} is invalid"),
        );
    }
}

fn check_header_matches(
    issues: &mut Issues,
    path: &FieldPath,
    headers: &BTreeMap<String, StringMatch>,
) {
    let without =
        path.segments().last() == Some(&crate::error::PathSegment::Field("withoutHeaders".into()));
    for (name, sm) in headers {
        let p = path.field(name);
        // `@request.auth.claims.<claim>` matches a JWT claim rather than a header.
        if !name.starts_with("@request.auth.claims") {
            check_header_name(issues, &p, name);
        }
        // In withoutHeaders, `regex: "*"` is Istio's spelling of "header absent", not a regex.
        if without && sm.regex.as_deref() == Some("*") && sm.exact.is_none() && sm.prefix.is_none()
        {
            continue;
        }
        check_string_match(issues, &p, sm, true);
    }
}

pub(super) fn check_headers(issues: &mut Issues, path: &FieldPath, headers: &Headers) {
    if let Some(req) = &headers.request {
        check_header_ops(issues, &path.field("request"), req);
    }
    if let Some(resp) = &headers.response {
        check_header_ops(issues, &path.field("response"), resp);
    }
}

/// Pseudo-headers and `host` are Envoy's own; only request set/add may touch the authority.
fn is_internal_header(name: &str) -> bool {
    name.starts_with(':') || name.eq_ignore_ascii_case("host")
}

fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

fn check_header_ops(issues: &mut Issues, path: &FieldPath, ops: &HeaderOperations) {
    let is_request =
        path.segments().last() == Some(&crate::error::PathSegment::Field("request".into()));
    for (field, map) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in map {
            let p = path.field(field).field(name);
            super::check_header_value(issues, &p, value);
            if is_request && is_authority_header(name) {
                continue;
            }
            if is_internal_header(name) {
                issues.error(
                    &p,
                    format!("invalid header {name:?}: internal headers cannot be modified"),
                );
            } else {
                check_header_name(issues, &p, name);
            }
        }
    }
    for (i, name) in ops.remove.iter().enumerate() {
        let p = path.field("remove").index(i);
        if is_internal_header(name) {
            issues.error(
                &p,
                format!("invalid header {name:?}: internal headers cannot be removed"),
            );
        } else {
            check_header_name(issues, &p, name);
        }
    }
}

/// The authority may be rewritten in only one place (rewrite.authority or one request header).
fn check_authority_rewrite(
    issues: &mut Issues,
    path: &FieldPath,
    rewrite: Option<&HttpRewrite>,
    headers: &Headers,
) {
    let mut current = rewrite.and_then(|r| r.authority.clone());
    let Some(request) = &headers.request else {
        return;
    };
    for (field, map) in [("set", &request.set), ("add", &request.add)] {
        for (name, value) in map.iter().filter(|(k, _)| is_authority_header(k)) {
            if let Some(existing) = &current {
                issues.error(
                    &path.field("headers").field("request").field(field).field(name),
                    format!("authority header cannot be set multiple times: have {existing:?}, attempting to set {value:?}"),
                );
            }
            current = Some(value.clone());
        }
    }
}

fn check_status(issues: &mut Issues, path: &FieldPath, status: i64) {
    if !(200..=599).contains(&status) {
        issues.error(
            path,
            format!("HTTP status {status} is not in range 200-599"),
        );
    }
}

fn check_redirect(issues: &mut Issues, path: &FieldPath, r: &HttpRedirect) {
    if r.uri.is_none()
        && r.authority.is_none()
        && r.port.is_none()
        && r.scheme.is_none()
        && r.derive_port.is_none()
    {
        issues.error(
            path,
            "redirect must specify URI, authority, scheme, or port",
        );
    }
    if let Some(code) = r.redirect_code
        && !(300..=399).contains(&code)
    {
        issues.error(
            &path.field("redirectCode"),
            format!("{code} is not a valid redirect code, must be 3xx"),
        );
    }
    if let Some(scheme) = &r.scheme
        && scheme != "http"
        && scheme != "https"
    {
        issues.error(
            &path.field("scheme"),
            "invalid redirect scheme, must be \"http\" or \"https\"",
        );
    }
    if let Some(port) = r.port {
        check_port_number(issues, &path.field("port"), port);
        if r.derive_port.is_some() {
            issues.error(path, "only one of port or derivePort may be set");
        }
    }
}

fn check_rewrite(issues: &mut Issues, path: &FieldPath, r: &HttpRewrite) {
    if r.uri.is_some() && r.uri_regex_rewrite.is_some() {
        issues.error(
            path,
            "rewrite may only contain one of uri or uriRegexRewrite",
        );
    }
    if r.uri.is_none() && r.uri_regex_rewrite.is_none() && r.authority.is_none() {
        issues.error(
            path,
            "rewrite must specify at least one of uri, uriRegexRewrite or authority",
        );
    }
    if let Some(rr) = &r.uri_regex_rewrite {
        let p = path.field("uriRegexRewrite");
        if rr.pattern.is_empty() || rr.rewrite.is_empty() {
            issues.error(&p, "uriRegexRewrite requires both match and rewrite");
        } else {
            check_regex(issues, &p.field("match"), &rr.pattern);
        }
    }
}

fn check_retries(issues: &mut Issues, path: &FieldPath, r: &HttpRetry) {
    if r.attempts < 0 {
        issues.error(&path.field("attempts"), "attempts cannot be negative");
    }
    if r.attempts == 0
        && (r.per_try_timeout.is_some()
            || r.retry_on.is_some()
            || r.retry_remote_localities.is_some())
    {
        issues.error(
            path,
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
    }
    check_duration(issues, &path.field("perTryTimeout"), r.per_try_timeout);
    check_duration(issues, &path.field("backoff"), r.backoff);
    for condition in r.retry_on_conditions() {
        let is_status = condition
            .parse::<u16>()
            .is_ok_and(|code| (100..=599).contains(&code));
        if !is_status && !RETRY_ON.contains(&condition) {
            issues.error(
                &path.field("retryOn"),
                format!("{condition:?} is not a valid retryOn policy"),
            );
        }
    }
}

fn check_fault(issues: &mut Issues, path: &FieldPath, f: &HttpFaultInjection) {
    if f.abort.is_none() && f.delay.is_none() {
        issues.error(
            path,
            "HTTP fault injection must have an abort and/or a delay",
        );
    }
    if let Some(a) = &f.abort {
        check_abort(issues, &path.field("abort"), a);
    }
    if let Some(d) = &f.delay {
        check_delay(issues, &path.field("delay"), d);
    }
}

fn check_abort(issues: &mut Issues, path: &FieldPath, a: &FaultAbort) {
    check_percent(issues, &path.field("percentage"), a.percentage);
    let set = [
        a.http_status.is_some(),
        a.grpc_status.is_some(),
        a.http2_error.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if set > 1 {
        issues.error(
            path,
            "only one of httpStatus, grpcStatus or http2Error may be set",
        );
    }
    if let Some(status) = a.http_status {
        check_status(issues, &path.field("httpStatus"), i64::from(status));
    }
    if let Some(status) = &a.grpc_status
        && !GRPC_STATUSES.contains(&status.as_str())
    {
        issues.error(
                &path.field("grpcStatus"),
                format!("gRPC status {status:?} is not supported; use a name such as NOT_FOUND or UNAVAILABLE"),
            );
    }
    if a.http2_error.is_some() {
        issues.error(
            &path.field("http2Error"),
            "HTTP/2 abort fault injection not supported yet",
        );
    }
    if set == 0 {
        issues.warn(path, "abort configured, but error type not set");
    }
}

fn check_delay(issues: &mut Issues, path: &FieldPath, d: &FaultDelay) {
    check_percent(issues, &path.field("percentage"), d.percentage);
    if let Some(p) = d.percent
        && !(0..=100).contains(&p)
    {
        issues.error(
            &path.field("percent"),
            format!("percent {p} must be in the range 0..100"),
        );
    }
    match (d.fixed_delay, d.exponential_delay) {
        (Some(_), Some(_)) => issues.error(
            path,
            "only one of fixedDelay or exponentialDelay may be set",
        ),
        (None, None) => issues.error(path, "delay must specify fixedDelay"),
        _ => {}
    }
    check_duration(issues, &path.field("fixedDelay"), d.fixed_delay);
    if d.exponential_delay.is_some() {
        issues.error(
            &path.field("exponentialDelay"),
            "exponentialDelay not supported yet",
        );
    }
}

fn check_cors(issues: &mut Issues, path: &FieldPath, c: &CorsPolicy) {
    for (i, origin) in c.allow_origins.iter().enumerate() {
        check_string_match(issues, &path.field("allowOrigins").index(i), origin, false);
    }
    for (i, m) in c.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&m.as_str()) {
            issues.error(
                &path.field("allowMethods").index(i),
                format!("{m:?} is not a supported HTTP method"),
            );
        }
    }
    for (field, names) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        for (i, name) in names.iter().enumerate() {
            // `*` is a valid CORS wildcard here.
            if name != "*" {
                check_header_name(issues, &path.field(field).index(i), name);
            }
        }
    }
    check_duration(issues, &path.field("maxAge"), c.max_age);
    if c.max_age.is_some_and(|d| d.subsec_nanos() != 0) {
        issues.error(
            &path.field("maxAge"),
            "maxAge is accurate only to seconds precision",
        );
    }
}
