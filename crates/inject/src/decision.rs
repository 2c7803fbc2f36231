//! Istio's decision table: should this pod get a sidecar?
//!
//! Two stages, as in Istio, run by two different parties:
//! 1. **The API server** decides whether the injection webhook is called at all, from the
//!    MutatingWebhookConfiguration's namespace and object selectors ([`webhook_selects`] models
//!    them): namespace label `istio-injection=enabled` selects the default revision (any other
//!    value, e.g. `disabled`, selects nothing), else namespace label `istio.io/rev`, else pod
//!    label `istio.io/rev`, else pod label `sidecar.istio.io/inject: "true"`; a pod label
//!    `sidecar.istio.io/inject: "false"` always opts out. The webhook never sees the namespace's
//!    labels and must not second-guess this stage: being called *is* the namespace's consent.
//! 2. **The injector** ([`admission_decision`] for the webhook, [`injection_required`] — Istio's
//!    `injectRequired` — for both the webhook and offline `kube-inject`): never with
//!    `hostNetwork`, never in an ignored namespace; the pod's `sidecar.istio.io/inject` label
//!    (or, without the label, annotation) decides when it is exactly `"true"` or `"false"`; any
//!    other value is ignored (Istio logs it and falls back to the default); then a matching
//!    `neverInjectSelector`, then `alwaysInjectSelector`; else the policy (`enabled` injects,
//!    `disabled` does not).

use std::collections::BTreeMap;

use crate::annotations::{INJECT, REVISION};
use crate::config::{InjectConfig, InjectionPolicy};

/// Namespace label that turns injection on (`enabled`) or off for the default revision.
pub const NAMESPACE_INJECTION_LABEL: &str = "istio-injection";

/// The result of the decision, with the reason when the pod is left alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Inject,
    Skip(SkipReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    HostNetwork,
    IgnoredNamespace,
    AlreadyInjected,
    /// No webhook of this revision selects the pod (namespace/pod labels): only
    /// [`webhook_selects`] (the API server's stage) gives this.
    NotSelected,
    /// The pod's `sidecar.istio.io/inject` label or annotation is `"false"`.
    PodOptOut,
    NeverInjectSelector,
    PolicyDisabled,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::HostNetwork => "pod uses hostNetwork",
            SkipReason::IgnoredNamespace => "namespace is ignored by the injector",
            SkipReason::AlreadyInjected => "pod is already injected (sidecar.istio.io/status)",
            SkipReason::NotSelected => {
                "no injection webhook of this revision selects the pod's namespace or labels"
            }
            SkipReason::PodOptOut => "sidecar.istio.io/inject is \"false\"",
            SkipReason::NeverInjectSelector => "pod labels match neverInjectSelector",
            SkipReason::PolicyDisabled => {
                "injection policy is disabled and the pod does not opt in"
            }
        }
    }
}

/// What the decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct PodFacts<'a> {
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
    pub host_network: bool,
}

fn is_default_revision(rev: &str) -> bool {
    rev.is_empty() || rev == "default"
}

/// Whether the API server would call one of the injector's webhooks (for `revision`) for this
/// pod, given its namespace's labels: the selectors `lateen install` renders, as Istio's chart
/// does. The webhook itself never evaluates this; tests and offline tools do.
pub fn webhook_selects(
    namespace_labels: &BTreeMap<String, String>,
    pod_labels: &BTreeMap<String, String>,
    revision: &str,
) -> bool {
    let pod_inject = pod_labels.get(INJECT).map(String::as_str);
    if pod_inject == Some("false") {
        return false;
    }
    let same_revision =
        |rev: &str| rev == revision || (is_default_revision(rev) && is_default_revision(revision));
    if let Some(ns) = namespace_labels.get(NAMESPACE_INJECTION_LABEL) {
        return ns == "enabled" && is_default_revision(revision);
    }
    if let Some(ns_rev) = namespace_labels.get(REVISION) {
        return same_revision(ns_rev);
    }
    if let Some(pod_rev) = pod_labels.get(REVISION) {
        return same_revision(pod_rev);
    }
    pod_inject == Some("true") && is_default_revision(revision)
}

/// Istio's `injectRequired`: the injector's own verdict once its webhook is called.
pub fn injection_required(
    cfg: &InjectConfig,
    policy: InjectionPolicy,
    pod: &PodFacts<'_>,
) -> Decision {
    if pod.host_network {
        return Decision::Skip(SkipReason::HostNetwork);
    }
    if cfg.ignored_namespaces.iter().any(|ns| ns == pod.namespace) {
        return Decision::Skip(SkipReason::IgnoredNamespace);
    }
    match explicit_choice(pod) {
        ExplicitChoice::Inject => return Decision::Inject,
        ExplicitChoice::OptOut => return Decision::Skip(SkipReason::PodOptOut),
        ExplicitChoice::Unset => {}
        ExplicitChoice::Invalid(value) => tracing::warn!(
            namespace = pod.namespace,
            %value,
            "invalid value for sidecar.istio.io/inject (only \"true\" and \"false\" are accepted); \
             falling back to the default injection policy"
        ),
    }
    if cfg
        .never_inject_selector
        .iter()
        .any(|s| s.matches(pod.labels))
    {
        return Decision::Skip(SkipReason::NeverInjectSelector);
    }
    if cfg
        .always_inject_selector
        .iter()
        .any(|s| s.matches(pod.labels))
    {
        return Decision::Inject;
    }
    match policy {
        InjectionPolicy::Enabled => Decision::Inject,
        InjectionPolicy::Disabled => Decision::Skip(SkipReason::PolicyDisabled),
    }
}

/// What the pod's own `sidecar.istio.io/inject` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExplicitChoice {
    /// Exactly `"true"`.
    Inject,
    /// Exactly `"false"`.
    OptOut,
    /// Absent or empty.
    Unset,
    /// Any other value: ignored, the default applies (Istio accepts only `true`/`false`).
    Invalid(String),
}

/// The pod's `sidecar.istio.io/inject`: the label is the newer API and wins over the annotation
/// when both are present, even when it is empty.
pub fn explicit_choice(pod: &PodFacts<'_>) -> ExplicitChoice {
    let value = pod
        .labels
        .get(INJECT)
        .or_else(|| pod.annotations.get(INJECT))
        .map(String::as_str);
    match value {
        Some("true") => ExplicitChoice::Inject,
        Some("false") => ExplicitChoice::OptOut,
        None | Some("") => ExplicitChoice::Unset,
        Some(other) => ExplicitChoice::Invalid(other.to_string()),
    }
}

/// The injection webhook's decision once the API server has called it: an already injected pod
/// is left as it is, otherwise [`injection_required`] with the configured policy. Namespace
/// labels play no part (the API server's selectors already matched them).
pub fn admission_decision(cfg: &InjectConfig, pod: &PodFacts<'_>) -> Decision {
    if pod.annotations.contains_key(crate::STATUS_ANNOTATION) {
        return Decision::Skip(SkipReason::AlreadyInjected);
    }
    injection_required(cfg, cfg.policy, pod)
}
