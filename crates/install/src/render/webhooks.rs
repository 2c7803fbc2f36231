//! The sidecar-injection MutatingWebhookConfiguration and the config ValidatingWebhookConfiguration.
//!
//! The injector's selectors are Istio's, so namespaces and pods labelled for Istio are injected
//! the same way:
//! - default revision: a namespace labelled `istio-injection=enabled` (`namespace.`), or
//!   `istio.io/rev=default` (`rev.namespace.`); in a namespace with neither label, a pod
//!   labelled `sidecar.istio.io/inject=true` (`object.`) or `istio.io/rev=default`
//!   (`rev.object.`). A pod labelled `sidecar.istio.io/inject=false` is never injected.
//! - a named revision: only the two `rev.` entries, matching `istio.io/rev=<revision>`.
//! - `values.sidecarInjectorWebhook.enableNamespacesByDefault`: every namespace without an
//!   opt-out (`istio-injection=disabled`) or a revision label, except the control plane's own.

use serde_json::{Value, json};

use super::Context;

fn expression(key: &str, operator: &str, values: &[&str]) -> Value {
    if values.is_empty() {
        json!({"key": key, "operator": operator})
    } else {
        json!({"key": key, "operator": operator, "values": values})
    }
}

fn selector(expressions: Vec<Value>) -> Value {
    json!({"matchExpressions": expressions})
}

/// Where the API server reaches lateend: its Service, or a URL when the control plane is remote.
fn client_config(ctx: &Context, path: &str) -> Value {
    let remote = ctx
        .values()
        .and_then(|v| v.istiod_remote.as_ref())
        .map(|r| &r.known);
    if ctx.is_remote() {
        if path == "/inject"
            && let Some(url) = remote.and_then(|r| r.injection_url.as_ref())
        {
            return json!({"url": url.0});
        }
        if let Some(address) = ctx.global().and_then(|g| g.remote_pilot_address.as_ref()) {
            return json!({"url": format!("https://{}:15017{path}", address.0)});
        }
    }
    json!({"service": {"name": ctx.control_plane_name(), "namespace": ctx.namespace, "path": path, "port": 443}})
}

fn injection_webhook(
    ctx: &Context,
    name: &str,
    namespace_selector: Value,
    object_selector: Value,
) -> Value {
    json!({
        "name": name,
        "clientConfig": client_config(ctx, "/inject"),
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "reinvocationPolicy": "Never",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1beta1", "v1"],
        "timeoutSeconds": 10,
        "namespaceSelector": namespace_selector,
        "objectSelector": object_selector,
    })
}

fn injection_webhooks(ctx: &Context) -> Vec<Value> {
    let rev = ctx.rev_label();
    let not_opted_out = || expression("sidecar.istio.io/inject", "NotIn", &["false"]);
    let by_default = ctx
        .values()
        .and_then(|v| v.sidecar_injector_webhook.as_ref())
        .and_then(|w| w.known.enable_namespaces_by_default)
        .is_some_and(|b| b.0);
    let mut hooks = vec![
        injection_webhook(
            ctx,
            "rev.namespace.sidecar-injector.istio.io",
            selector(vec![
                expression("istio.io/rev", "In", &[rev]),
                expression("istio-injection", "DoesNotExist", &[]),
            ]),
            selector(vec![not_opted_out()]),
        ),
        injection_webhook(
            ctx,
            "rev.object.sidecar-injector.istio.io",
            selector(vec![
                expression("istio.io/rev", "DoesNotExist", &[]),
                expression("istio-injection", "DoesNotExist", &[]),
            ]),
            selector(vec![
                not_opted_out(),
                expression("istio.io/rev", "In", &[rev]),
            ]),
        ),
    ];
    if !ctx.revision.is_empty() {
        return hooks;
    }
    if by_default {
        hooks.push(injection_webhook(
            ctx,
            "namespace.sidecar-injector.istio.io",
            selector(vec![
                expression("kubernetes.io/metadata.name", "NotIn", &[&ctx.namespace]),
                expression("istio-injection", "NotIn", &["disabled"]),
                expression("istio.io/rev", "DoesNotExist", &[]),
            ]),
            selector(vec![
                not_opted_out(),
                expression("istio.io/rev", "DoesNotExist", &[]),
            ]),
        ));
        return hooks;
    }
    hooks.push(injection_webhook(
        ctx,
        "namespace.sidecar-injector.istio.io",
        selector(vec![expression("istio-injection", "In", &["enabled"])]),
        selector(vec![not_opted_out()]),
    ));
    hooks.push(injection_webhook(
        ctx,
        "object.sidecar-injector.istio.io",
        selector(vec![
            expression("istio-injection", "DoesNotExist", &[]),
            expression("istio.io/rev", "DoesNotExist", &[]),
        ]),
        selector(vec![
            expression("sidecar.istio.io/inject", "In", &["true"]),
            expression("istio.io/rev", "DoesNotExist", &[]),
        ]),
    ));
    hooks
}

pub(super) fn render(ctx: &Context) -> Vec<Value> {
    let mut app_label = serde_json::Map::new();
    app_label.insert("app".into(), json!("sidecar-injector"));
    let mut objects = vec![json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": ctx.revisioned("istio-sidecar-injector"), "labels": app_label},
        "webhooks": injection_webhooks(ctx),
    })];
    let validation_on = ctx
        .global()
        .and_then(|g| g.config_validation)
        .is_none_or(|b| b.0);
    if validation_on {
        objects.push(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {
                "name": format!("{}-{}", ctx.revisioned("istio-validator"), ctx.namespace),
                "labels": {"app": "istiod", "istio": "istiod"},
            },
            "webhooks": [{
                "name": "rev.validation.istio.io",
                "clientConfig": client_config(ctx, "/validate"),
                "rules": [{
                    "operations": ["CREATE", "UPDATE"],
                    "apiGroups": ["security.istio.io", "networking.istio.io", "telemetry.istio.io", "extensions.istio.io"],
                    "apiVersions": ["*"],
                    "resources": ["*"],
                }],
                // Ignore until lateend is serving and patches in its CA bundle, as Istio does;
                // Fail from the start would block creating config before the control plane runs.
                "failurePolicy": "Ignore",
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1beta1", "v1"],
                "timeoutSeconds": 10,
                "objectSelector": validation_object_selector(ctx),
            }],
        }));
    }
    objects
}

/// A named revision validates only its own objects; the default one validates every object, so
/// configs written without a revision label are checked too.
fn validation_object_selector(ctx: &Context) -> Value {
    if ctx.revision.is_empty() {
        json!({})
    } else {
        selector(vec![expression("istio.io/rev", "In", &[&ctx.revision])])
    }
}
