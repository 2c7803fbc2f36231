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
//! - [`decision`]: Istio's decision table: the API server's selectors (namespace and pod
//!   labels) and the injector's own checks (pod label/annotation, policy, never/always
//!   selectors, hostNetwork).
//! - [`native`]: native sidecar layout where the cluster's kubelets support it
//!   (`ENABLE_NATIVE_SIDECARS`).
//! - [`workload`]: which kinds carry a pod template and where; the per-object entry point.
//! - [`pod`]: the pod spec mutation itself (init container, sidecar, volumes, labels).
//! - [`template`]: the injected containers and volumes themselves.
//! - [`probes`]: rewriting of the app's HTTP/TCP/gRPC probes through the agent port.
//! - [`yaml`]: multi-document YAML in and out (what `lateen kube-inject` uses).
//! - [`patch`]: RFC 6902 JSON Patch between the original and the injected pod.
//! - [`webhook`]: the `admission.k8s.io/v1` AdmissionReview handlers (injection, and
//!   validation through a pluggable validator) and their HTTPS server.
//!
//! Offline (`lateen kube-inject`): [`InjectConfig`] (defaults, or loaded with
//! [`InjectConfig::apply_inject_config_text`], [`InjectConfig::apply_values_text`],
//! [`InjectConfig::apply_mesh_config_text`]) and [`inject_yaml`] / [`inject_object`].
//!
//! Admission webhook (lateend, port 15017):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use lateen_inject::InjectConfig;
//! use lateen_inject::native::{NativeSidecarMode, NativeSidecars, NodeTable};
//! use lateen_inject::webhook::{ConfigValidator, Verdict, WebhookCert, WebhookState, serve};
//!
//! let cert = WebhookCert::generate_for_lateend()?; // or WebhookCert::from_pem_files(..)
//! let _ca_bundle = cert.ca_bundle(); // goes into the webhook configurations
//! // lateend's node watcher keeps this table current; without a cluster pass `nodes: None`.
//! let nodes = Arc::new(NodeTable::default());
//! let native = NativeSidecars { mode: NativeSidecarMode::Auto, nodes: Some(nodes) };
//! // lateend plugs Istio's validation in here; this one admits everything.
//! let validator: Arc<dyn ConfigValidator> =
//!     Arc::new(|_: &lateen_inject::webhook::AdmissionRequest<'_>| Verdict::allow());
//! let state = WebhookState::build(InjectConfig::default(), native, Some(validator));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:15017").await?;
//! serve(listener, cert.server_config()?, state.clone()).await?;
//! // state.config.store(..) swaps the config; state.stats counts outcomes.
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod annotations;
pub mod config;
pub mod decision;
mod error;
pub mod native;
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
