//! telemetry.istio.io/Telemetry: tracing, metrics and access-log settings per workload.

use serde_json::Value;

use super::common::{match_labels_selector, one_way_to_select, target_ref, target_refs};
use super::schema::{
    SchemaExt, double, duration, enumeration, list, map, non_empty, nullable_boolean, object,
    string,
};

fn providers() -> Value {
    list(object(&[("name", non_empty())]).required(&["name"]))
}

fn workload_mode() -> Value {
    object(&[(
        "mode",
        enumeration(&["CLIENT_AND_SERVER", "CLIENT", "SERVER"]),
    )])
}

fn custom_tag() -> Value {
    let named = || object(&[("defaultValue", string()), ("name", non_empty())]).required(&["name"]);
    let valued = || object(&[("value", non_empty())]).required(&["value"]);
    object(&[
        ("environment", named()),
        ("formatter", valued()),
        ("header", named()),
        ("literal", valued()),
    ])
    .one_of(&["literal", "environment", "header", "formatter"])
}

fn tracing() -> Value {
    object(&[
        ("customTags", map(custom_tag())),
        ("disableContextPropagation", nullable_boolean()),
        ("disableSpanReporting", nullable_boolean()),
        ("enableIstioTags", nullable_boolean()),
        ("match", workload_mode()),
        ("providers", providers()),
        (
            "randomSamplingPercentage",
            double().minimum(0).maximum(100).nullable(),
        ),
        ("useRequestIdForTraceSampling", nullable_boolean()),
    ])
}

fn metrics() -> Value {
    let metric_selector = object(&[
        ("customMetric", non_empty()),
        (
            "metric",
            enumeration(&[
                "ALL_METRICS",
                "REQUEST_COUNT",
                "REQUEST_DURATION",
                "REQUEST_SIZE",
                "RESPONSE_SIZE",
                "TCP_OPENED_CONNECTIONS",
                "TCP_CLOSED_CONNECTIONS",
                "TCP_SENT_BYTES",
                "TCP_RECEIVED_BYTES",
                "GRPC_REQUEST_MESSAGES",
                "GRPC_RESPONSE_MESSAGES",
            ]),
        ),
        (
            "mode",
            enumeration(&["CLIENT_AND_SERVER", "CLIENT", "SERVER"]),
        ),
    ])
    .one_of(&["metric", "customMetric"]);
    let tag_override = object(&[
        ("operation", enumeration(&["UPSERT", "REMOVE"])),
        ("value", string()),
    ])
    .rule(
        "((has(self.operation) ? self.operation : \"\") == \"UPSERT\") ? (self.value != \"\") : true",
        "value must be set when operation is UPSERT",
    )
    .rule(
        "((has(self.operation) ? self.operation : \"\") == \"REMOVE\") ? !has(self.value) : true",
        "value must not be set when operation is REMOVE",
    );
    let metrics_override = object(&[
        ("disabled", nullable_boolean()),
        ("match", metric_selector),
        ("tagOverrides", map(tag_override)),
    ]);
    object(&[
        ("overrides", list(metrics_override)),
        ("providers", providers()),
        ("reportingInterval", duration()),
    ])
}

fn access_logging() -> Value {
    object(&[
        ("disabled", nullable_boolean()),
        ("filter", object(&[("expression", string())])),
        ("match", workload_mode()),
        ("providers", providers()),
    ])
}

/// `telemetry.istio.io/Telemetry`.
pub fn telemetry_spec() -> Value {
    one_way_to_select(object(&[
        ("accessLogging", list(access_logging())),
        ("metrics", list(metrics())),
        ("selector", match_labels_selector()),
        ("targetRef", target_ref()),
        ("targetRefs", target_refs()),
        ("tracing", list(tracing())),
    ]))
}
