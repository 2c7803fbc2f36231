//! The admission webhook: [`review`] turns an `admission.k8s.io/v1` AdmissionReview into its
//! response (RFC 6902 JSON Patch), [`server`] serves it over HTTPS on `/inject`, [`cert`] makes or
//! loads its serving certificate.

pub mod cert;
pub mod review;
pub mod server;

pub use cert::{CertError, ServingCa, WebhookCert};
pub use review::{NamespaceLabels, ReviewOutcome, Reviewed, WebhookStats, review};
pub use server::{InjectPath, WebhookState, serve, serve_until};
