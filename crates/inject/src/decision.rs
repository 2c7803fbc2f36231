//! Istio's decision table: should this pod get a sidecar?
//!
//! Two stages, as in Istio. First the MutatingWebhookConfiguration's selectors decide whether the
//! webhook is called at all ([`webhook_selects`]): namespace label `istio-injection`
//! (`enabled` selects the default revision; any other value, e.g. `disabled`, selects nothing),
//! else namespace label `istio.io/rev`, else pod label `istio.io/rev`, else pod label
//! `sidecar.istio.io/inject: "true"`; a pod label `sidecar.istio.io/inject: "false"` always opts
//! out. Then the injector itself ([`injection_required`], Istio's `injectRequired`): never with
//! `hostNetwork`, never in an ignored namespace; the pod's `sidecar.istio.io/inject` label (or,
//! without the label, annotation) decides if set (`y`/`yes`/`true`/`on` inject, anything else
//! does not); else a matching `neverInjectSelector`, then `alwaysInjectSelector`; else the
//! policy (`enabled` injects, `disabled` does not).

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
    /// No webhook of this revision selects the pod (namespace/pod labels).
    NotSelected,
    /// The pod's `sidecar.istio.io/inject` label or annotation says no.
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
            SkipReason::PodOptOut => "sidecar.istio.io/inject is not true",
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

/// Whether one of the injector's webhooks (for `revision`) would be called for this pod.
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
    // The label is the newer API: it wins over the annotation when both are present.
    let explicit = pod
        .labels
        .get(INJECT)
        .or_else(|| pod.annotations.get(INJECT))
        .map(|v| v.to_ascii_lowercase());
    match explicit.as_deref() {
        Some("y" | "yes" | "true" | "on") => return Decision::Inject,
        Some("") | None => {}
        Some(_) => return Decision::Skip(SkipReason::PodOptOut),
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

/// The webhook's full decision: selectors first, then [`injection_required`].
pub fn webhook_decision(
    cfg: &InjectConfig,
    revision: &str,
    namespace_labels: &BTreeMap<String, String>,
    pod: &PodFacts<'_>,
) -> Decision {
    if pod.annotations.contains_key(crate::STATUS_ANNOTATION) {
        return Decision::Skip(SkipReason::AlreadyInjected);
    }
    if !webhook_selects(namespace_labels, pod.labels, revision) {
        return Decision::Skip(SkipReason::NotSelected);
    }
    injection_required(cfg, cfg.policy, pod)
}
