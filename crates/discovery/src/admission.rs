//! Istio's configuration-validation webhook (`/validate` on 15017, what istiod's
//! `pkg/webhooks/validation/server` does), plugged into `lateen-inject`'s admission server as
//! its [`ConfigValidator`]. The rules themselves are `lateen-api`'s, the same the folder source
//! applies, so the API server refuses exactly what `lateend --config-dir` would reject, with the
//! same resource, field path and reason.
//!
//! Istio's behaviour kept here:
//! - only `CREATE` and `UPDATE` are checked; `DELETE` (and anything else) is allowed;
//! - a kind outside Istio's API groups, or unknown in them, is refused as
//!   `unrecognized type <group>/<version>, Kind=<kind>`; the version does not matter;
//! - object metadata first: `internal.istio.io/webhook-always-reject` (istiod's own probe,
//!   sent as a dry run, to learn that the webhook is live before it turns `failurePolicy` to
//!   `Fail`) is always refused; `istio.io/dry-run` only on an ALLOW or DENY
//!   AuthorizationPolicy with a boolean value; the internal parent annotations are refused;
//! - then the spec; a refusal's `status.message` is `configuration is invalid: <reason>`, and
//!   warnings go back as the response's `warnings` (kubectl prints them);
//! - top-level fields other than `apiVersion`, `kind`, `metadata`, `spec` and `status` are
//!   refused as `unknown field "<f>" on <Kind> resource <ns>/<name>`;
//! - a spec field `lateen-api` does not model is not a reason to refuse: the CRD (strict, as
//!   Istio's) has already refused or pruned what Istio does not know, so the object is valid
//!   for Istio; it is admitted with a warning that lateend will not apply it (the folder
//!   source rejects the same object);
//! - Istio kinds lateend does not model (EnvoyFilter, ProxyConfig, Telemetry, WasmPlugin) are
//!   admitted after the metadata checks, with a warning saying lateend ignores them;
//! - a dry run (`kubectl apply --dry-run=server`) gets the same answer; the log says so.

use lateen_inject::webhook::{AdmissionRequest, ConfigValidator, Verdict};
use serde_json::Value;

/// Istio's configuration API groups and their kinds (istiod's validation schemas).
const ISTIO_KINDS: &[(&str, &[&str])] = &[
    (
        "networking.istio.io",
        &[
            "DestinationRule",
            "EnvoyFilter",
            "Gateway",
            "ProxyConfig",
            "ServiceEntry",
            "Sidecar",
            "VirtualService",
            "WorkloadEntry",
            "WorkloadGroup",
        ],
    ),
    (
        "security.istio.io",
        &[
            "AuthorizationPolicy",
            "PeerAuthentication",
            "RequestAuthentication",
        ],
    ),
    ("telemetry.istio.io", &["Telemetry"]),
    ("extensions.istio.io", &["WasmPlugin"]),
];

/// Annotation istiod puts on the invalid Gateway it dry-runs to probe the webhook.
pub const ALWAYS_REJECT_ANNOTATION: &str = "internal.istio.io/webhook-always-reject";
/// Annotations only the control plane may set on generated resources.
const INTERNAL_ANNOTATIONS: &[&str] = &[
    "internal.istio.io/parent-namespace",
    "internal.istio.io/parents",
];
/// AuthorizationPolicy dry run: evaluate and log, do not enforce.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";
/// The top-level fields an Istio object may have.
const VALID_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

/// Metric reasons, as istiod labels `galley_validation_failed`.
const REASON_DECODE: &str = "yaml_decode_error";
const REASON_UNKNOWN_TYPE: &str = "unknown_type";
const REASON_INVALID: &str = "invalid_resource";

/// Istio's validation with `lateen-api`'s rules.
#[derive(Debug, Default, Clone, Copy)]
pub struct IstioValidator;

fn deny(reason: &'static str, message: String) -> Verdict {
    Verdict::Deny { reason, message }
}

fn invalid(message: impl std::fmt::Display) -> Verdict {
    deny(
        REASON_INVALID,
        format!("configuration is invalid: {message}"),
    )
}

impl ConfigValidator for IstioValidator {
    fn validate(&self, request: &AdmissionRequest<'_>) -> Verdict {
        if !matches!(request.operation.as_str(), "CREATE" | "UPDATE") {
            return Verdict::allow();
        }
        let verdict = validate_object(request);
        if let Verdict::Deny { message, .. } = &verdict {
            tracing::info!(
                kind = %request.kind.kind,
                namespace = %request.namespace,
                name = %request.name,
                dry_run = request.dry_run,
                "{message}"
            );
        }
        verdict
    }
}

