//! Finding where a started binary listens and asking its HTTP endpoints, for tests that run
//! lateend (or another binary) with listeners on port 0: the binaries log
//! `... MESSAGE address=IP:PORT`, and a plain HTTP/1.1 GET tells whether a port answers.
//! Waiting for a condition is [`crate::wait`]'s.

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

/// `GET path` on `addr` with `headers` (HTTP/1.1, connection closed after): the status and
/// the body (a chunked body decoded), or None when nothing answers within `timeout`.
pub fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let mut request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (key, value) in headers {
        request.push_str(&format!("{key}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let chunked = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some((status, body))
}

/// The data of a chunked body (bounded by its own length, so any input ends).
fn dechunk(mut rest: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_chunked_body() {
        assert_eq!(
            dechunk("5\r\nhello\r\n1;x=y\r\n!\r\n0\r\n\r\n").as_deref(),
            Some("hello!")
        );
        assert_eq!(dechunk("5\r\nhel"), None);
    }

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
