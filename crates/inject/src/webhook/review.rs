//! One AdmissionReview in, one out. The pod is injected by the same code as `kube-inject`
//! ([`crate::pod::inject`]); the response carries the difference as a base64 JSON Patch.
//! Never panics on input: a malformed review gets an error response.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use serde_json::{Value, json};

use crate::config::{FailurePolicy, InjectConfig};
use crate::decision::{self, Decision, PodFacts, SkipReason};
use crate::patch;
use crate::pod::{self, WorkloadMeta};

/// Where the webhook learns a namespace's labels (lateend: its namespace informer).
pub trait NamespaceLabels: Send + Sync {
    fn labels(&self, namespace: &str) -> BTreeMap<String, String>;
}

/// A fixed table: namespace → labels (unknown namespaces have none).
impl NamespaceLabels for BTreeMap<String, BTreeMap<String, String>> {
    fn labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self.get(namespace).cloned().unwrap_or_default()
    }
}

impl<F: Fn(&str) -> BTreeMap<String, String> + Send + Sync> NamespaceLabels for F {
    fn labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self(namespace)
    }
}

/// What the webhook did with one review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewOutcome {
    Injected,
    Skipped(SkipReason),
    /// Not a Pod CREATE: allowed untouched.
    Ignored,
    /// The body is not a usable AdmissionReview.
    Malformed(String),
    /// Injection failed; the pod was admitted unchanged (`failurePolicy: Ignore`).
    FailedAllowed(String),
    /// Injection failed; the pod was refused (`failurePolicy: Fail`).
    FailedDenied(String),
}

/// Counters of [`ReviewOutcome`]s (exported as metrics by whoever serves the webhook).
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub requests: AtomicU64,
    pub injected: AtomicU64,
    pub skipped: AtomicU64,
    pub ignored: AtomicU64,
    pub malformed: AtomicU64,
    pub failed_allowed: AtomicU64,
    pub failed_denied: AtomicU64,
}

impl WebhookStats {
    /// The counters under Istio's sidecar-injector metric names, for export as Prometheus
    /// counters: `sidecar_injection_requests_total`, `_success_total`, `_skip_total`,
    /// `_failure_total` (malformed reviews and failed injections, allowed or denied).
    pub fn istio_metrics(&self) -> [(&'static str, u64); 4] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("sidecar_injection_requests_total", get(&self.requests)),
            ("sidecar_injection_success_total", get(&self.injected)),
            (
                "sidecar_injection_skip_total",
                get(&self.skipped) + get(&self.ignored),
            ),
            (
                "sidecar_injection_failure_total",
                get(&self.malformed) + get(&self.failed_allowed) + get(&self.failed_denied),
            ),
        ]
    }

    /// Counts one outcome and logs the reason of anything that is not a plain success.
    pub fn record(&self, outcome: &ReviewOutcome) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let counter = match outcome {
            ReviewOutcome::Injected => &self.injected,
            ReviewOutcome::Skipped(_) => &self.skipped,
            ReviewOutcome::Ignored => &self.ignored,
            ReviewOutcome::Malformed(reason) => {
                tracing::warn!(%reason, "malformed AdmissionReview");
                &self.malformed
            }
            ReviewOutcome::FailedAllowed(reason) => {
                tracing::warn!(%reason, "injection failed; pod admitted without sidecar (failurePolicy Ignore)");
                &self.failed_allowed
            }
            ReviewOutcome::FailedDenied(reason) => {
                tracing::warn!(%reason, "injection failed; pod refused (failurePolicy Fail)");
                &self.failed_denied
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The response AdmissionReview and what happened.
#[derive(Debug, Clone)]
pub struct Reviewed {
    pub response: Value,
    pub outcome: ReviewOutcome,
}

impl Reviewed {
    pub fn to_bytes(&self) -> Vec<u8> {
        self.response.to_string().into_bytes()
    }
}

fn envelope(api_version: &str, response: Value) -> Value {
    json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response})
}

fn malformed(api_version: &str, uid: &str, reason: String) -> Reviewed {
    let response =
        json!({"uid": uid, "allowed": false, "status": {"code": 400, "message": reason}});
    Reviewed {
        response: envelope(api_version, response),
        outcome: ReviewOutcome::Malformed(reason),
    }
}

/// Handles one AdmissionReview body for `revision` (empty: the config's revision).
pub fn review(
    body: &[u8],
    cfg: &InjectConfig,
    revision: &str,
    namespaces: &dyn NamespaceLabels,
) -> Reviewed {
    const V1: &str = "admission.k8s.io/v1";
    let doc: Value = match serde_json::from_slice(body) {
        Ok(doc) => doc,
        Err(e) => return malformed(V1, "", format!("body is not JSON: {e}")),
    };
    let api_version = match doc.get("apiVersion").and_then(Value::as_str) {
        Some(v @ ("admission.k8s.io/v1" | "admission.k8s.io/v1beta1")) => v.to_string(),
        other => {
            return malformed(
                V1,
                "",
                format!("apiVersion {other:?} is not admission.k8s.io/v1"),
            );
        }
    };
    if doc.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return malformed(&api_version, "", "kind is not AdmissionReview".into());
    }
    let Some(request) = doc.get("request").filter(|r| r.is_object()) else {
        return malformed(&api_version, "", "request is missing".into());
    };
    let Some(uid) = request
        .get("uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    else {
        return malformed(&api_version, "", "request.uid is missing".into());
    };
    let allow = |patch: Option<String>| {
        let mut response = json!({"uid": uid, "allowed": true});
        if let Some(p) = patch {
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(p);
        }
        envelope(&api_version, response)
    };
    let is_pod = request.pointer("/kind/kind").and_then(Value::as_str) == Some("Pod");
    let operation = request
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or("CREATE");
    if !is_pod || operation != "CREATE" {
        return Reviewed {
            response: allow(None),
            outcome: ReviewOutcome::Ignored,
        };
    }
    let Some(pod) = request.get("object").filter(|o| o.is_object()) else {
        return malformed(
            &api_version,
            uid,
            "request.object is missing or not a Pod".into(),
        );
    };
    let namespace = request
        .get("namespace")
        .and_then(Value::as_str)
        .or_else(|| pod.pointer("/metadata/namespace").and_then(Value::as_str))
        .unwrap_or("default");
    let revision = if revision.is_empty() {
        cfg.effective_revision()
    } else {
        revision
    };

