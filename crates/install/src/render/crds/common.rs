//! Schemas every Istio API group shares: the status Istio writes, workload selectors, and
//! policy target references.

use serde_json::Value;

use super::schema::{SchemaExt, enumeration, int_or_string, list, map, non_empty, object, string};

/// `istio.meta.v1alpha1.IstioStatus`: conditions and the validation messages istiod (and
/// lateend) writes on resources; unknown fields are kept, as Istio's CRDs do.
pub fn status() -> Value {
    let condition = object(&[
        ("lastProbeTime", string().format("date-time")),
        ("lastTransitionTime", string().format("date-time")),
        ("message", string()),
        ("observedGeneration", int_or_string()),
        ("reason", string()),
        ("status", string()),
        ("type", string()),
    ]);
    let validation_message = object(&[
        ("documentationUrl", string()),
        (
            "level",
            enumeration(&["UNKNOWN", "ERROR", "WARNING", "INFO"]),
        ),
        ("type", object(&[("code", string()), ("name", string())])),
    ]);
    object(&[
        ("conditions", list(condition)),
        ("observedGeneration", int_or_string()),
        ("validationMessages", list(validation_message)),
    ])
    .with("x-kubernetes-preserve-unknown-fields", Value::Bool(true))
}

/// `istio.type.v1beta1.WorkloadSelector` (security, telemetry, ProxyConfig, DestinationRule):
/// `matchLabels` without wildcards or empty keys.
pub fn match_labels_selector() -> Value {
    let value = string().max_len(63).rule(
        "!self.contains(\"*\")",
        "wildcard not allowed in label value match",
    );
    let labels = map(value)
        .max_props(4096)
        .rule(
            "self.all(key, !key.contains(\"*\"))",
            "wildcard not allowed in label key match",
        )
        .rule("self.all(key, key.size() != 0)", "key must not be empty");
    object(&[("matchLabels", labels)])
}

/// `istio.networking.v1.WorkloadSelector` (ServiceEntry, Sidecar, EnvoyFilter): `labels`
/// without wildcards in values.
pub fn labels_selector() -> Value {
    let value = string().max_len(63).rule(
        "!self.contains(\"*\")",
        "wildcard is not supported in selector",
    );
    object(&[("labels", map(value).max_props(256))])
}

/// `istio.type.v1beta1.PolicyTargetReference`: a Gateway API style reference to a resource in
/// the policy's own namespace.
pub fn target_ref() -> Value {
    object(&[
        (
            "group",
            string()
                .max_len(253)
                .pattern("^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        ),
        (
            "kind",
            non_empty()
                .max_len(63)
                .pattern("^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"),
        ),
        ("name", non_empty().max_len(253)),
        (
            "namespace",
            string().rule(
                "self.size() == 0",
                "cross namespace referencing is not currently supported",
            ),
        ),
    ])
    .required(&["kind", "name"])
}

/// A list of at most 16 target references.
pub fn target_refs() -> Value {
    list(target_ref()).max_items(16)
}

/// The rule on a policy spec that takes `selector`, `targetRef` and `targetRefs`.
pub fn one_way_to_select(spec: Value) -> Value {
    spec.rule(
        "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1",
        "only one of targetRefs or selector can be set",
    )
}
