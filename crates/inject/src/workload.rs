//! Which kinds carry a pod template, and where; the per-object entry point of `kube-inject`.

use serde_json::Value;

use crate::annotations::REVISION;
use crate::config::{InjectConfig, InjectionPolicy};
use crate::decision::{self, Decision, PodFacts, SkipReason};
use crate::pod::{self, WorkloadMeta};
use crate::{InjectError, STATUS_ANNOTATION};

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Injected,
    Skipped(SkipReason),
    /// Not a kind with a pod template (Service, ConfigMap, ...): passed through unchanged.
    NotAWorkload,
    /// A `List`: one outcome per item.
    List(Vec<Outcome>),
}

/// Where the pod template of `kind` lives, as a JSON pointer ("" for a Pod itself) and as the
/// dotted path used in error messages.
pub fn template_location(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "Pod" => Some(("", "")),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some(("/spec/template", "spec.template")),
        "CronJob" => Some((
            "/spec/jobTemplate/spec/template",
            "spec.jobTemplate.spec.template",
        )),
        _ => None,
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The workload identity of an object (its own name; a Pod's generateName when unnamed).
pub fn workload_meta(obj: &Value, kind: &str) -> WorkloadMeta {
    let mut name = str_at(obj, "/metadata/name").to_string();
    if name.is_empty() {
        name = str_at(obj, "/metadata/generateName")
            .trim_end_matches('-')
            .to_string();
    }
    let namespace = match str_at(obj, "/metadata/namespace") {
        "" => "default".to_string(),
        ns => ns.to_string(),
    };
    let api_version = match str_at(obj, "/apiVersion") {
        "" => "v1",
        v => v,
    };
    let resource = format!("{}s", kind.to_ascii_lowercase());
    let owner = format!("kubernetes://apis/{api_version}/namespaces/{namespace}/{resource}/{name}");
    WorkloadMeta {
        name,
        namespace,
        owner,
    }
}

/// Injects one object in place (as `kube-inject` does: policy `enabled`, the config's
/// selectors honoured). Kinds without a pod template, opted-out, host-network and
/// already-injected pods are left unchanged.
pub fn inject_object(obj: &mut Value, cfg: &InjectConfig) -> Result<Outcome, InjectError> {
    let kind = str_at(obj, "/kind").to_string();
    if kind == "List" {
        let Some(items) = obj.get_mut("items").and_then(Value::as_array_mut) else {
            return Ok(Outcome::List(Vec::new()));
        };
        let mut outcomes = Vec::new();
        for (i, item) in items.iter_mut().enumerate() {
            let outcome = inject_object(item, cfg).map_err(|e| InjectError::Field {
                path: format!(
                    "items[{i}] ({} {:?})",
                    str_at(item, "/kind"),
                    str_at(item, "/metadata/name")
                ),
                reason: e.to_string(),
            })?;
            outcomes.push(outcome);
        }
        return Ok(Outcome::List(outcomes));
    }
    let Some((pointer, path)) = template_location(&kind) else {
        return Ok(Outcome::NotAWorkload);
    };
    let workload = workload_meta(obj, &kind);
    let Some(podlike) = obj.pointer_mut(pointer) else {
        return Err(InjectError::field(path, "the pod template is missing"));
    };
    if !podlike.is_object() {
        return Err(InjectError::field(path, "expected a mapping"));
    }
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    };
    let meta = podlike.get("metadata");
    let labels = pod::string_map(meta, "labels", &format!("{prefix}metadata"))?;
    let annotations = pod::string_map(meta, "annotations", &format!("{prefix}metadata"))?;
    if annotations.contains_key(STATUS_ANNOTATION) {
        return Ok(Outcome::Skipped(SkipReason::AlreadyInjected));
    }
    let host_network = podlike
        .pointer("/spec/hostNetwork")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // Offline injection has no namespace to ignore: the namespace check is the webhook's.
    let facts = PodFacts {
        namespace: "",
        labels: &labels,
        annotations: &annotations,
        host_network,
    };
    match decision::injection_required(cfg, InjectionPolicy::Enabled, &facts) {
        Decision::Skip(reason) => Ok(Outcome::Skipped(reason)),
        Decision::Inject => {
            // Without a configured revision, a pod that names one (label `istio.io/rev`) gets it.
            let pod_revision = labels.get(REVISION).filter(|r| !r.is_empty());
            let configured = !cfg.revision.is_empty() || !cfg.values.revision.is_empty();
            match pod_revision {
                Some(rev) if !configured => {
                    let mut for_revision = cfg.clone();
                    for_revision.revision = rev.clone();
                    pod::inject(podlike, &workload, &for_revision, path)?;
                }
                _ => pod::inject(podlike, &workload, cfg, path)?,
            }
            Ok(Outcome::Injected)
        }
    }
}
