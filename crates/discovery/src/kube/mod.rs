//! The Kubernetes cluster as a source of lateend's configuration and registry, beside (or
//! instead of) the folder.
//!
//! Map:
//! - [`client`]: `--kubeconfig` / `--context` / in-cluster ([`KubeArgs`], [`client()`]).
//! - [`watch`]: one `kube::runtime::watcher` per kind; a (re)list becomes one replacement of
//!   that kind's state; failures retry with backoff and are logged once.
//! - [`objects`]: the few fields kept of Services, EndpointSlices, Pods, Nodes, Namespaces.
//! - [`protocol`]: a Service port's protocol (`appProtocol`, port-name prefix).
//! - [`services`]: registry services from those objects, as istiod builds them.
//! - [`istio`]: Istio's custom resources through `lateen-api` (same parser, same messages).
//! - [`mesh`]: the `istio` and `istio-sidecar-injector` ConfigMaps; `discoverySelectors`.
//! - [`source`]: the watches, their store, and the rebuild that hands services to
//!   [`ControlPlane::set_cluster_services`](crate::push::ControlPlane::set_cluster_services)
//!   and configuration to [`ConfigSources`](crate::store::sources::ConfigSources).
//! - [`state`]: [`ClusterState`], what other parts read (namespace labels, kubelet versions,
//!   refused objects, synced).

pub mod client;
pub mod istio;
pub mod mesh;
pub mod objects;
pub mod protocol;
pub mod service_cache;
pub mod services;
pub mod source;
pub mod state;
mod telemetry_check;
pub mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use client::{KubeArgs, KubeError, client};
pub use istio::RejectedObject;
pub use source::KubeSource;
pub use state::ClusterState;

use crate::push::ControlPlane;
use crate::store::sources::ConfigSources;
use crate::webhook::WebhookFiles;

/// Connects to the cluster `opts` names, starts watching it into `cp` (through `sources`),
/// and waits — at most `wait` — until every watch has listed once, so the first proxies do
/// not get an empty mesh. `state` is what the source publishes (the webhook should already
/// hold it as its namespace labels).
pub async fn start(
    opts: &KubeArgs,
    cp: Arc<ControlPlane>,
    sources: Arc<ConfigSources>,
    state: Arc<ClusterState>,
    files: WebhookFiles,
    wait: Duration,
) -> Result<Arc<KubeSource>, KubeError> {
    let client = client(opts).await?;
    let source = KubeSource::start(client, cp, sources, state.clone(), files);
    let deadline = Instant::now() + wait;
    while !state.synced() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !state.synced() {
        tracing::warn!(
            waited = ?wait,
            "cluster not fully listed yet; serving with what is known, the rest follows"
        );
    }
    Ok(source)
}
