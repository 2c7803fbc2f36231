//! Tiny HTTP/1.1 upstreams on 127.0.0.1 that answer with their name, count what they
//! receive, and can be told to fail or slow down, so a test sees which host served a
//! request and what reached which host.
//!
//! Behaviour by path: `/flaky-*` and `/noretry-*` answer 503 the first time each path is
//! seen, then 200; `/slow` answers after 2 s; `/hold` after 1 s; anything else at once —
//! with 500 while the backend is set failing, after the configured delay if any.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct State {
    hits: AtomicUsize,
    failing: AtomicBool,
    delay_ms: AtomicU64,
    seen: Mutex<HashSet<String>>,
}

/// A running upstream; it lives as long as the test's runtime (the accept loop holds it).
#[derive(Clone)]
pub struct Backend {
    pub name: String,
    pub port: u16,
    state: Arc<State>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let port = listener.local_addr().expect("upstream addr").port();
        let state = Arc::new(State::default());
        let (name, shared) = (name.to_string(), state.clone());
        let served = name.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, served.clone(), shared.clone()));
            }
        });
        Backend { name, port, state }
    }

    /// Requests received so far (every path).
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::Relaxed)
    }

    /// While set, plain requests get a 500 (an unhealthy host for outlier detection).
    pub fn set_failing(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::Relaxed);
    }

    /// Delay before answering plain requests (a slow host for least-request balancing).
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

async fn serve(mut conn: TcpStream, name: String, state: Arc<State>) {
    let mut buf = vec![0u8; 8192];
    let mut raw = Vec::new();
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    state.hits.fetch_add(1, Ordering::Relaxed);
    let head = String::from_utf8_lossy(&raw).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut status = "200 OK";
    if path.starts_with("/flaky") || path.starts_with("/noretry") {
        // A poisoned lock only means another connection panicked: treat the path as seen.
        let first = state
            .seen
            .lock()
            .map(|mut s| s.insert(path.clone()))
            .unwrap_or(false);
        if first {
            status = "503 Service Unavailable";
        }
    } else if path.starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(2)).await;
    } else if path.starts_with("/hold") {
        tokio::time::sleep(Duration::from_secs(1)).await;
    } else {
        let delay = state.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if state.failing.load(Ordering::Relaxed) {
            status = "500 Internal Server Error";
        }
    }
    let body = format!("{name}\n");
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(reply.as_bytes()).await;
}
