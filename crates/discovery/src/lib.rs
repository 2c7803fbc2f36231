//! `lateend`, the Lateen control plane: Istio configuration in, Envoy xDS out.
//!
//! Owns: the config folder store, the service registry (ServiceEntry, WorkloadEntry and
//! proxies a WorkloadGroup admits), translation of Istio resources into Envoy v3 resources per proxy,
//! debounced pushes, the debug/metrics HTTP endpoints, Istio's validation webhook verdicts, and
//! the wiring of the admission webhooks and of ADS over TLS, and the mesh CA. Must not touch: parsing/validation of Istio resources (`lateen-api`),
//! the xDS protocol (`lateen-xds`) or injection itself (`lateen-inject`); it only uses them.
//!
//! Map:
//! - [`store`]: a folder of YAML files, polled, validated per file, last good version kept;
//!   merged with the cluster's configuration.
//! - [`kube`]: the Kubernetes cluster as a source (Services, EndpointSlices, Pods, Nodes,
//!   Namespaces, MeshConfig and injector ConfigMaps, Istio's custom resources).
//! - [`proxy`]: who a connected proxy is (node id and metadata, as Istio's agent sends them).
//! - [`registry`]: services and their endpoints; [`registry::autoreg`] for proxies that
//!   register themselves on connect (only when a WorkloadGroup admits them,
//!   [`registry::workload_group`]) and leave after a grace period.
//! - [`translate`]: one [`lateen_xds::Snapshot`] per proxy (CDS, EDS, LDS, RDS).
//! - [`push`]: the shared control-plane state, the xDS snapshot provider and the debouncer.
//! - [`debug`] and [`metrics`]: `/debug/syncz`, `/debug/config_dump`, `/metrics`;
//!   [`dashboard`]: the web UI under `/dashboard/` on the same port.
//! - [`webhook`]: the admission webhooks on 15017 (`lateen-inject`'s server: injection, and
//!   [`admission`]: Istio's configuration validation with `lateen-api`'s rules) and the serving
//!   certificate; [`xds_tls`]: ADS over TLS on 15012, [`xds_peer`]: the mesh identity of a
//!   client that presents a certificate there, [`xds_auth`]: or of an ADS stream's token.
//! - [`cmdline`]: istiod's command line (`discovery --monitoringAddr=:15014 ...`), its
//!   environment and logging flags, as the rendered Deployment passes them.
//! - [`readiness`]: the conditions `/ready` (8080 and 15014) waits for.
//! - [`mesh_ca`]: the mesh CA (plugged-in, `istio-ca-secret`, or a kept folder) and Istio's
//!   certificate API on 15012 (TokenReview or bootstrap-token callers).
//! - [`cluster_writes`]: what istiod writes to the cluster (Leases, `istio-ca-root-cert`,
//!   webhook `caBundle`s, `status.validationMessages`), by one replica at a time.
#![forbid(unsafe_code)]

pub mod admission;
pub mod cluster_writes;
pub mod cmdline;
pub mod dashboard;
pub mod debug;
pub mod kube;
pub mod mesh_ca;
pub mod metrics;
pub mod proxy;
pub mod push;
pub mod readiness;
pub mod registry;
pub mod store;
pub mod translate;
pub mod webhook;
pub mod xds_auth;
pub mod xds_peer;
pub mod xds_tls;

pub use proxy::{InterceptionMode, Proxy, ProxyType};
pub use push::{ControlPlane, DebounceSettings};
pub use registry::{Registry, Service};
pub use store::{Config, FolderStore};
