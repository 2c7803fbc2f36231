//! The agent's status port (Istio's 15020) as pilot-agent serves it for Prometheus:
//! `/stats/prometheus` is the proxy's own metrics merged with the application's, which it
//! scrapes at scrape time from `127.0.0.1:PORT/PATH` named by `ISTIO_PROMETHEUS_ANNOTATIONS`
//! (the injector moves the pod's `prometheus.io/*` annotations there and points them at this
//! port). An application that does not answer, answers late or with an error leaves the
//! proxy's metrics served alone: a scrape never fails for the application's sake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::admin::{AdminState, reply};
use crate::exposition;

/// How long the application's metrics may take.
const APP_SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of the application's metrics that is read.
const APP_SCRAPE_LIMIT: usize = 16 << 20;

/// Where the application serves its own metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppMetrics {
    pub port: u16,
    pub path: String,
}

impl AppMetrics {
    /// From `ISTIO_PROMETHEUS_ANNOTATIONS` (`{"scrape":"true","port":"9080","path":"/metrics"}`):
    /// none when scraping is off or no port is named; the path defaults to `/metrics`, as
    /// Prometheus's own default.
    pub fn from_annotations(json: &str) -> Result<Option<AppMetrics>, String> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|err| format!("ISTIO_PROMETHEUS_ANNOTATIONS: not JSON: {err}"))?;
        let field = |key: &str| value.get(key).and_then(|v| v.as_str()).map(str::trim);
        if field("scrape") == Some("false") {
            return Ok(None);
        }
        let Some(port) = field("port") else {
            return Ok(None);
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("ISTIO_PROMETHEUS_ANNOTATIONS: port: {port:?} is not a port"))?;
        let path = match field("path") {
            Some(path) if path.starts_with('/') => path.to_string(),
            Some(path) if !path.is_empty() => format!("/{path}"),
            _ => "/metrics".to_string(),
        };
        Ok(Some(AppMetrics { port, path }))
    }
}

/// Binds `address` and serves the status port there; the application's metrics are merged
/// when `annotations` (`ISTIO_PROMETHEUS_ANNOTATIONS`) names them. A bad value is logged and
/// the proxy's metrics are served alone.
pub async fn start(
    address: SocketAddr,
    state: Arc<AdminState>,
    annotations: Option<&str>,
) -> std::io::Result<()> {
    let app = match annotations.map(AppMetrics::from_annotations) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(app))) => Some(app),
        Some(Err(err)) => {
            tracing::warn!("{err}; serving the proxy's metrics alone on the status port");
            None
        }
    };
    let listener = crate::admin::bind(address, "status").await?;
    tracing::info!(%address, app = ?app, "status port: merged Prometheus metrics on /stats/prometheus");
    tokio::spawn(serve(listener, state, app));
    Ok(())
}

/// Serves the status port until the process ends.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, app: Option<AppMetrics>) {
    let app = Arc::new(app);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::debug!("status accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (state, app) = (state.clone(), app.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (state, app) = (state.clone(), app.clone());
                async move {
                    Ok::<_, std::convert::Infallible>(respond(&state, app.as_ref(), request).await)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(
    state: &AdminState,
    app: &Option<AppMetrics>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET || request.uri().path() != "/stats/prometheus" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".into(),
        );
    }
    let mut body = exposition::to_prometheus_text(&state.shared.metrics.encode_prometheus());
    if let Some(app) = app {
        match scrape_app(app).await {
            Ok(text) => {
                if !body.ends_with('\n') {
                    body.push('\n');
                }
                body.push_str(&without_eof(&text));
            }
            Err(err) => {
                tracing::debug!(port = app.port, path = %app.path, "application metrics not merged: {err}")
            }
        }
    }
    reply(StatusCode::OK, exposition::PROMETHEUS_TEXT, body)
}

/// OpenMetrics' closing `# EOF` would end the merged text early.
fn without_eof(text: &str) -> String {
    let mut out: String = text
        .lines()
        .filter(|line| *line != "# EOF")
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

async fn scrape_app(app: &AppMetrics) -> Result<String, String> {
    let address = SocketAddr::from(([127, 0, 0, 1], app.port));
    let fetch = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|err| format!("connect {address}: {err}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| format!("handshake: {err}"))?;
        tokio::spawn(connection);
        let request = Request::get(app.path.as_str())
            .header(header::HOST, address.to_string())
            .header(header::ACCEPT, "text/plain;version=0.0.4;q=1,*/*;q=0.1")
            .body(http_body_util::Empty::<Bytes>::new())
            .map_err(|err| format!("request: {err}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| format!("GET {}: {err}", app.path))?;
        if !response.status().is_success() {
            return Err(format!("GET {}: status {}", app.path, response.status()));
        }
        let body = Limited::new(response.into_body(), APP_SCRAPE_LIMIT)
            .collect()
            .await
            .map_err(|err| format!("reading {}: {err}", app.path))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| format!("{} is not UTF-8", app.path))
    };
    tokio::time::timeout(APP_SCRAPE_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("no answer in {APP_SCRAPE_TIMEOUT:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_annotations_the_injector_moved() {
        assert_eq!(
            AppMetrics::from_annotations(r#"{"scrape":"true","port":"9080","path":"/metrics"}"#),
            Ok(Some(AppMetrics {
                port: 9080,
                path: "/metrics".into()
            }))
        );
        assert_eq!(
            AppMetrics::from_annotations(r#"{"port":"8080","path":"stats"}"#),
            Ok(Some(AppMetrics {
                port: 8080,
                path: "/stats".into()
            }))
        );
        assert_eq!(
            AppMetrics::from_annotations(r#"{"scrape":"false","port":"9080"}"#),
            Ok(None)
        );
        assert_eq!(
            AppMetrics::from_annotations(r#"{"scrape":"true"}"#),
            Ok(None)
        );
        let err = AppMetrics::from_annotations(r#"{"port":"http"}"#).unwrap_err();
        assert!(err.contains("port") && err.contains("http"), "{err}");
        assert!(AppMetrics::from_annotations("{").is_err());
    }

    #[test]
    fn openmetrics_eof_is_dropped() {
        assert_eq!(without_eof("a 1\n# EOF\n"), "a 1\n");
    }
}
