//! Per-route policies of a VirtualService `http` rule: retries, mirrors, header operations,
//! fault injection and CORS, as Envoy route fields and per-filter configs.

use lateen_api::Object;
use lateen_api::networking::{
    CorsPolicy, Destination, HeaderOperations, HttpFaultInjection, HttpRetry, HttpRoute,
    UnmatchedPreflights, VirtualService,
};
use lateen_xds::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, RuntimeFractionalPercent, header_value_option,
};
use lateen_xds::pb::envoy::config::route::v3::{RetryPolicy, Route, retry_policy, route_action};
use lateen_xds::pb::envoy::extensions::filters::common::fault::v3::{FaultDelay, fault_delay};
use lateen_xds::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCors;
use lateen_xds::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use lateen_xds::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use lateen_xds::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};

use super::Context;
use super::names;
use super::routes::{destination_cluster, string_matcher as to_string_matcher};

/// Istio's retry policy when a route sets none.
const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// Istio's retries: `attempts: 0` turns retries off; unset `retryOn` means Istio's default
/// conditions; numeric conditions become retriable status codes.
pub(super) fn retry_policy_of(retry: Option<&HttpRetry>) -> Option<RetryPolicy> {
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

pub(super) fn mirrors_of(
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

pub(super) fn header_ops(ops: Option<&HeaderOperations>) -> (Vec<HeaderValueOption>, Vec<String>) {
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

pub(super) fn apply_headers(r: &mut Route, ops: Option<&HeaderOperations>, request: bool) {
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

pub(super) fn fault_of(fault: &HttpFaultInjection) -> HttpFault {
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

pub(super) fn cors_of(cors: &CorsPolicy) -> EnvoyCors {
    let mut origins: Vec<StringMatcher> = cors
        .allow_origins
        .iter()
        .filter_map(to_string_matcher)
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