fn validate_object(request: &AdmissionRequest<'_>) -> Verdict {
    let Some(object) = request.object.and_then(Value::as_object) else {
        return deny(
            REASON_DECODE,
            "cannot decode configuration: request.object is missing or not an object".into(),
        );
    };
    let text = |k: &str| object.get(k).and_then(Value::as_str).unwrap_or_default();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let known = ISTIO_KINDS
        .iter()
        .any(|(g, kinds)| *g == group && kinds.contains(&kind));
    if !known {
        return deny(
            REASON_UNKNOWN_TYPE,
            format!("unrecognized type {group}/{version}, Kind={kind}"),
        );
    }
    let meta = object.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or(&request.name);
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .unwrap_or(&request.namespace);
    let annotations = meta.and_then(|m| m.get("annotations"));
    if let Err(message) = check_metadata(kind, namespace, name, annotations, object.get("spec")) {
        return invalid(message);
    }
    if let Some(field) = object.keys().find(|k| !VALID_FIELDS.contains(&k.as_str())) {
        return deny(
            REASON_INVALID,
            format!("unknown field {field:?} on {kind} resource {namespace}/{name}"),
        );
    }
    check_spec(object, namespace)
}

/// Istio's metadata checks, run before the spec is looked at.
fn check_metadata(
    kind: &str,
    namespace: &str,
    name: &str,
    annotations: Option<&Value>,
    spec: Option<&Value>,
) -> Result<(), String> {
    let annotation = |key: &str| annotations.and_then(|a| a.get(key));
    if let Some(value) = annotation(DRY_RUN_ANNOTATION) {
        if kind != "AuthorizationPolicy" {
            return Err(format!(
                "{namespace}/{name} has unsupported annotation {DRY_RUN_ANNOTATION}, please remove the annotation"
            ));
        }
        let action = spec
            .and_then(|s| s.get("action"))
            .and_then(Value::as_str)
            .unwrap_or("ALLOW");
        if !matches!(action, "ALLOW" | "DENY") {
            return Err(format!(
                "the annotation {DRY_RUN_ANNOTATION} currently only supports action ALLOW/DENY, found action {action} in {namespace}/{name}"
            ));
        }
        let value = value.as_str().unwrap_or_default();
        if parse_go_bool(value).is_none() {
            return Err(format!(
                "{namespace}/{name} has annotation {DRY_RUN_ANNOTATION} with invalid value ({value}): strconv.ParseBool: parsing {value:?}: invalid syntax"
            ));
        }
    }
    if annotation(ALWAYS_REJECT_ANNOTATION).is_some() {
        return Err(format!(
            "{ALWAYS_REJECT_ANNOTATION:?} annotation found, rejecting"
        ));
    }
    if let Some(key) = INTERNAL_ANNOTATIONS
        .iter()
        .find(|k| annotation(k).is_some())
    {
        return Err(format!(
            "{key:?} annotation found, this may not be set by users"
        ));
    }
    Ok(())
}

/// Go's `strconv.ParseBool`, which Istio uses for the dry-run annotation.
fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The spec, by the rules the folder source applies (`lateen_api::load`).
fn check_spec(object: &serde_json::Map<String, Value>, namespace: &str) -> Verdict {
    let mut object = object.clone();
    // The API server fills metadata.namespace in; a review built by hand may not.
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
        && !meta.contains_key("namespace")
        && !namespace.is_empty()
    {
        meta.insert("namespace".into(), Value::from(namespace));
    }
    let text = Value::Object(object).to_string();
    match lateen_api::load(&text, "admission request") {
        Ok(loaded) => Verdict::Allow {
            warnings: loaded.warnings.iter().map(warning_text).collect(),
        },
        Err(errors) => {
            let errors: Vec<&lateen_api::ConfigError> = errors
                .errors
                .iter()
                .filter(|e| e.severity == lateen_api::Severity::Error)
                .collect();
            if !errors.is_empty() && errors.iter().all(|e| is_unmodelled_field(e)) {
                // The CRD's schema (strict, as Istio's) has already refused or pruned fields
                // Istio does not know, so these are Istio fields lateend does not model yet:
                // Istio admits the object; say that lateend will not act on it.
                return Verdict::Allow {
                    warnings: errors
                        .iter()
                        .map(|e| {
                            format!(
                                "lateend does not support {} yet and will not apply this resource",
                                e.path
                            )
                        })
                        .collect(),
                };
            }
            let messages: Vec<String> = errors.iter().map(|e| e.object_message()).collect();
            invalid(messages.join("; "))
        }
    }
}

/// An error about a field `lateen-api`'s model does not have (serde's unknown-field message).
fn is_unmodelled_field(e: &lateen_api::ConfigError) -> bool {
    e.message.starts_with("unknown field `")
}

