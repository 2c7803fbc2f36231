//! Envoy xDS v3 plumbing shared by the control plane and the data plane: the ADS server
//! (state-of-the-world and delta), per-proxy versions and nonces, ACK/NACK tracking, and the
//! ADS client. Keeps the generated Envoy protos (`envoy-types`) in this one leaf crate.
//!
//! Owns: the xDS protocol. Must not touch: Istio config translation or proxying.
//!
//! Control plane: build a [`Snapshot`] per proxy, `XdsServer::set_snapshot(node_id, snapshot)`,
//! serve `XdsServer::service()`, read `XdsServer::sync_status()` and `XdsServer::metrics()`.
//! A TLS listener that verified a client certificate passes its identity as the connection's
//! tonic `ConnectInfo` ([`AuthenticatedPeer`]); streams hand it to
//! `SnapshotProvider::on_connect`.
//! Data plane: [`client::AdsClient`].
//! Istio's certificate API (`IstioCertificateService`, server and client call):
//! [`ca_service`]. Envoy's Secret Discovery Service on a Unix socket, as an agent serves it
//! to its Envoy: [`sds`]. Istio's own `stats.PluginConfig` (the `istio.stats` filter), which
//! upstream Envoy's protos lack: [`istio_stats`].
#![forbid(unsafe_code)]

pub mod backoff;
pub mod ca_service;
pub mod cache;
pub mod client;
pub mod istio_stats;
pub mod metrics;
pub mod sds;
pub mod server;
pub mod snapshot;
pub mod status;
pub mod types;

pub use backoff::Backoff;
pub use cache::SnapshotCache;
pub use client::{AdsClient, AdsClientConfig, AdsHandler, AdsResponse, ClientMode};
pub use envoy_types;
pub use envoy_types::pb;
pub use metrics::XdsMetrics;
pub use prost;
pub use server::peer::{AuthenticatedPeer, VerifiedIdentity};
pub use server::registry::{ConnectionRecord, NackRecord, ProxyNode, StreamMode, TypeRecord};
pub use server::{AdsService, ConnectionOptions, SnapshotProvider, XdsServer};
pub use snapshot::{NamedResource, Snapshot, VersionedResource};
pub use status::{ProxyStatus, SyncState};
pub use tonic;
