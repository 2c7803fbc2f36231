//! Traffic policies of the model (Istio's VirtualService and DestinationRule semantics as
//! Envoy carries them): per-route fault injection, CORS, mirroring and hash keys; per-cluster
//! circuit breakers and outlier detection. Percentages are 0–100 with fractions allowed.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::duration;
use super::model::ValueMatch;

/// Envoy's `envoy.filters.http.fault` per-route config: delay, then maybe abort.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultDelay {
    #[serde(with = "duration")]
    pub fixed_delay: Duration,
    /// Share of requests delayed.
    #[serde(default = "hundred")]
    pub percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultAbort {
    /// HTTP status of the local reply; one of this and `grpc_status` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// gRPC status code (0–16) of the local reply, sent as HTTP 200 with `grpc-status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u32>,
    /// Share of requests aborted.
    #[serde(default = "hundred")]
    pub percentage: f64,
}

/// Envoy's `envoy.filters.http.cors` per-route `CorsPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsPolicy {
    /// Origins allowed (exact, prefix or regex); an origin matching none gets no CORS headers.
    #[serde(default)]
    pub allow_origins: Vec<ValueMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// `access-control-max-age` of preflight answers, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_credentials: bool,
    /// Preflights from origins that match none are forwarded upstream (Envoy's default)
    /// instead of being answered without CORS headers.
    #[serde(default = "yes")]
    pub forward_not_matching_preflights: bool,
}

/// A copy of the route's requests sent, fire and forget, to another cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorPolicy {
    pub cluster: String,
    #[serde(default = "hundred")]
    pub percentage: f64,
}

/// What a consistent-hash cluster hashes for a request (Envoy's route `hash_policy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HashPolicy {
    Header(String),
    Cookie(String),
    SourceIp(bool),
    QueryParameter(String),
}

/// Limits of one cluster (Envoy's default-priority `circuit_breakers.thresholds`); requests
/// past a limit get 503 with flag `UO`. Unset limits are Envoy's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakers {
    #[serde(default = "envoy_limit")]
    pub max_connections: u32,
    #[serde(default = "envoy_limit")]
    pub max_pending_requests: u32,
    #[serde(default = "envoy_limit")]
    pub max_requests: u32,
    #[serde(default = "three")]
    pub max_retries: u32,
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        CircuitBreakers {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

/// Passive health checking: a host answering `consecutive_5xx` 5xx in a row (or
/// `consecutive_gateway_failure` 502/503/504 or connection failures) is ejected from load
/// balancing for `base_ejection_time` × its number of ejections. 0 turns a detector off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    #[serde(default = "five")]
    pub consecutive_5xx: u32,
    #[serde(default)]
    pub consecutive_gateway_failure: u32,
    /// A host's ejection multiplier goes down by one for each interval it stays healthy.
    #[serde(default = "ten_seconds", with = "duration")]
    pub interval: Duration,
    #[serde(default = "thirty_seconds", with = "duration")]
    pub base_ejection_time: Duration,
    /// Longest ejection, whatever the multiplier.
    #[serde(default = "five_minutes", with = "duration")]
    pub max_ejection_time: Duration,
    /// At most this share of the hosts is ejected at once (but always at least one).
    #[serde(default = "ten")]
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 0,
            interval: ten_seconds(),
            base_ejection_time: thirty_seconds(),
            max_ejection_time: five_minutes(),
            max_ejection_percent: 10,
        }
    }
}

fn hundred() -> f64 {
    100.0
}
fn yes() -> bool {
    true
}
fn envoy_limit() -> u32 {
    1024
}
fn three() -> u32 {
    3
}
fn five() -> u32 {
    5
}
fn ten() -> u32 {
    10
}
fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}
fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
