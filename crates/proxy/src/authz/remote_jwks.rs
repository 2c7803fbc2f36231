//! Envoy's `remote_jwks` for the JWT filter: a provider's keys fetched from its `http_uri`
//! through the named cluster (so through the mesh: the cluster's endpoints, its mTLS when it
//! has any, the proxy's connection pool), kept for `cache_duration` (Envoy's default 10
//! minutes; Istio sends 5), and fetched again on the first request with a token after that.
//! As Envoy without `async_fetch`, a request carrying a token for the provider waits for the
//! fetch; the fetch is bounded (the `http_uri` timeout, a body of at most
//! [`MAX_JWKS_BYTES`]) and one at a time per provider. A fetch that fails — no such cluster,
//! no endpoint, a connection error, a status other than 200, a body that is not a JSON Web
//! Key Set — is logged with the URI and the reason, and the request gets Envoy's 401
//! `Jwks remote fetch is failed`; the failure is remembered for [`RETRY_AFTER`] so a broken
//! key server is not asked again by every request. Keys fetched earlier stay in use until
//! their cache time ends.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use super::jwt::{Jwks, JwtAuthn};
use crate::config::Snapshot;
use crate::http::body::ProxyBody;
use crate::upstream::pool::{Pool, Target};

/// The largest key set accepted (Envoy has no limit; a JWKS is a few KiB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// How long a failed fetch is remembered before a request may try again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Envoy's default `cache_duration`.
pub const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(600);

/// Where a provider's keys come from, and what was fetched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteJwks {
    pub uri: String,
    /// The cluster the fetch goes through (`http_uri.cluster`).
    pub cluster: String,
    #[serde(with = "crate::config::duration")]
    pub timeout: Duration,
    #[serde(with = "crate::config::duration")]
    pub cache_duration: Duration,
    #[serde(skip)]
    state: Arc<State>,
}

impl PartialEq for RemoteJwks {
    fn eq(&self, other: &RemoteJwks) -> bool {
        (&self.uri, &self.cluster, self.timeout, self.cache_duration)
            == (
                &other.uri,
                &other.cluster,
                other.timeout,
                other.cache_duration,
            )
    }
}

#[derive(Debug, Default)]
struct State {
    cached: Mutex<Cached>,
    /// Held while fetching: one fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Cached {
    keys: Option<(Jwks, Instant)>,
    failed_at: Option<Instant>,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URI: {0}")]
    Uri(String),
    #[error("no cluster {0:?} in the configuration")]
    NoCluster(String),
    #[error("cluster {0:?} has no endpoint")]
    NoEndpoint(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Upstream(#[from] crate::upstream::pool::UpstreamError),
    #[error("answered with status {0}")]
    Status(u16),
    #[error("reading the body: {0}")]
    Body(String),
    #[error("the body is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the body is not a JSON Web Key Set: {0}")]
    NotJwks(String),
}

impl RemoteJwks {
    pub fn new(uri: String, cluster: String, timeout: Duration, cache_duration: Duration) -> Self {
        RemoteJwks {
            uri,
            cluster,
            timeout,
            cache_duration,
            state: Arc::default(),
        }
    }

    /// The keys in use: fetched and within their cache time.
    pub fn keys(&self) -> Option<Jwks> {
        let cached = lock(&self.state.cached);
        match &cached.keys {
            Some((keys, at)) if at.elapsed() < self.cache_duration => Some(keys.clone()),
            _ => None,
        }
    }

    /// Whether a request should fetch: no usable keys and no failure just now.
    fn wants_fetch(&self) -> bool {
        if self.keys().is_some() {
            return false;
        }
        let cached = lock(&self.state.cached);
        cached
            .failed_at
            .is_none_or(|at| at.elapsed() >= RETRY_AFTER)
    }

    /// Fetches the keys if they are due (one fetch at a time; waiters see its result).
    async fn refresh(&self, snapshot: &Snapshot, pool: &Pool) {
        if !self.wants_fetch() {
            return;
        }
        let _one = self.state.fetching.lock().await;
        if !self.wants_fetch() {
            return;
        }
        let result = self.fetch(snapshot, pool).await;
        let mut cached = lock(&self.state.cached);
        match result {
            Ok(keys) => {
                tracing::info!(uri = %self.uri, cluster = %self.cluster, "fetched the JWKS");
                cached.keys = Some((keys, Instant::now()));
                cached.failed_at = None;
            }
            Err(e) => {
                tracing::warn!(uri = %self.uri, cluster = %self.cluster, error = %e, "JWKS fetch failed; tokens of this provider get 401");
                cached.failed_at = Some(Instant::now());
            }
        }
    }

    async fn fetch(&self, snapshot: &Snapshot, pool: &Pool) -> Result<Jwks, FetchError> {
        let uri: http::Uri = self
            .uri
            .parse()
            .map_err(|e: http::uri::InvalidUri| FetchError::Uri(e.to_string()))?;
        let authority = uri
            .authority()
            .ok_or_else(|| FetchError::Uri("no host".into()))?
            .to_string();
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
        let cluster = snapshot
            .clusters
            .get(&self.cluster)
            .ok_or_else(|| FetchError::NoCluster(self.cluster.clone()))?;
        let index = cluster
            .hosts
            .pick(None, None)
            .ok_or_else(|| FetchError::NoEndpoint(self.cluster.clone()))?;
        let endpoint = cluster.hosts.endpoints[index];
        let request = http::Request::get(path)
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, "application/json")
            .body(ProxyBody::empty())
            .map_err(|e| FetchError::Uri(e.to_string()))?;
        let version = crate::http::forward::upstream_version(cluster, http::Version::HTTP_11);
        let exchange = async {
            let response = pool
                .send(
                    Target::of(cluster, endpoint),
                    version,
                    cluster.connect_timeout,
                    request,
                )
                .await?;
            if response.status() != http::StatusCode::OK {
                return Err(FetchError::Status(response.status().as_u16()));
            }
            let body = http_body_util::Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        FetchError::TooLarge
                    } else {
                        FetchError::Body(e.to_string())
                    }
                })?
                .to_bytes();
            let text = String::from_utf8(body.to_vec())
                .map_err(|_| FetchError::NotJwks("not UTF-8".into()))?;
            Jwks::parse_strict(&text).map_err(|e| FetchError::NotJwks(e.to_string()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| FetchError::Timeout(self.timeout))?
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Before the JWT filter runs: fetches the keys of every remote provider the request
/// carries a token for, when they are due.
pub async fn prepare(
    filter: &JwtAuthn,
    request: &http::request::Parts,
    snapshot: &Snapshot,
    pool: &Pool,
) {
    for provider in &filter.providers {
        if let Some(remote) = &provider.remote
            && provider.has_token(request)
        {
            remote.refresh(snapshot, pool).await;
        }
    }
}
