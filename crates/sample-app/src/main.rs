//! `lateen-sample-app`: the demo's workloads. An HTTP service that answers with its name and
//! version and, when given `--call URL`s, calls each next service and includes their answers
//! (a Bookinfo-shaped chain: productpage → reviews → ratings, and details). Trace and
//! request-id headers are passed on to the calls, as Istio asks applications to do.
#![forbid(unsafe_code)]

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "lateen-sample-app",
    about = "Sample service for the Lateen demo"
)]
struct Args {
    /// Service name reported in answers.
    #[arg(long)]
    name: String,
    /// Version reported in answers (v1, v2 ...).
    #[arg(long, default_value = "v1")]
    version: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9080")]
    listen: SocketAddr,
    /// Services to call for every request (repeatable), e.g. http://reviews:9080/reviews.
    /// `URL@HOST:PORT` connects to HOST:PORT (the sidecar's egress listener) and sends the
    /// URL's host as the `Host` header, for meshes without traffic capture.
    #[arg(long)]
    call: Vec<String>,
}

/// Headers an application must copy from its request to its calls for tracing to work.
const PROPAGATED: &[&str] = &[
    "x-request-id",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "end-user",
];

fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Arc<Args>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!(
        "{} {} listening on {}",
        args.name,
        args.version,
        listener.local_addr()?
    );
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => continue,
        };
        let args = args.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let args = args.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&args, request).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(args: &Args, request: http::Request<Incoming>) -> http::Response<Full<Bytes>> {
    let mut calls = Vec::new();
    for url in &args.call {
        calls.push(call(url, request.headers()).await);
    }
    let body = serde_json::json!({
        "service": args.name,
        "version": args.version,
        "path": request.uri().path(),
        "calls": calls,
    });
    if request.uri().path() == "/productpage" {
        let mut response = http::Response::new(Full::new(Bytes::from(page(&body))));
        response.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return response;
    }
    let mut response = http::Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Bookinfo's page: who answered, down the chain of calls, as a small HTML page.
fn page(answer: &serde_json::Value) -> String {
    fn describe(answer: &serde_json::Value, depth: usize, out: &mut String) {
        let indent = "&nbsp;".repeat(depth * 4);
        let name = answer["service"].as_str().unwrap_or("?");
        let version = answer["version"].as_str().unwrap_or("?");
        out.push_str(&format!("<li>{indent}<b>{name}</b> {version}</li>\n"));
        for call in answer["calls"].as_array().into_iter().flatten() {
            if let Some(error) = call["error"].as_str() {
                out.push_str(&format!(
                    "<li>{indent}&nbsp;&nbsp;&nbsp;&nbsp;{} failed: {error}</li>\n",
                    call["url"].as_str().unwrap_or("?")
                ));
            } else if call["answer"].is_object() {
                describe(&call["answer"], depth + 1, out);
            } else {
                out.push_str(&format!(
                    "<li>{indent}&nbsp;&nbsp;&nbsp;&nbsp;{} answered {}</li>\n",
                    call["url"].as_str().unwrap_or("?"),
                    call["status"]
                ));
            }
        }
    }
    let mut list = String::new();
    describe(answer, 0, &mut list);
    format!(
        "<!doctype html>\n<html><head><title>Bookinfo on Lateen</title></head><body>\n<h1>Bookinfo on Lateen</h1>\n<p>This page was served by these services and versions:</p>\n<ul>\n{list}</ul>\n<pre>{answer:#}</pre>\n</body></html>\n"
    )
}

/// Calls the next service; its failure is reported in the answer, not turned into ours.
async fn call(target: &str, incoming: &http::HeaderMap) -> serde_json::Value {
    let (url, via) = match target.rsplit_once('@') {
        Some((url, via)) if !via.contains('/') => (url, Some(via)),
        _ => (target, None),
    };
    let result = async {
        let uri: http::Uri = url.parse()?;
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("no host in {url}"))?
            .clone();
        let port = authority.port_u16().unwrap_or(80);
        let stream = match via {
            Some(via) => tokio::net::TcpStream::connect(via).await?,
            None => tokio::net::TcpStream::connect((authority.host(), port)).await?,
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut builder =
            http::Request::get(uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/"))
                .header("host", authority.as_str());
        for name in PROPAGATED {
            if let Some(value) = incoming.get(*name) {
                builder = builder.header(*name, value);
            }
        }
        let response = sender
            .send_request(builder.body(Full::new(Bytes::new()))?)
            .await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        let parsed = serde_json::from_slice::<serde_json::Value>(&body)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned().into());
        anyhow::Ok(serde_json::json!({"url": url, "status": status, "answer": parsed}))
    }
    .await;
    result.unwrap_or_else(|err| serde_json::json!({"url": url, "error": err.to_string()}))
}
