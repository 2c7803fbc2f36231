//! Sidecar injection: adds the `lateen-init` init container and the `lateen-proxy` sidecar to
//! Kubernetes workloads, following Istio's labels, annotations and decision table. One
//! implementation serves `lateen kube-inject` and the admission webhook.
//!
//! Owns: the injection transform and the admission decision. Must not touch: the cluster.
//!
//! Map of the crate:
//! - [`config`]: the typed injector configuration ([`InjectConfig`]) and its file loaders.
//! - [`annotations`]: parsing and validation of the pod's `sidecar.istio.io/*`,
//!   `traffic.sidecar.istio.io/*` and `proxy.istio.io/config` annotations.
//! - [`decision`]: Istio's decision table (namespace labels, pod label/annotation, policy,
//!   never/always selectors, hostNetwork).
//! - [`workload`]: which kinds carry a pod template and where; the per-object entry point.
//! - [`pod`]: the pod spec mutation itself (init container, sidecar, volumes, labels).
//! - [`template`]: the injected containers and volumes themselves.
//! - [`probes`]: rewriting of the app's HTTP/TCP/gRPC probes through the agent port.
//! - [`yaml`]: multi-document YAML in and out (what `lateen kube-inject` uses).
//! - [`patch`]: RFC 6902 JSON Patch between the original and the injected pod.
//! - [`webhook`]: the `admission.k8s.io/v1` AdmissionReview handler and its HTTPS server.
#![forbid(unsafe_code)]

pub mod annotations;
pub mod config;
pub mod decision;
mod error;
pub mod patch;
pub mod pod;
pub mod probes;
pub mod template;
pub mod webhook;
pub mod workload;
pub mod yaml;

pub use config::InjectConfig;
pub use error::InjectError;
pub use workload::{Outcome, inject_object};
pub use yaml::inject_yaml;

/// Name of the injected sidecar container (Istio: `istio-proxy`).
pub const PROXY_CONTAINER: &str = "lateen-proxy";
/// Name of the injected init container that installs the traffic capture (Istio: `istio-init`).
pub const INIT_CONTAINER: &str = "lateen-init";
/// Istio's names for the same containers: a user may pre-declare them to override fields.
pub const ISTIO_PROXY_CONTAINER: &str = "istio-proxy";
pub const ISTIO_INIT_CONTAINER: &str = "istio-init";

/// Annotation that marks an injected pod and lists what was added.
pub const STATUS_ANNOTATION: &str = "sidecar.istio.io/status";
