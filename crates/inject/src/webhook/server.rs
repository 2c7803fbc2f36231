//! The webhook's HTTPS server (lateend serves it on 15017): `POST /inject` reviews with the
//! configured revision, `POST /inject/<revision>` with that revision. Anything else is 404/405.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::review::{NamespaceLabels, WebhookStats, review};
use crate::InjectConfig;

/// Largest AdmissionReview accepted (the API server caps objects well below this).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// What the server needs: the injector config (swappable at run time), namespace labels, counters.
pub struct WebhookState {
    pub config: ArcSwap<InjectConfig>,
    pub namespaces: Arc<dyn NamespaceLabels>,
    pub stats: WebhookStats,
}

impl WebhookState {
    pub fn new(config: InjectConfig, namespaces: Arc<dyn NamespaceLabels>) -> Arc<WebhookState> {
        Arc::new(WebhookState {
            config: ArcSwap::from_pointee(config),
            namespaces,
            stats: WebhookStats::default(),
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
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = listener.accept().await?;
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
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

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<WebhookState>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let revision = match path.as_str() {
        "/inject" | "/inject/" => String::new(),
        p => match p.strip_prefix("/inject/") {
            Some(rev) => rev.trim_end_matches('/').to_string(),
            None => return Ok(text(StatusCode::NOT_FOUND, "not found\n")),
        },
    };
    if req.method() != Method::POST {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("cannot read body: {e}\n"),
            ));
        }
    };
    let config = state.config.load();
    let reviewed = review(&body, &config, &revision, state.namespaces.as_ref());
    state.stats.record(&reviewed.outcome);
    let mut resp = Response::new(Full::new(Bytes::from(reviewed.to_bytes())));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
