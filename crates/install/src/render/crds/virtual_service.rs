//! networking.istio.io/VirtualService: HTTP, TLS and TCP routes with their matches, rewrites,
//! redirects, retries, faults, mirrors and CORS policies.

use serde_json::Value;

use super::schema::{
    SchemaExt, boolean, double, duration, enumeration, int32, list, map, nullable_boolean, object,
    string, string_map, strings, uint32,
};
use super::traffic::{destination, weighted_destinations};

/// `StringMatch`: exactly one of exact, prefix or regex.
fn string_match() -> Value {
    object(&[
        ("exact", string()),
        ("prefix", string()),
        ("regex", string()),
    ])
    .one_of(&["exact", "prefix", "regex"])
}

fn percent() -> Value {
    object(&[("value", double())])
}

fn headers() -> Value {
    let operations = object(&[
        ("add", string_map()),
        ("remove", strings()),
        ("set", string_map()),
    ]);
    object(&[("request", operations.clone()), ("response", operations)])
}

fn http_match() -> Value {
    object(&[
        ("authority", string_match()),
        ("gateways", strings()),
        ("headers", map(string_match())),
        ("ignoreUriCase", boolean()),
        ("method", string_match()),
        ("name", string()),
        ("port", uint32()),
        ("queryParams", map(string_match())),
        ("scheme", string_match()),
        ("sourceLabels", string_map()),
        ("sourceNamespace", string()),
        ("statPrefix", string()),
        ("uri", string_match()),
        ("withoutHeaders", map(string_match())),
    ])
}

fn cors_policy() -> Value {
    object(&[
        ("allowCredentials", nullable_boolean()),
        ("allowHeaders", strings()),
        ("allowMethods", strings()),
        ("allowOrigin", strings()),
        ("allowOrigins", list(string_match())),
        ("exposeHeaders", strings()),
        ("maxAge", duration()),
        (
            "unmatchedPreflights",
            enumeration(&["UNSPECIFIED", "FORWARD", "IGNORE"]),
        ),
    ])
}

fn fault() -> Value {
    let abort = object(&[
        ("grpcStatus", string()),
        ("http2Error", string()),
        ("httpStatus", int32()),
        ("percentage", percent()),
    ])
    .one_of(&["httpStatus", "grpcStatus", "http2Error"]);
    let delay = object(&[
        ("exponentialDelay", duration()),
        ("fixedDelay", duration()),
        ("percent", int32()),
        ("percentage", percent()),
    ])
    .one_of(&["fixedDelay", "exponentialDelay"]);
    object(&[("abort", abort), ("delay", delay)])
}

fn direct_response() -> Value {
    let body = object(&[("bytes", string().format("byte")), ("string", string())])
        .one_of(&["string", "bytes"]);
    object(&[("body", body), ("status", uint32())]).required(&["status"])
}

fn redirect() -> Value {
    object(&[
        ("authority", string()),
        (
            "derivePort",
            enumeration(&["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"]),
        ),
        ("port", uint32()),
        ("prefixRewrite", string()),
        ("redirectCode", uint32()),
        ("scheme", string()),
        ("uri", string()),
    ])
    .one_of(&["port", "derivePort"])
}

fn retries() -> Value {
    object(&[
        ("attempts", int32()),
        ("backoff", duration()),
        ("perTryTimeout", duration()),
        ("retryIgnorePreviousHosts", nullable_boolean()),
        ("retryOn", string()),
        ("retryRemoteLocalities", nullable_boolean()),
    ])
}

fn http_route() -> Value {
    let mirror = object(&[("destination", destination()), ("percentage", percent())])
        .required(&["destination"]);
    let route = object(&[
        ("destination", destination()),
        ("headers", headers()),
        ("weight", int32()),
    ])
    .required(&["destination"]);
    let rewrite = object(&[
        ("authority", string()),
        ("uri", string()),
        (
            "uriRegexRewrite",
            object(&[("match", string()), ("rewrite", string())]),
        ),
    ]);
    object(&[
        ("corsPolicy", cors_policy()),
        (
            "delegate",
            object(&[("name", string()), ("namespace", string())]),
        ),
        ("directResponse", direct_response()),
        ("fault", fault()),
        ("headers", headers()),
        ("match", list(http_match())),
        ("mirror", destination()),
        ("mirrorPercent", uint32().nullable()),
        ("mirrorPercentage", percent()),
        ("mirror_percent", uint32().nullable()),
        ("mirrors", list(mirror)),
        ("name", string()),
        ("redirect", redirect()),
        ("retries", retries()),
        ("rewrite", rewrite),
        ("route", list(route)),
        ("timeout", duration()),
    ])
}

fn tls_route() -> Value {
    let tls_match = object(&[
        ("destinationSubnets", strings()),
        ("gateways", strings()),
        ("port", uint32()),
        ("sniHosts", strings()),
        ("sourceLabels", string_map()),
        ("sourceNamespace", string()),
    ])
    .required(&["sniHosts"]);
    object(&[
        ("match", list(tls_match)),
        ("route", weighted_destinations()),
    ])
    .required(&["match"])
}

fn tcp_route() -> Value {
    let l4_match = object(&[
        ("destinationSubnets", strings()),
        ("gateways", strings()),
        ("port", uint32()),
        ("sourceLabels", string_map()),
        ("sourceNamespace", string()),
        ("sourceSubnet", string()),
    ]);
    object(&[
        ("match", list(l4_match)),
        ("route", weighted_destinations()),
    ])
}

/// `networking.istio.io/VirtualService`.
pub fn virtual_service_spec() -> Value {
    object(&[
        ("exportTo", strings()),
        ("gateways", strings()),
        ("hosts", strings()),
        ("http", list(http_route())),
        ("tcp", list(tcp_route())),
        ("tls", list(tls_route())),
    ])
}
