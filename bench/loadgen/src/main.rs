//! `lateen-loadgen`: an open-loop HTTP load generator for the benchmarks. It sends requests
//! at a fixed total rate over a fixed number of keep-alive connections (HTTP/1.1 or h2c) and
//! measures each latency from the moment the request was *scheduled*, so a stalled server
//! cannot hide its queueing delay (no coordinated omission). Prints one JSON line.
#![forbid(unsafe_code)]

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Parser)]
struct Args {
    /// Target URL, e.g. http://127.0.0.1:18080/
    url: String,
    /// Total requests per second.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Connections.
    #[arg(long, default_value_t = 16)]
    connections: u64,
    /// Measured duration in seconds (after a 1 s warm-up).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Use h2c (prior knowledge) instead of HTTP/1.1; requests are multiplexed.
    #[arg(long)]
    h2: bool,
    /// Host header (HTTP/1.1) or authority (h2c) to send instead of the URL's.
    #[arg(long)]
    host: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut uri: http::Uri = args.url.parse().context("bad URL")?;
    let address = uri
        .authority()
        .context("URL needs host:port")?
        .as_str()
        .to_string();
    if let Some(host) = &args.host {
        let mut parts = uri.into_parts();
        parts.authority = Some(host.parse().context("bad --host")?);
        uri = http::Uri::from_parts(parts).context("bad --host")?;
    }
    let authority = uri.authority().context("URL needs host:port")?.clone();
    let warmup = Duration::from_secs(1);
    let measured = Duration::from_secs(args.duration);
    let interval = Duration::from_nanos(1_000_000_000 * args.connections / args.rate.max(1));
    let histogram = Arc::new(std::sync::Mutex::new(
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?,
    ));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = Vec::new();
    for index in 0..args.connections {
        let stream = tokio::net::TcpStream::connect(&address)
            .await
            .context("connect")?;
        stream.set_nodelay(true)?;
        let io = TokioIo::new(stream);
        let histogram = histogram.clone();
        let errors = errors.clone();
        let uri = uri.clone();
        // Spread the connections' schedules evenly over one interval.
        let offset = interval * index as u32 / args.connections as u32;
        if args.h2 {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(connection);
            tasks.push(tokio::spawn(async move {
                let mut next = start + offset;
                let mut inflight = Vec::new();
                while next < start + warmup + measured {
                    tokio::time::sleep_until(next).await;
                    let mut sender = sender.clone();
                    // A request that cannot be built (a bad URI) counts as a failed one.
                    let request = http::Request::get(uri.clone()).body(Empty::<Bytes>::new());
                    let scheduled = next;
                    let histogram = histogram.clone();
                    let errors = errors.clone();
                    inflight.push(tokio::spawn(async move {
                        let ok = match request {
                            Ok(request) => succeeded(sender.send_request(request).await).await,
                            Err(_) => false,
                        };
                        record(scheduled, start + warmup, ok, &histogram, &errors);
                    }));
                    next += interval;
                }
                for task in inflight {
                    let _ = task.await;
                }
            }));
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(connection);
            let path = uri
                .path_and_query()
                .map(|pq| pq.as_str().to_string())
                .unwrap_or_else(|| "/".into());
            let host = authority.to_string();
            tasks.push(tokio::spawn(async move {
                let mut next = start + offset;
                while next < start + warmup + measured {
                    tokio::time::sleep_until(next).await;
                    // A request that cannot be built (a bad path or host) counts as failed.
                    let request = http::Request::get(path.as_str())
                        .header("host", host.as_str())
                        .body(Empty::<Bytes>::new());
                    let ok = match request {
                        Ok(request) => succeeded(sender.send_request(request).await).await,
                        Err(_) => false,
                    };
                    record(next, start + warmup, ok, &histogram, &errors);
                    next += interval;
                }
            }));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    let histogram = histogram
        .lock()
        .map_err(|_| anyhow::anyhow!("histogram lock"))?;
    let micros = |q: f64| histogram.value_at_quantile(q) as f64;
    let result = serde_json::json!({
        "rate": args.rate,
        "connections": args.connections,
        "protocol": if args.h2 { "h2c" } else { "http/1.1" },
        "requests": histogram.len(),
        "errors": errors.load(Ordering::Relaxed),
        "p50_us": micros(0.5),
        "p90_us": micros(0.9),
        "p99_us": micros(0.99),
        "max_us": histogram.max(),
    });
    println!("{result}");
    Ok(())
}

/// Whether a request got a 2xx response whose body arrived whole.
async fn succeeded(response: Result<http::Response<hyper::body::Incoming>, hyper::Error>) -> bool {
    match response {
        Ok(response) => {
            response.status().is_success() && response.into_body().collect().await.is_ok()
        }
        Err(_) => false,
    }
}

fn record(
    scheduled: Instant,
    measure_from: Instant,
    ok: bool,
    histogram: &std::sync::Mutex<hdrhistogram::Histogram<u64>>,
    errors: &AtomicU64,
) {
    if scheduled < measure_from {
        return;
    }
    if !ok {
        errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let latency = Instant::now()
        .saturating_duration_since(scheduled)
        .as_micros() as u64;
    if let Ok(mut histogram) = histogram.lock() {
        let _ = histogram.record(latency.max(1));
    }
}
