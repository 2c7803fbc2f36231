//! The sidecar-injection MutatingWebhookConfiguration and the config-validation
//! ValidatingWebhookConfigurations, as Istio's charts (istio-discovery's
//! `mutatingwebhook.yaml` and `validatingwebhookconfiguration.yaml`, base's default validator)
//! render them.
//!
//! The injector's selectors are Istio's, so namespaces and pods labelled for Istio are injected
//! the same way:
//! - default revision: a namespace labelled `istio-injection=enabled` (`namespace.`), or
//!   `istio.io/rev=default` (`rev.namespace.`); in a namespace with neither label, a pod
//!   labelled `sidecar.istio.io/inject=true` (`object.`) or `istio.io/rev=default`
//!   (`rev.object.`). A pod labelled `sidecar.istio.io/inject=false` is never injected.
//! - a named revision: only the two `rev.` entries, matching `istio.io/rev=<revision>`.
//! - `values.sidecarInjectorWebhook.enableNamespacesByDefault` adds `auto.`: every namespace
//!   with neither label except Kubernetes' own, for pods with neither label.
//!
//! The webhook path is `values.istiodRemote.injectionPath` (`/inject`, as in Istio's chart at
//! the commit the fixtures come from); `reinvocationPolicy` is
//! `values.sidecarInjectorWebhook.reinvocationPolicy` (`Never`).
//!
//! Validation: `istio-validator[-REV]-NS` (`rev.validation.istio.io`) checks objects labelled
//! with its revision; for the default revision `istiod-default-validator`
//! (`validation.istio.io`, what `istioctl install` adds with the default revision tag) checks
//! every object. Both start with `failurePolicy: Ignore`: the control plane patches in its
//! `caBundle` and may switch to `Fail` once a dry run of an invalid Gateway annotated
//! `internal.istio.io/webhook-always-reject` is refused (istiod's readiness probe of the webhook).

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
        if path.starts_with("/inject")
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
    let reinvocation = ctx
        .values()
        .and_then(|v| v.sidecar_injector_webhook.as_ref())
        .and_then(|w| w.raw.get("reinvocationPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("Never");
    json!({
        "name": name,
        "clientConfig": client_config(ctx, &injection_path(ctx)),
        "sideEffects": "None",
        "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        "failurePolicy": "Fail",
        "reinvocationPolicy": reinvocation,
        "admissionReviewVersions": ["v1"],
        "namespaceSelector": namespace_selector,
        "objectSelector": object_selector,
    })
}

/// `values.istiodRemote.injectionPath`, `/inject` by default.
fn injection_path(ctx: &Context) -> String {
    ctx.values()
        .and_then(|v| v.istiod_remote.as_ref())
        .and_then(|r| r.known.injection_path.as_ref())
        .map(|p| p.0.clone())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/inject".to_string())
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
    if by_default {
        hooks.push(injection_webhook(
            ctx,
            "auto.sidecar-injector.istio.io",
            selector(vec![
                expression("istio-injection", "DoesNotExist", &[]),
                expression("istio.io/rev", "DoesNotExist", &[]),
                expression(
                    "kubernetes.io/metadata.name",
                    "NotIn",
                    &[
                        "kube-system",
                        "kube-public",
                        "kube-node-lease",
                        "local-path-storage",
                    ],
                ),
            ]),
            selector(vec![
                expression("sidecar.istio.io/inject", "DoesNotExist", &[]),
                expression("istio.io/rev", "DoesNotExist", &[]),
            ]),
        ));
    }
    hooks
}

/// One validating webhook: Istio's groups, CREATE and UPDATE, any version and resource.
fn validation_webhook(ctx: &Context, name: &str, object_selector: Option<Value>) -> Value {
    let mut hook = json!({
        "name": name,
        "clientConfig": client_config(ctx, "/validate"),
        "rules": [{
            "operations": ["CREATE", "UPDATE"],
            "apiGroups": ["security.istio.io", "networking.istio.io", "telemetry.istio.io", "extensions.istio.io"],
            "apiVersions": ["*"],
            "resources": ["*"],
        }],
        // Ignore until lateend is serving and its CA bundle is patched in, as Istio does;
        // Fail from the start would block creating config before the control plane runs.
        "failurePolicy": "Ignore",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    if let Some(selector) = object_selector {
        hook["objectSelector"] = selector;
    }
    hook
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
            "webhooks": [validation_webhook(
                ctx,
                "rev.validation.istio.io",
                Some(selector(vec![expression("istio.io/rev", "In", &[ctx.rev_label()])])),
            )],
        }));
        if ctx.revision.is_empty() {
            objects.push(json!({
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {
                    "name": DEFAULT_VALIDATOR,
                    "labels": {"app": "istiod", "istio": "istiod"},
                },
                "webhooks": [validation_webhook(ctx, "validation.istio.io", None)],
            }));
        }
    }
    objects
}

/// The validator of objects without a revision label (Istio's default revision tag).
const DEFAULT_VALIDATOR: &str = "istiod-default-validator";