    let fail = |reason: String| -> Reviewed {
        let reason = format!(
            "injecting pod {} in namespace {namespace}: {reason}",
            pod_name(pod)
        );
        match cfg.failure_policy {
            FailurePolicy::Ignore => Reviewed {
                response: allow(None),
                outcome: ReviewOutcome::FailedAllowed(reason),
            },
            FailurePolicy::Fail => {
                let response = json!({"uid": uid, "allowed": false, "status": {"code": 400, "message": reason}});
                Reviewed {
                    response: envelope(&api_version, response),
                    outcome: ReviewOutcome::FailedDenied(reason),
                }
            }
        }
    };
    let meta = pod.get("metadata");
    let (labels, annotations) = match (
        pod::string_map(meta, "labels", "metadata"),
        pod::string_map(meta, "annotations", "metadata"),
    ) {
        (Ok(l), Ok(a)) => (l, a),
        (Err(e), _) | (_, Err(e)) => return fail(e.to_string()),
    };
    let host_network = pod
        .pointer("/spec/hostNetwork")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let facts = PodFacts {
        namespace,
        labels: &labels,
        annotations: &annotations,
        host_network,
    };
    let ns_labels = namespaces.labels(namespace);
    if let Decision::Skip(reason) = decision::webhook_decision(cfg, revision, &ns_labels, &facts) {
        return Reviewed {
            response: allow(None),
            outcome: ReviewOutcome::Skipped(reason),
        };
    }
    let mut injected = pod.clone();
    let mut cfg_for_revision;
    let cfg = if revision != cfg.effective_revision() {
        cfg_for_revision = cfg.clone();
        cfg_for_revision.revision = revision.to_string();
        &cfg_for_revision
    } else {
        cfg
    };
    if let Err(e) = pod::inject(&mut injected, &pod_workload(pod, namespace), cfg, "") {
        return fail(e.to_string());
    }
    let ops = patch::diff(pod, &injected);
    let encoded = base64::engine::general_purpose::STANDARD.encode(Value::Array(ops).to_string());
    Reviewed {
        response: allow(Some(encoded)),
        outcome: ReviewOutcome::Injected,
    }
}

/// [`review`] as bytes, for callers that only need the response body.
pub fn review_bytes(
    body: &[u8],
    cfg: &InjectConfig,
    revision: &str,
    namespaces: &dyn NamespaceLabels,
) -> Vec<u8> {
    review(body, cfg, revision, namespaces).to_bytes()
}

fn pod_name(pod: &Value) -> String {
    let meta = pod.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
    let generate = meta
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str);
    name.map(String::from)
        .or_else(|| generate.map(|g| format!("{g}*")))
        .unwrap_or_else(|| "<unnamed>".into())
}

/// The pod's workload: its controller, with a ReplicaSet made by a Deployment mapped to the
/// Deployment (by stripping the `pod-template-hash` suffix), as Istio does.
fn pod_workload(pod: &Value, namespace: &str) -> WorkloadMeta {
    let str_at = |p: &str| {
        pod.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let controller = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|refs| {
            refs.iter()
                .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        });
    let (mut kind, mut api_version, mut name) = match controller {
        Some(r) => {
            let get = |k: &str| {
                r.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            (get("kind"), get("apiVersion"), get("name"))
        }
        None => {
            let name = match str_at("/metadata/name") {
                n if n.is_empty() => str_at("/metadata/generateName")
                    .trim_end_matches('-')
                    .to_string(),
                n => n,
            };
            ("Pod".to_string(), "v1".to_string(), name)
        }
    };
    let hash = str_at("/metadata/labels/pod-template-hash");
    if kind == "ReplicaSet"
        && !hash.is_empty()
        && let Some(deployment) = name.strip_suffix(&format!("-{hash}"))
    {
        name = deployment.to_string();
        kind = "Deployment".into();
        api_version = "apps/v1".into();
    }
    let owner = format!(
        "kubernetes://apis/{api_version}/namespaces/{namespace}/{}s/{name}",
        kind.to_ascii_lowercase()
    );
    WorkloadMeta {
        name,
        namespace: namespace.to_string(),
        owner,
    }
}
