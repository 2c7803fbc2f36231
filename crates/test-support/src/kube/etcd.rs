//! Talking to the test cluster's etcd over its JSON gateway (plain HTTP/1.1 on the client port,
//! served by etcd itself): health, the current revision, and compaction — which is what makes
//! the API server answer `410 Gone` to a watch resumed from before it.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};

/// `POST path` (or `GET` without a body) to etcd on 127.0.0.1:`port`; the response body.
fn request(port: u16, path: &str, body: Option<&str>) -> anyhow::Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connecting to etcd at {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = match body {
        Some(b) => format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{b}",
            b.len()
        ),
        None => format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    };
    stream.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading etcd's answer to {path}"))?;
    let text = String::from_utf8_lossy(&raw);
    let Some((headers, payload)) = text.split_once("\r\n\r\n") else {
        bail!("etcd answered {path} with no HTTP header end: {text:?}");
    };
    let status = headers.lines().next().unwrap_or("");
    let payload = if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(payload)
    } else {
        payload.to_string()
    };
    if !status.contains(" 200 ") {
        bail!("etcd answered {path} with {status}: {payload}");
    }
    Ok(payload)
}

/// The body of a chunked transfer encoding (sizes in hex, each chunk ending in CRLF).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    for _ in 0..10_000 {
        let Some((size, after)) = rest.split_once("\r\n") else {
            break;
        };
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// Whether etcd reports itself healthy.
pub(crate) fn healthy(port: u16) -> bool {
    request(port, "/health", None).is_ok_and(|b| b.contains("\"true\""))
}

/// etcd's current revision (the newest resourceVersion the API server can have handed out).
pub(crate) fn revision(port: u16) -> anyhow::Result<i64> {
    // A range over one key that is never written; only the header matters.
    let body = request(port, "/v3/kv/range", Some(r#"{"key":"AA=="}"#))?;
    let json: serde_json::Value = serde_json::from_str(&body).context("etcd range answer")?;
    let revision = &json["header"]["revision"];
    // The gateway writes int64 as a JSON string.
    revision
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| revision.as_i64())
        .with_context(|| format!("no header.revision in etcd's answer {body}"))
}

/// Compacts etcd's history up to its current revision; returns that revision.
pub(crate) fn compact(port: u16) -> anyhow::Result<i64> {
    let rev = revision(port)?;
    request(
        port,
        "/v3/kv/compaction",
        Some(&format!(r#"{{"revision":"{rev}","physical":true}}"#)),
    )?;
    Ok(rev)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_chunked_body_is_joined() {
        assert_eq!(
            super::dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
        assert_eq!(super::dechunk("zz\r\n"), "");
    }
}
