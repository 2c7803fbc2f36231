//! The ADS gRPC server: [`XdsServer`] is the handle the control plane keeps (feed snapshots,
//! read status and counters); [`AdsService`] serves Envoy's `AggregatedDiscoveryService`.

mod delta;
mod grpc;
pub mod incoming;
pub mod node_limits;
pub mod peer;
pub mod registry;
mod requests;
mod sotw;
mod stream;
mod subscriptions;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::TcpListener;

use crate::cache::SnapshotCache;
use crate::metrics::XdsMetrics;
use crate::snapshot::Snapshot;
use crate::status::ProxyStatus;
pub use grpc::AdsService;
use peer::VerifiedIdentity;
use registry::{NackRecord, ProxyNode, Registry, StreamMode};

/// What the control plane learns from the server, and how it provides a first snapshot.
/// Every method has a no-op default.
pub trait SnapshotProvider: Send + Sync + 'static {
    /// A stream of a proxy whose node id has no snapshot yet: compute one now (or return
    /// `None` and call `set_snapshot` later).
    fn snapshot_for(&self, _node: &ProxyNode) -> Option<Arc<Snapshot>> {
        None
    }
    /// A stream connected (called before `snapshot_for`); `identity` is who it was
    /// authenticated as (a verified client certificate or bearer token), if anyone.
    fn on_connect(
        &self,
        _node: &ProxyNode,
        _connection_id: u64,
        _identity: Option<&VerifiedIdentity>,
    ) {
    }
    /// A stream ended.
    fn on_disconnect(&self, _node: &ProxyNode, _connection_id: u64) {}
    /// A proxy rejected a response.
    fn on_nack(&self, _node_id: &str, _type_url: &str, _nack: &NackRecord) {}
}

/// State shared by the handle and every stream.
pub(crate) struct Shared {
    pub cache: SnapshotCache,
    pub registry: Registry,
    pub metrics: XdsMetrics,
    pub provider: Option<Arc<dyn SnapshotProvider>>,
    pub subscriptions: subscriptions::Subscriptions,
    next_nonce: AtomicU64,
}

impl Shared {
    pub fn next_nonce(&self) -> String {
        (self.next_nonce.fetch_add(1, Ordering::Relaxed) + 1).to_string()
    }
}

/// Handle to the xDS server. Cheap to clone.
#[derive(Clone)]
pub struct XdsServer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for XdsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdsServer").finish_non_exhaustive()
    }
}

impl Default for XdsServer {
    fn default() -> Self {
        Self::new(None)
    }
}

impl XdsServer {
    /// A server with an empty cache; `provider` is told about connections and asked for the
    /// first snapshot of proxies the cache does not know.
    pub fn new(provider: Option<Arc<dyn SnapshotProvider>>) -> Self {
        Self {
            shared: Arc::new(Shared {
                cache: SnapshotCache::new(),
                registry: Registry::default(),
                metrics: XdsMetrics::default(),
                provider,
                subscriptions: Default::default(),
                next_nonce: AtomicU64::new(0),
            }),
        }
    }

    /// The snapshot cache (`set_snapshot`, `update`, ...).
    pub fn cache(&self) -> &SnapshotCache {
        &self.shared.cache
    }

    /// Shorthand for `cache().set_snapshot(..)`.
    pub fn set_snapshot(&self, node_id: &str, snapshot: Snapshot) {
        self.shared.cache.set_snapshot(node_id, snapshot);
    }

    /// Connections and their per-type records.
    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    /// Counters.
    pub fn metrics(&self) -> &XdsMetrics {
        &self.shared.metrics
    }

    /// One row per connected stream, for `/debug/syncz`.
    pub fn sync_status(&self) -> Vec<ProxyStatus> {
        self.shared
            .registry
            .connections()
            .into_iter()
            .map(ProxyStatus::from)
            .collect()
    }

    /// The ADS service, to add to a `tonic::transport::Server` next to other services.
    pub fn service(&self) -> AdsService {
        AdsService::new(self.shared.clone())
    }

    /// Serves ADS (plaintext HTTP/2) on an already bound listener until `shutdown` resolves;
    /// connections that stay silent are closed ([`incoming::FIRST_BYTES_TIMEOUT`]).
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        self.serve_with(listener, shutdown, ConnectionOptions::default())
            .await
    }

    /// [`Self::serve`] with keepalive and connection-age settings.
    pub async fn serve_with(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
        options: ConnectionOptions,
    ) -> Result<(), tonic::transport::Error> {
        options
            .server_builder()
            .add_service(self.service())
            .serve_with_incoming_shutdown(incoming::speaking(listener), shutdown)
            .await
    }

    /// Binds `addr` and serves in a background task; returns the bound address.
    pub async fn spawn(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let server = self.clone();
        tokio::spawn(async move {
            if let Err(e) = server.serve(listener, std::future::pending()).await {
                tracing::error!(error = %e, "xDS server stopped");
            }
        });
        Ok(bound)
    }
}

/// HTTP/2 connection settings of an ADS server (istiod's `--keepaliveInterval`,
/// `--keepaliveTimeout`, `--keepaliveMaxServerConnectionAge`). `None` keeps tonic's default
/// (no pings; connections live until either side closes them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    pub keepalive_interval: Option<std::time::Duration>,
    pub keepalive_timeout: Option<std::time::Duration>,
    /// After this long a connection is sent GOAWAY, so proxies reconnect and spread over the
    /// replicas that exist now.
    pub max_connection_age: Option<std::time::Duration>,
}

impl ConnectionOptions {
    /// A tonic server builder with these settings (for ADS on other transports, e.g. TLS).
    pub fn server_builder(&self) -> tonic::transport::Server {
        let builder = tonic::transport::Server::builder()
            .http2_keepalive_interval(self.keepalive_interval)
            .http2_keepalive_timeout(self.keepalive_timeout);
        match self.max_connection_age {
            Some(age) => builder.max_connection_age(age),
            None => builder,
        }
    }
}

/// Registers a stream on creation and cleans up (registry, gauge, callback) when dropped.
pub(crate) struct Connection {
    shared: Arc<Shared>,
    pub node: ProxyNode,
    pub id: u64,
}

impl Connection {
    pub fn open(
        shared: Arc<Shared>,
        node: ProxyNode,
        mode: StreamMode,
        identity: Option<VerifiedIdentity>,
    ) -> Self {
        let id = shared
            .registry
            .register(node.clone(), mode, identity.clone());
        shared
            .metrics
            .connected_proxies
            .fetch_add(1, Ordering::Relaxed);
        shared
            .metrics
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        let verified = identity.as_ref().map_or("none", |i| i.spiffe.as_str());
        tracing::info!(node = %node.id, connection_id = id, ?mode, verified, "proxy connected");
        if let Some(p) = &shared.provider {
            p.on_connect(&node, id, identity.as_ref());
            if shared.cache.snapshot(&node.id).is_none()
                && let Some(snapshot) = p.snapshot_for(&node)
            {
                shared.cache.set_shared(&node.id, snapshot);
            }
        }
        Self { shared, node, id }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.registry.deregister(self.id);
        self.shared
            .metrics
            .connected_proxies
            .fetch_sub(1, Ordering::Relaxed);
        tracing::info!(node = %self.node.id, connection_id = self.id, "proxy disconnected");
        if let Some(p) = &self.shared.provider {
            p.on_disconnect(&self.node, self.id);
        }
    }
}
