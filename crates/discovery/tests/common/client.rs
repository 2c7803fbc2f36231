//! The tests' HTTP/1.1 client: one GET per fresh connection, to any loopback address and
//! optionally from a chosen loopback source address (for source-IP hashing), returning the
//! status, the response headers and the body. Every exchange is bounded.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A response as the client saw it; header names are lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, trimmed (the test upstreams end theirs with a newline).
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request: where to, from where, and what.
pub struct Request<'a> {
    pub target: SocketAddr,
    /// Bind the client socket here first (a loopback address), else let the kernel choose.
    pub source: Option<IpAddr>,
    pub host: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
}

/// Sends one GET on a fresh connection and reads exactly one response (headers, then
/// content-length bytes, or until close when there is no length), or None on any failure or
/// after 10 s. Reading by length rather than to EOF: Envoy may delay closing a connection it
/// answered.
pub async fn fetch(request: &Request<'_>) -> Option<Reply> {
    fetch_method(request, "GET").await
}

/// [`fetch`] with another method (no request body).
pub async fn fetch_method(request: &Request<'_>, method: &str) -> Option<Reply> {
    tokio::time::timeout(Duration::from_secs(10), exchange(request, method))
        .await
        .ok()
        .flatten()
}

async fn connect(target: SocketAddr, source: Option<IpAddr>) -> Option<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(target).await.ok();
    };
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4().ok()?,
        IpAddr::V6(_) => TcpSocket::new_v6().ok()?,
    };
    socket.bind(SocketAddr::new(source, 0)).ok()?;
    socket.connect(target).await.ok()
}

async fn exchange(request: &Request<'_>, method: &str) -> Option<Reply> {
    let mut conn = connect(request.target, request.source).await?;
    let mut text = format!(
        "{method} {} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
        request.path, request.host
    );
    for (k, v) in request.headers {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    text.push_str("\r\n");
    conn.write_all(text.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let header_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..header_end]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let length: Option<usize> = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok());
    let body_end = match length {
        Some(length) => {
            while raw.len() < header_end + length {
                let n = conn.read(&mut buf).await.ok()?;
                if n == 0 {
                    return None;
                }
                raw.extend_from_slice(&buf[..n]);
            }
            header_end + length
        }
        None => {
            // No length (a chunked admin reply): read until the server closes.
            conn.read_to_end(&mut raw).await.ok()?;
            raw.len()
        }
    };
    let body = String::from_utf8_lossy(&raw[header_end..body_end])
        .trim()
        .to_string();
    Some(Reply {
        status,
        headers,
        body,
    })
}