fn warning_text(w: &lateen_api::ConfigError) -> String {
    // lateen-api's "skipped" note, said for the cluster: stored, but lateend ignores it.
    match w.message.strip_prefix("skipped: ") {
        Some(rest) => format!("lateend ignores this resource: {rest}"),
        None => w.object_message(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(operation: &str, object: Value) -> Value {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u", "operation": operation, "namespace": "default",
                        "name": object["metadata"]["name"].clone(),
                        "kind": {"group": "networking.istio.io", "version": "v1", "kind": object["kind"].clone()},
                        "object": object},
        })
    }

    fn verdict(operation: &str, object: Value) -> Verdict {
        let doc = request(operation, object);
        let req = lateen_inject::webhook::admission::parse_request(&doc)
            .unwrap_or_else(|e| panic!("{e:?}"));
        IstioValidator.validate(&req)
    }

    fn message(v: Verdict) -> String {
        match v {
            Verdict::Deny { message, .. } => message,
            Verdict::Allow { .. } => panic!("allowed"),
        }
    }

    fn vs(weight: i64) -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "reviews", "namespace": "default", "uid": "x", "generation": 1,
                            "managedFields": [{"manager": "kubectl"}]},
               "spec": {"hosts": ["reviews"], "http": [{"route": [
                   {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
                   {"destination": {"host": "reviews", "subset": "v2"}, "weight": weight}]}]}})
    }

    #[test]
    fn the_folder_sources_message() {
        assert_eq!(
            message(verdict("CREATE", vs(-10))),
            "configuration is invalid: VirtualService default/reviews: \
             spec.http[0].route[1].weight: weight -10 must not be negative"
        );
        assert!(matches!(verdict("UPDATE", vs(10)), Verdict::Allow { .. }));
        assert!(matches!(verdict("DELETE", vs(-10)), Verdict::Allow { .. }));
    }

    #[test]
    fn unknown_kinds_and_fields() {
        let mut obj = vs(10);
        obj["kind"] = json!("VirtualServce");
        assert_eq!(
            message(verdict("CREATE", obj)),
            "unrecognized type networking.istio.io/v1, Kind=VirtualServce"
        );
        let mut obj = vs(10);
        obj["extra"] = json!(1);
        assert_eq!(
            message(verdict("CREATE", obj)),
            "unknown field \"extra\" on VirtualService resource default/reviews"
        );
        let filter = json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter",
                            "metadata": {"name": "f", "namespace": "default"}, "spec": {"anything": 1}});
        let Verdict::Allow { warnings } = verdict("CREATE", filter) else {
            panic!("EnvoyFilter is Istio's: admitted")
        };
        assert!(warnings[0].contains("lateend ignores"), "{warnings:?}");
    }

    #[test]
    fn metadata_rules() {
        let mut gw = json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                            "metadata": {"name": "invalid-gateway", "namespace": "istio-system",
                                         "annotations": {ALWAYS_REJECT_ANNOTATION: "true"}},
                            "spec": {}});
        assert_eq!(
            message(verdict("CREATE", gw.clone())),
            "configuration is invalid: \"internal.istio.io/webhook-always-reject\" annotation found, rejecting"
        );
        gw["metadata"]["annotations"] = json!({DRY_RUN_ANNOTATION: "true"});
        assert_eq!(
            message(verdict("CREATE", gw)),
            "configuration is invalid: istio-system/invalid-gateway has unsupported annotation istio.io/dry-run, please remove the annotation"
        );
        let ap = |action: &str, value: &str| {
            json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                   "metadata": {"name": "ap", "namespace": "default", "annotations": {DRY_RUN_ANNOTATION: value}},
                   "spec": {"action": action, "rules": [{}]}})
        };
        assert!(matches!(
            verdict("CREATE", ap("DENY", "true")),
            Verdict::Allow { .. }
        ));
        assert!(
            message(verdict("CREATE", ap("ALLOW", "maybe"))).contains("with invalid value (maybe)")
        );
        assert!(
            message(verdict("CREATE", ap("AUDIT", "true")))
                .contains("only supports action ALLOW/DENY")
        );
    }

    /// istiod's older readiness probe has no annotation, only an empty spec: refused too.
    #[test]
    fn a_gateway_without_servers() {
        let gw = json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                        "metadata": {"name": "invalid-gateway", "namespace": "istio-system"}, "spec": {}});
        assert_eq!(
            message(verdict("CREATE", gw)),
            "configuration is invalid: Gateway istio-system/invalid-gateway: spec.servers: gateway must have at least one server"
        );
    }
}
