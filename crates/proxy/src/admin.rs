//! The proxy's own HTTP servers, off the data-path threads: admin (15000: `/config_dump`,
//! `/stats`, `/stats/prometheus`, `/listeners`, `/ready`, `POST /quitquitquit`), health
//! (15021: `/healthz/ready`) and metrics (15090: `/stats/prometheus`, in the format the
//! scraper's `Accept` asks for: [`crate::exposition`]).

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::exposition;
use crate::worker::{ListenerSet, Shared};

/// Which endpoints a server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRole {
    Admin,
    Health,
    Metrics,
}

pub struct AdminState {
    pub shared: Arc<Shared>,
    /// Set once listeners are bound and workers run.
    pub ready: AtomicBool,
    pub listeners: watch::Receiver<ListenerSet>,
}

impl AdminState {
    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.shared.drain.is_draining()
    }
}

pub async fn serve(listener: TcpListener, role: AdminRole, state: Arc<AdminState>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::debug!("admin accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(respond(&state, role, request)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(
    state: &AdminState,
    role: AdminRole,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    match (role, request.method(), path) {
        (AdminRole::Health, &Method::GET, "/healthz/ready")
        | (AdminRole::Admin, &Method::GET, "/ready") => {
            if state.is_ready() {
                text(StatusCode::OK, "LIVE\n")
            } else if state.shared.drain.is_draining() {
                text(StatusCode::SERVICE_UNAVAILABLE, "DRAINING\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n")
            }
        }
        (AdminRole::Metrics | AdminRole::Admin, &Method::GET, "/stats/prometheus") => {
            let accept = request
                .headers()
                .get(header::ACCEPT)
                .and_then(|value| value.to_str().ok());
            let format = exposition::negotiate(accept);
            let mut body = state.shared.metrics.encode_prometheus();
            if format == exposition::Format::PrometheusText {
                body = exposition::to_prometheus_text(&body);
            }
            reply(StatusCode::OK, format.content_type(), body)
        }
        (AdminRole::Admin, &Method::GET, "/stats") => {
            let mut body = String::new();
            state.shared.metrics.stats.render(&mut body);
            crate::trace::export::render_stats(&mut body);
            crate::access_log::writer::render_stats(&mut body);
            body.push_str(&format!(
                "lateen.config_version: {}\n",
                state.shared.config.version()
            ));
            body.push_str(&format!(
                "server.state: {}\n",
                if state.is_ready() { 0 } else { 1 }
            ));
            text(StatusCode::OK, body)
        }
        (AdminRole::Admin, &Method::GET, "/config_dump") => {
            let snapshot = state.shared.config.load();
            let dump = serde_json::json!({
                "version": state.shared.config.version(),
                "config": &*snapshot.source,
            });
            match serde_json::to_string_pretty(&dump) {
                Ok(body) => reply(StatusCode::OK, "application/json", body),
                Err(err) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot encode config: {err}\n"),
                ),
            }
        }
        (AdminRole::Admin, &Method::GET, "/listeners") => {
            let bound: Vec<_> = state
                .listeners
                .borrow()
                .iter()
                .map(|listener| serde_json::json!({"name": &*listener.name, "address": listener.address.to_string()}))
                .collect();
            reply(
                StatusCode::OK,
                "application/json",
                serde_json::Value::Array(bound).to_string(),
            )
        }
        (AdminRole::Admin, &Method::POST, "/quitquitquit")
        | (AdminRole::Admin, &Method::POST, "/drain_listeners") => {
            state.shared.drain.start();
            text(StatusCode::OK, "OK\n")
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    reply(status, "text/plain; charset=utf-8", body.into())
}

pub(crate) fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// Binds an admin-side address, naming it in the error.
pub async fn bind(address: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!("cannot bind {what} address {address}: {err}"),
        )
    })
}
