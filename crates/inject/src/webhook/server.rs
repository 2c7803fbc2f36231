//! The webhook's HTTPS server (lateend serves it on 15017). Paths:
//! - `POST /inject`: review with the configured revision;
//! - `POST /inject/<revision>`: review as that revision's injector;
//! - Istio's forms `POST /inject/cluster/<id>/net/<network>` and
//!   `POST /inject/:ENV:cluster=<id>:net=<network>`: override the cluster ID and network of the
//!   injected proxy; `rev/<revision>` may be added as a pair.
//! - `POST /validate` (and anything under `/validate/`, as istiod): configuration validation by
//!   the server's [`ConfigValidator`]; 404 when the server has none. As in istiod, an empty body
//!   is 400 and a `Content-Type` other than `application/json` is 415.
//!
//! Anything else is 404 (wrong path) or 405 (not POST).

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::body_limit::{self, ReplyBody};
use super::review::{WebhookStats, review};
use super::validate::{ConfigValidator, ValidationStats, review_config};
use crate::InjectConfig;
use crate::native::NativeSidecars;

/// Largest AdmissionReview accepted (the API server caps objects well below this).
const MAX_BODY: usize = 16 * 1024 * 1024;
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the server needs: the injector config and the native-sidecar answer (both swappable at
/// run time), the optional config validator, counters.
pub struct WebhookState {
    pub config: ArcSwap<InjectConfig>,
    /// Whether injected pods get the native sidecar layout (see [`crate::native`]).
    pub native_sidecars: ArcSwap<NativeSidecars>,
    /// Serves `/validate` when set.
    pub validator: Option<Arc<dyn ConfigValidator>>,
    pub stats: WebhookStats,
    pub validation_stats: ValidationStats,
}

impl WebhookState {
    /// Injection only (`/validate` is 404); classic sidecars unless `global.nativeSidecars`.
    pub fn new(config: InjectConfig) -> Arc<WebhookState> {
        Self::build(config, NativeSidecars::default(), None)
    }

    /// Injection with `native_sidecars`, and validation when `validator` is given.
    pub fn build(
        config: InjectConfig,
        native_sidecars: NativeSidecars,
        validator: Option<Arc<dyn ConfigValidator>>,
    ) -> Arc<WebhookState> {
        Arc::new(WebhookState {
            config: ArcSwap::from_pointee(config),
            native_sidecars: ArcSwap::from_pointee(native_sidecars),
            validator,
            stats: WebhookStats::default(),
            validation_stats: ValidationStats::default(),
        })
    }
}

/// Serves the webhook over TLS on `listener` until the task is dropped/aborted. Errors of one
/// connection (handshake, protocol) are logged and do not stop the server.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<WebhookState>,
) -> std::io::Result<()> {
    serve_until(listener, tls, state, std::future::pending()).await
}

/// [`serve`] until `shutdown` completes (connections already accepted finish on their own).
pub async fn serve_until(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<WebhookState>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            // A peer that never finishes the handshake must not hold the task forever.
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "webhook TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
                tracing::debug!(%peer, error = %e, "webhook connection ended with an error");
            }
        });
    }
}

/// What an `/inject...` path asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InjectPath {
    pub revision: String,
    pub cluster: Option<String>,
    pub network: Option<String>,
}

impl InjectPath {
    /// None when the path is not one of the webhook's.
    pub fn parse(path: &str) -> Option<InjectPath> {
        let rest = path.strip_prefix("/inject")?;
        let mut out = InjectPath::default();
        if rest.is_empty() || rest == "/" {
            return Some(out);
        }
        let rest = rest.strip_prefix('/')?.trim_end_matches('/');
        if let Some(env) = rest.strip_prefix(":ENV:") {
            for pair in env.split(':') {
                match pair.split_once('=') {
                    Some(("cluster", v)) => out.cluster = Some(v.to_string()),
                    Some(("net", v)) => out.network = Some(v.to_string()),
                    _ => return None,
                }
            }
            return Some(out);
        }
        let segments: Vec<&str> = rest.split('/').collect();
        if let [revision] = segments.as_slice() {
            out.revision = revision.to_string();
            return Some(out);
        }
        // Pairs; Istio writes `net/` with an empty network when none is set.
        let mut it = segments.into_iter();
        while let Some(key) = it.next() {
            let value = it.next().unwrap_or_default().to_string();
            match key {
                "cluster" => out.cluster = Some(value),
                "net" => out.network = Some(value),
                "rev" => out.revision = value,
                _ => return None,
            }
        }
        Some(out)
    }

