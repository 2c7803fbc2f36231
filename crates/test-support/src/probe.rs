//! Finding where a started binary listens and asking its HTTP endpoints, for tests that run
//! lateend (or another binary) with listeners on port 0: the binaries log
//! `... MESSAGE address=IP:PORT`, and a plain HTTP/1.1 GET tells whether a port answers.
//! [`eventually`] and [`wait_for`] poll a condition with a deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The `address=` field of the first log line containing `message`.
pub fn logged_address(log: &str, message: &str) -> Option<SocketAddr> {
    let line = log.lines().find(|l| l.contains(message))?;
    let address = line.split("address=").nth(1)?.split_whitespace().next()?;
    address.parse().ok()
}

/// The port of [`logged_address`].
pub fn logged_port(log: &str, message: &str) -> Option<u16> {
    logged_address(log, message).map(|a| a.port())
}

/// The status code of `GET path` on `addr` (HTTP/1.1, connection closed after), or None when
/// nothing answers within `timeout`.
pub fn http_status(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    let text = std::str::from_utf8(&head[..n]).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Polls `check` every 100 ms until it returns `Some`, panicking with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`eventually`] for blocking tests: polls `check` every 200 ms for at most `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_logged_address() {
        let log = "2026-12-05T03:40:37Z  INFO lateend: serving xDS (ADS over TLS) address=127.0.0.1:45473\n";
        assert_eq!(
            logged_address(log, "serving xDS (ADS over TLS)"),
            Some("127.0.0.1:45473".parse().unwrap())
        );
        assert_eq!(logged_port(log, "serving debug"), None);
    }
}
