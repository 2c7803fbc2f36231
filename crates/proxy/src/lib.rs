//! lateen-proxy, the data plane: a sidecar that proxies TCP, HTTP/1.1, HTTP/2 and gRPC for
//! one workload, with Istio's ports, metrics and capture semantics.
//!
//! Map: [`config`] (model, YAML bootstrap, compiled snapshots) → [`proxy`] binds listeners
//! and starts [`worker`]s → [`listener`] dispatches each connection (capture, protocol
//! detection in [`net`]) → [`http`] or [`tcp`] → [`upstream`] pools. [`xds`] runs the proxy
//! from a control plane instead of a file (`lateen-proxy sidecar|router`). [`tls`] is Istio's
//! mutual TLS between sidecars (inbound termination by PeerAuthentication mode, upstream
//! origination, peer identity). [`trace`] makes and exports spans. [`metrics`], [`admin`] and
//! [`drain`] serve the whole process; [`status`] is the agent's 15020 with the application's
//! metrics merged in; [`series_cap`] bounds the metrics' label sets a peer can create;
//! [`stats_overrides`] applies Telemetry `metrics` overrides (Istio's `istio.stats`) per
//! listener;
//! [`access_log`] writes Envoy-format access logs from writer threads, off the request path;
//! [`overload`] caps downstream and upstream connections, as Envoy's overload manager.
//!
//! Owns: the data path. Must not touch: control-plane translation (lateend's job) or
//! iptables (the capture crate's).
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod authz;
pub mod config;
pub mod drain;
pub mod exposition;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod overload;
pub mod proxy;
pub mod series_cap;
pub mod stats_overrides;
pub mod status;
pub mod tcp;
pub mod tls;
pub mod trace;
pub mod upstream;
pub mod worker;
pub mod xds;