    /// The config to review with: the server's, with the path's cluster/network overrides.
    pub fn apply<'a>(&self, config: &'a InjectConfig) -> std::borrow::Cow<'a, InjectConfig> {
        let cluster = self.cluster.as_deref().filter(|c| !c.is_empty());
        let network = self.network.as_deref().filter(|n| !n.is_empty());
        if cluster.is_none() && network.is_none() {
            return std::borrow::Cow::Borrowed(config);
        }
        let mut owned = config.clone();
        if let Some(c) = cluster {
            owned.values.cluster_id = c.to_string();
        }
        if let Some(n) = network {
            owned.values.network = n.to_string();
        }
        std::borrow::Cow::Owned(owned)
    }
}

fn text(status: StatusCode, body: &str) -> Response<ReplyBody> {
    let mut resp = Response::new(ReplyBody::from(Full::new(Bytes::from(body.to_string()))));
    *resp.status_mut() = status;
    resp
}

fn is_validate_path(path: &str) -> bool {
    path == "/validate" || path.starts_with("/validate/")
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<WebhookState>,
) -> Result<Response<ReplyBody>, std::convert::Infallible> {
    let path = req.uri().path();
    let route = if is_validate_path(path) {
        match &state.validator {
            Some(v) => Route::Validate(v.clone()),
            None => return Ok(text(StatusCode::NOT_FOUND, "not found\n")),
        }
    } else {
        match InjectPath::parse(path) {
            Some(params) => Route::Inject(params),
            None => return Ok(text(StatusCode::NOT_FOUND, "not found\n")),
        }
    };
    if req.method() != Method::POST {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"));
    }
    let json_content = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/json");
    let content_length = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse().ok());
    let body = match body_limit::read(req.into_body(), content_length, MAX_BODY).await {
        Ok(body) => body,
        Err(too_large) => return Ok(too_large.reply()),
    };
    let response_body = match route {
        Route::Inject(params) => {
            let config = state.config.load();
            let config = params.apply(&config);
            let native = state.native_sidecars.load();
            let reviewed = review(&body, &config, &params.revision, &native);
            state.stats.record(&reviewed.outcome);
            reviewed.to_bytes()
        }
        Route::Validate(validator) => {
            let http_error = |status, message: &str| {
                state
                    .validation_stats
                    .http_error
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(text(status, message))
            };
            if body.is_empty() {
                return http_error(StatusCode::BAD_REQUEST, "no body found\n");
            }
            if !json_content {
                return http_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "invalid Content-Type, want `application/json`\n",
                );
            }
            let validated = review_config(&body, validator.as_ref(), &state.validation_stats);
            validated.response.to_string().into_bytes()
        }
    };
    let mut resp = Response::new(ReplyBody::from(Full::new(Bytes::from(response_body))));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

enum Route {
    Inject(InjectPath),
    Validate(Arc<dyn ConfigValidator>),
}

#[cfg(test)]
mod tests {
    use super::InjectPath;

    #[test]
    fn inject_paths() {
        let p = |s: &str| InjectPath::parse(s);
        assert_eq!(p("/inject"), Some(InjectPath::default()));
        assert_eq!(p("/inject/"), Some(InjectPath::default()));
        assert_eq!(p("/inject/canary").unwrap().revision, "canary");
        let istio = p("/inject/cluster/Kubernetes/net/").unwrap();
        assert_eq!(istio.cluster.as_deref(), Some("Kubernetes"));
        assert_eq!(istio.network.as_deref(), Some(""));
        let env = p("/inject/:ENV:cluster=east:net=n1").unwrap();
        assert_eq!(
            (env.cluster.as_deref(), env.network.as_deref()),
            (Some("east"), Some("n1"))
        );
        let with_rev = p("/inject/cluster/east/net/n1/rev/canary").unwrap();
        assert_eq!(with_rev.revision, "canary");
        assert_eq!(p("/injector"), None);
        assert_eq!(p("/other"), None);
        assert_eq!(p("/inject/a/b/c/d"), None);
        assert!(super::is_validate_path("/validate"));
        assert!(super::is_validate_path("/validate/"));
        assert!(!super::is_validate_path("/validated"));
        let cfg = crate::InjectConfig::default();
        let applied = with_rev.apply(&cfg);
        assert_eq!(
            (
                applied.values.cluster_id.as_str(),
                applied.values.network.as_str()
            ),
            ("east", "n1")
        );
        assert!(matches!(
            p("/inject").unwrap().apply(&cfg),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
