//! `/validate`: the configuration-validation admission webhook's plumbing. What is valid is not
//! this crate's business: the server is given a [`ConfigValidator`] (lateend plugs in Istio's
//! rules from `lateen-api`). This module reads the AdmissionReview, hands the request over and
//! writes the verdict back as the API server expects it: `allowed` with `warnings`, or
//! `allowed: false` with the reason in `status.message`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::admission::{self, AdmissionRequest};

/// A validator's answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Admit, showing these warnings to the client (kubectl prints `Warning: ...`).
    Allow { warnings: Vec<String> },
    /// Refuse; `reason` is a short machine label (Istio's metric `reason`), `message` what the
    /// user sees after `admission webhook "..." denied the request: `.
    Deny {
        reason: &'static str,
        message: String,
    },
}

impl Verdict {
    pub fn allow() -> Self {
        Verdict::Allow {
            warnings: Vec::new(),
        }
    }
}

/// Decides whether a configuration object may be stored.
pub trait ConfigValidator: Send + Sync {
    fn validate(&self, request: &AdmissionRequest<'_>) -> Verdict;
}

impl<F: Fn(&AdmissionRequest<'_>) -> Verdict + Send + Sync> ConfigValidator for F {
    fn validate(&self, request: &AdmissionRequest<'_>) -> Verdict {
        self(request)
    }
}

/// Counters under Istio's validation metric names (`galley_validation_*`).
#[derive(Debug, Default)]
pub struct ValidationStats {
    pub passed: AtomicU64,
    pub failed: AtomicU64,
    /// Requests refused before review: no body, wrong content type (Istio's `http_error`).
    pub http_error: AtomicU64,
}

impl ValidationStats {
    /// `(name, value)` pairs: `galley_validation_passed`, `galley_validation_failed`,
    /// `galley_validation_http_error` (counters; Istio has no `_total` suffix on these).
    pub fn istio_metrics(&self) -> [(&'static str, u64); 3] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("galley_validation_passed", get(&self.passed)),
            ("galley_validation_failed", get(&self.failed)),
            ("galley_validation_http_error", get(&self.http_error)),
        ]
    }
}

/// The response AdmissionReview and the verdict it carries (`None`: the review was malformed).
#[derive(Debug, Clone)]
pub struct Validated {
    pub response: Value,
    pub verdict: Option<Verdict>,
}

/// Handles one AdmissionReview body with `validator`, counting the outcome in `stats`.
pub fn review_config(
    body: &[u8],
    validator: &dyn ConfigValidator,
    stats: &ValidationStats,
) -> Validated {
    let parsed = admission::parse_json(body).and_then(|doc| {
        let verdict = admission::parse_request(&doc).map(|request| {
            let verdict = validator.validate(&request);
            let response = match &verdict {
                Verdict::Allow { warnings } => {
                    admission::allowed(&request.api_version, &request.uid, warnings)
                }
                Verdict::Deny { message, .. } => {
                    admission::denied(&request.api_version, &request.uid, 0, message)
                }
            };
            (response, verdict)
        })?;
        Ok(verdict)
    });
    match parsed {
        Ok((response, verdict)) => {
            let counter = match &verdict {
                Verdict::Allow { .. } => &stats.passed,
                Verdict::Deny { reason, message } => {
                    tracing::info!(reason, "configuration refused: {message}");
                    &stats.failed
                }
            };
            counter.fetch_add(1, Ordering::Relaxed);
            Validated {
                response,
                verdict: Some(verdict),
            }
        }
        Err(m) => {
            tracing::warn!(reason = %m.reason, "malformed AdmissionReview on /validate");
            stats.failed.fetch_add(1, Ordering::Relaxed);
            Validated {
                response: m.response(),
                verdict: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(kind: &str) -> Vec<u8> {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {"uid": "u9", "kind": {"group": "g", "version": "v1", "kind": kind}, "operation": "CREATE", "object": {}},
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn verdicts_become_responses() {
        let validator = |r: &AdmissionRequest<'_>| {
            if r.kind.kind == "Bad" {
                Verdict::Deny {
                    reason: "invalid_resource",
                    message: "configuration is invalid: nope".into(),
                }
            } else {
                Verdict::Allow {
                    warnings: vec!["hm".into()],
                }
            }
        };
        let stats = ValidationStats::default();
        let ok = review_config(&body("Good"), &validator, &stats);
        assert_eq!(ok.response["response"]["allowed"], true);
        assert_eq!(ok.response["response"]["uid"], "u9");
        assert_eq!(ok.response["response"]["warnings"], json!(["hm"]));
        let bad = review_config(&body("Bad"), &validator, &stats);
        assert_eq!(bad.response["response"]["allowed"], false);
        assert_eq!(
            bad.response["response"]["status"]["message"],
            "configuration is invalid: nope"
        );
        let junk = review_config(b"{", &validator, &stats);
        assert!(junk.verdict.is_none());
        assert_eq!(junk.response["response"]["allowed"], false);
        assert_eq!(
            stats.istio_metrics().map(|(_, v)| v),
            [1, 2, 0],
            "passed, failed, http errors"
        );
    }
}
