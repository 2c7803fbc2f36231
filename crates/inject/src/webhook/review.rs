//! One AdmissionReview in, one out. The pod is injected by the same code as `kube-inject`
//! ([`crate::pod::inject`]); the response carries the difference as a base64 JSON Patch.
//! Never panics on input: a malformed review gets an error response.
//!
//! The API server calls this webhook only for pods its selectors matched (namespace label
//! `istio-injection=enabled`, `istio.io/rev`, or the pod's own labels), so the review does not
//! look at namespace labels: it applies the injector's own checks ([`decision::admission_decision`]).

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use serde_json::Value;

use super::admission::{self, AdmissionRequest, Malformed};
use crate::config::{FailurePolicy, InjectConfig};
use crate::decision::{self, Decision, PodFacts, SkipReason};
use crate::native::NativeSidecars;
use crate::patch;
use crate::pod::{self, WorkloadMeta};

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

fn malformed(m: Malformed) -> Reviewed {
    Reviewed {
        response: m.response(),
        outcome: ReviewOutcome::Malformed(m.reason),
    }
}

/// Handles one AdmissionReview body for `revision` (empty: the config's revision); `native`
/// says whether the cluster runs native sidecars.
pub fn review(
    body: &[u8],
    cfg: &InjectConfig,
    revision: &str,
    native: &NativeSidecars,
) -> Reviewed {
    let doc = match admission::parse_json(body) {
        Ok(doc) => doc,
        Err(m) => return malformed(m),
    };
    let request = match admission::parse_request(&doc) {
        Ok(r) => r,
        Err(m) => return malformed(m),
    };
    review_request(&request, cfg, revision, native)
}

fn review_request(
    request: &AdmissionRequest<'_>,
    cfg: &InjectConfig,
    revision: &str,
    native: &NativeSidecars,
) -> Reviewed {
    let api_version = request.api_version.as_str();
    let uid = request.uid.as_str();
    let allow = |patch: Option<String>| {
        let mut response = admission::allowed(api_version, uid, &[]);
        if let Some(p) = patch {
            response["response"]["patchType"] = Value::from("JSONPatch");
            response["response"]["patch"] = Value::from(p);
        }
        response
    };
    if request.kind.kind != "Pod" || request.operation != "CREATE" {
        return Reviewed {
            response: allow(None),
            outcome: ReviewOutcome::Ignored,
        };
    }
    let Some(pod) = request.object.filter(|o| o.is_object()) else {
        return malformed(Malformed {
            api_version: api_version.to_string(),
            uid: uid.to_string(),
            reason: "request.object is missing or not a Pod".into(),
        });
    };
    let namespace = Some(request.namespace.as_str())
        .filter(|ns| !ns.is_empty())
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
            FailurePolicy::Fail => Reviewed {
                response: admission::denied(api_version, uid, 400, &reason),
                outcome: ReviewOutcome::FailedDenied(reason),
            },
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
    if let Decision::Skip(reason) = decision::admission_decision(cfg, &facts) {
        return Reviewed {
            response: allow(None),
            outcome: ReviewOutcome::Skipped(reason),
        };
    }
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let native_layout = !cfg.values.native_sidecars && native.for_pod(node_name);
    let mut adjusted;
    let cfg = if revision != cfg.effective_revision() || native_layout {
        adjusted = cfg.clone();
        adjusted.revision = revision.to_string();
        adjusted.values.native_sidecars |= native_layout;
        &adjusted
    } else {
        cfg
    };
    let mut injected = pod.clone();
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
    native: &NativeSidecars,
) -> Vec<u8> {
    review(body, cfg, revision, native).to_bytes()
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
