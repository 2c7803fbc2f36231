//! The admission webhooks: [`review`] turns an `admission.k8s.io/v1` AdmissionReview for a Pod
//! into its response (RFC 6902 JSON Patch), [`validate`] answers configuration reviews with a
//! pluggable [`ConfigValidator`], [`admission`] is their shared envelope, [`server`] serves both
//! over HTTPS (`/inject...`, `/validate`), [`cert`] makes or loads its serving certificate.

pub mod admission;
pub mod body_limit;
pub mod cert;
pub mod review;
pub mod server;
pub mod validate;

pub use admission::{AdmissionRequest, GroupVersionKind};
pub use cert::{CertError, ServingCa, WebhookCert};
pub use review::{ReviewOutcome, Reviewed, WebhookStats, review};
pub use server::{InjectPath, WebhookState, serve, serve_until};
pub use validate::{ConfigValidator, Validated, ValidationStats, Verdict, review_config};
