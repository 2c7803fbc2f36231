//! The debug HTTP server (port 15014 like istiod's): `/debug/syncz` (per proxy and type: sent
//! and acknowledged versions, last NACK), `/debug/config_dump?proxyID=ID` (the resources
//! served to one proxy), `/debug/configz` (accepted config resources), `/metrics`, `/ready`
//! ([`crate::readiness`]), and the dashboard under `/dashboard/` ([`crate::dashboard`]). lateend serves the same endpoints on `--http-address` (8080, istiod's
//! `--httpAddr`), where the rendered Deployment's readiness probe asks.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use lateen_xds::pb::envoy::config::cluster::v3::Cluster;
use lateen_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use lateen_xds::pb::envoy::config::listener::v3::Listener;
use lateen_xds::pb::envoy::config::route::v3::RouteConfiguration;
use lateen_xds::prost::Message;
use lateen_xds::types;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::push::ControlPlane;

/// How long a debug connection may wait without sending a request (issue #16 item 7).
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, cp: Arc<ControlPlane>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "debug server accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let cp = cp.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let cp = cp.clone();
                async move { Ok::<_, Infallible>(handle(&cp, &req)) }
            });
            // A connection that sends no request head within the timeout (a silent one, or
            // one idle between requests) is closed instead of being held.
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(IDLE_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json_reply(value: &Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".to_string());
    reply(StatusCode::OK, "application/json", body)
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

/// Minimal `%XX` decoding (node ids contain `~` and `.`, sometimes escaped by clients).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// 200 once every readiness condition is met; 503 naming the pending ones before.
fn ready(cp: &ControlPlane) -> Response<Full<Bytes>> {
    let pending = cp.readiness().pending();
    if pending.is_empty() {
        reply(StatusCode::OK, "text/plain", "ready\n".to_string())
    } else {
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("not ready: waiting for {}\n", pending.join(", ")),
        )
    }
}

fn handle(cp: &ControlPlane, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        path if path == "/dashboard" || path.starts_with("/dashboard/") => {
            let (status, content_type, body) =
                crate::dashboard::respond(cp, path, |name| query_param(req, name));
            reply(status, content_type, body)
        }
        "/ready" => ready(cp),
        "/metrics" => reply(
            StatusCode::OK,
            crate::metrics::CONTENT_TYPE,
            crate::metrics::render(cp),
        ),
        "/debug/syncz" => {
            let rows = cp.xds().map(|x| x.sync_status()).unwrap_or_default();
            json_reply(&serde_json::to_value(rows).unwrap_or(Value::Null))
        }
        "/debug/configz" => {
            let config = cp.config();
            let items: Vec<Value> = config
                .resources
                .iter()
                .map(|r| json!({"kind": r.kind().to_string(), "namespace": r.namespace(), "name": r.name(), "spec": r.spec_json()}))
                .collect();
            json_reply(
                &json!({"mesh": serde_json::to_value(&config.mesh).unwrap_or(Value::Null), "resources": items}),
            )
        }
        "/debug/config_dump" => match query_param(req, "proxyID") {
            None => reply(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "missing ?proxyID=\n".to_string(),
            ),
            Some(id) => match cp.xds().and_then(|x| x.cache().snapshot(&id)) {
                None => reply(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    format!("no snapshot for proxy {id}\n"),
                ),
                Some(snapshot) => json_reply(&dump(&id, &snapshot)),
            },
        },
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "endpoints: /dashboard/ /debug/syncz /debug/config_dump?proxyID= /debug/configz /metrics /ready\n"
                .to_string(),
        ),
    }
}

/// Resources of a snapshot by xDS short type name, each with its version and a readable form.
fn dump(id: &str, snapshot: &lateen_xds::Snapshot) -> Value {
    let mut by_type = serde_json::Map::new();
    for type_url in snapshot.type_urls() {
        let items: Vec<Value> = snapshot
            .resources(type_url)
            .map(|(name, r)| {
                json!({"name": name, "version": r.version, "config": readable(type_url, &r.resource.value)})
            })
            .collect();
        by_type.insert(types::short_name(type_url).to_string(), Value::Array(items));
    }
    json!({"proxyID": id, "resources": by_type})
}

fn readable(type_url: &str, bytes: &[u8]) -> String {
    fn dbg<M: Message + Default + std::fmt::Debug>(bytes: &[u8]) -> String {
        M::decode(bytes).map_or_else(|e| format!("<undecodable: {e}>"), |m| format!("{m:?}"))
    }
    match type_url {
        types::CLUSTER => dbg::<Cluster>(bytes),
        types::ENDPOINT => dbg::<ClusterLoadAssignment>(bytes),
        types::LISTENER => dbg::<Listener>(bytes),
        types::ROUTE => dbg::<RouteConfiguration>(bytes),
        _ => format!("<{} bytes>", bytes.len()),
    }
}
