//! What the Kubernetes API server posts to the admission webhooks (an `AdmissionReview`,
//! whose object a user wrote): `/inject` and `/validate`, the same calls the HTTPS handler
//! makes with the request body.

use lateen_discovery::admission::IstioValidator;
use lateen_inject::InjectConfig;
use lateen_inject::native::NativeSidecars;
use lateen_inject::webhook::{ValidationStats, review, review_config};

/// An AdmissionReview body → the injection response (a JSON Patch or a refusal).
pub fn admission_inject(data: &[u8]) {
    let reviewed = review(
        data,
        &InjectConfig::default(),
        "",
        &NativeSidecars::default(),
    );
    let _ = reviewed.to_bytes();
}

/// An AdmissionReview body → Istio's configuration validation verdict.
pub fn admission_validate(data: &[u8]) {
    let validated = review_config(data, &IstioValidator, &ValidationStats::default());
    let _ = validated.response.to_string();
}
