//! Scraping the connected proxies' Prometheus endpoints for the service graph: every
//! [`INTERVAL`], while someone looked at the graph in the last
//! [`super::traffic::KEEP_SCRAPING`] (a control plane of a thousand proxies does not poll
//! them for a page nobody has open), each connected proxy's `/stats/prometheus` on its
//! instance IP and the proxy's own Prometheus port 15090 (where Istio's Prometheus scrapes
//! Envoy), at most [`PARALLEL`] at a time, each bounded by [`TIMEOUT`] and [`MAX_BODY`].

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use super::promtext;
use super::traffic::{METRICS, Traffic};
use crate::proxy::Proxy;
use crate::push::ControlPlane;

/// Time between two rounds of scrapes.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Longest a scrape of one proxy may take (connect, request, body).
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// Largest scrape body read.
pub const MAX_BODY: usize = 16 << 20;
/// Scrapes in flight at once.
pub const PARALLEL: usize = 32;
/// Envoy's (and lateen-proxy's) Prometheus port, where Istio's Prometheus scrapes the proxy.
pub const PROXY_METRICS_PORT: u16 = 15090;

/// Why one proxy could not be scraped.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("connecting to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("HTTP to {0}: {1}")]
    Http(SocketAddr, String),
    #[error("{0} answered {1}")]
    Status(SocketAddr, hyper::StatusCode),
    #[error("{0} did not answer within {1:?}")]
    Timeout(SocketAddr, Duration),
}

/// Scrapes while the graph is wanted; runs until the task is dropped.
pub async fn run(cp: Arc<ControlPlane>) {
    let limit = Arc::new(Semaphore::new(PARALLEL));
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let traffic = cp.traffic().clone();
        if !traffic.wanted(Instant::now()) {
            continue;
        }
        let targets = targets(&cp);
        traffic.retain(&targets.iter().map(|(id, _)| id.clone()).collect());
        let mut round = tokio::task::JoinSet::new();
        for (id, address) in targets {
            let (limit, traffic) = (limit.clone(), traffic.clone());
            round.spawn(async move {
                let Ok(_permit) = limit.acquire().await else {
                    return;
                };
                scrape_one(&traffic, &id, address).await;
            });
        }
        while round.join_next().await.is_some() {}
    }
}

async fn scrape_one(traffic: &Traffic, id: &str, address: SocketAddr) {
    let outcome = tokio::time::timeout(TIMEOUT, fetch(address))
        .await
        .unwrap_or(Err(ScrapeError::Timeout(address, TIMEOUT)));
    match outcome {
        Ok(text) => traffic.record(id, Instant::now(), &promtext::parse(&text, METRICS)),
        Err(e) => traffic.record_error(id, e.to_string()),
    }
}

/// Each connected proxy (node id) and where its metrics are: the first instance IP, 15090.
/// Proxies without a usable IP are left out.
pub fn targets(cp: &ControlPlane) -> Vec<(String, SocketAddr)> {
    let rows = cp.xds().map(|x| x.sync_status()).unwrap_or_default();
    let mut seen = HashSet::new();
    rows.into_iter()
        .filter(|row| seen.insert(row.proxy.clone()))
        .filter_map(|row| {
            let proxy = Proxy::from_node(&lateen_xds::ProxyNode {
                id: row.proxy.clone(),
                cluster: row.cluster,
                metadata: row.metadata,
                user_agent: row.user_agent,
            });
            let ip: IpAddr = proxy.ip.parse().ok()?;
            Some((row.proxy, SocketAddr::new(ip, PROXY_METRICS_PORT)))
        })
        .collect()
}

/// `GET /stats/prometheus` over HTTP/1.1; the Prometheus text format (no `Accept` asks for
/// it from lateen-proxy, and Envoy serves nothing else).
async fn fetch(address: SocketAddr) -> Result<String, ScrapeError> {
    let http = |e: &dyn std::fmt::Display| ScrapeError::Http(address, e.to_string());
    let stream = TcpStream::connect(address)
        .await
        .map_err(|e| ScrapeError::Connect(address, e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(&e))?;
    tokio::spawn(connection);
    let request = hyper::Request::get("/stats/prometheus")
        .header(hyper::header::HOST, address.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| http(&e))?;
    let response = sender.send_request(request).await.map_err(|e| http(&e))?;
    if !response.status().is_success() {
        return Err(ScrapeError::Status(address, response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| http(&e))?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}
