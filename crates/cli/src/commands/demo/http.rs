//! A minimal HTTP/1.1 client for the demo's checks: one request per connection, bounded by
//! timeouts, on the demo's own addresses only (its loopback addresses, or its pods').

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// GET `path` from `address`; returns the status and the body.
pub fn get(address: &str, path: &str, host: Option<&str>) -> std::io::Result<(u16, String)> {
    let address: SocketAddr = address.parse().map_err(|err| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{address}: {err}"),
        )
    })?;
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let host = host.unwrap_or("localhost");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Polls `check` (a blocking probe) until it holds or `within` passes.
pub async fn wait_for(
    what: &str,
    within: Duration,
    check: impl Fn() -> bool + Send + Sync + Clone + 'static,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let probe = check.clone();
        if tokio::task::spawn_blocking(probe).await.unwrap_or(false) {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
