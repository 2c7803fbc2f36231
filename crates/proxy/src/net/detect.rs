//! Protocol detection: a bounded read of the client's first bytes within the listener's
//! detection budget (none when zero: Istio's default `protocolDetectionTimeout: 0s`, which
//! Envoy reads as waiting for the client however long it takes). An HTTP/2 preface means h2c;
//! a request line means HTTP/1 — a common method followed by a space at once, any other RFC
//! 9110 token (`PROPFIND`, `PURGE`, a lower-case `get`) once the line shows `HTTP/1.x`, as
//! Envoy's HTTP inspector parses it; anything else, or silence past the budget (as from
//! server-speaks-first protocols), means opaque TCP.

use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::AsyncReadExt;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const METHODS: &[&[u8]] = &[
    b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT",
];
/// The most bytes read before deciding: a request line longer than this is taken for TCP.
const MAX_DETECT_BYTES: usize = 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    Http1,
    Http2,
    Tcp,
    /// The client closed before sending anything.
    Closed,
}

enum Verdict {
    Known(Detected),
    NeedMore,
}

fn classify(bytes: &[u8]) -> Verdict {
    if bytes.is_empty() {
        return Verdict::NeedMore;
    }
    if H2_PREFACE.starts_with(&bytes[..bytes.len().min(H2_PREFACE.len())]) {
        return if bytes.len() >= H2_PREFACE.len() {
            Verdict::Known(Detected::Http2)
        } else {
            Verdict::NeedMore
        };
    }
    for method in METHODS {
        let shared = bytes.len().min(method.len());
        if bytes[..shared] == method[..shared] {
            if bytes.len() <= method.len() {
                return Verdict::NeedMore;
            }
            if bytes[method.len()] == b' ' {
                return Verdict::Known(Detected::Http1);
            }
        }
    }
    request_line(bytes)
}

/// Any other method: `token SP request-target SP HTTP/1.x` up to the line's end.
fn request_line(bytes: &[u8]) -> Verdict {
    let method_len = bytes.iter().take_while(|&&b| is_tchar(b)).count();
    let Some(&after) = bytes.get(method_len) else {
        return Verdict::NeedMore;
    };
    if method_len == 0 || after != b' ' {
        return Verdict::Known(Detected::Tcp);
    }
    let rest = &bytes[method_len + 1..];
    let Some(line_end) = rest.iter().position(|&b| b == b'\n') else {
        // The target may not hold control bytes: a binary protocol is not worth waiting for.
        return if rest.iter().any(|&b| b < 0x20 && b != b'\r' && b != b'\t') {
            Verdict::Known(Detected::Tcp)
        } else {
            Verdict::NeedMore
        };
    };
    let line = rest[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&rest[..line_end]);
    let is_http = line
        .iter()
        .rposition(|&b| b == b' ')
        .is_some_and(|space| space > 0 && matches!(&line[space + 1..], b"HTTP/1.1" | b"HTTP/1.0"));
    Verdict::Known(if is_http {
        Detected::Http1
    } else {
        Detected::Tcp
    })
}

/// RFC 9110 `tchar`: what a method token is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads until the first bytes decide the protocol or `timeout` passes. Returns the verdict
/// and the bytes read, which the caller must replay.
pub async fn detect<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> std::io::Result<(Detected, Bytes)> {
    let mut buffer = BytesMut::with_capacity(512);
    // Zero: no budget, wait for the client (Envoy's `listener_filters_timeout: 0s`).
    let deadline = (!timeout.is_zero()).then(|| tokio::time::Instant::now() + timeout);
    loop {
        let read = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, stream.read_buf(&mut buffer)).await,
            None => Ok(stream.read_buf(&mut buffer).await),
        };
        match read {
            Err(_elapsed) => return Ok((Detected::Tcp, buffer.freeze())),
            Ok(Err(err)) => return Err(err),
            Ok(Ok(0)) if buffer.is_empty() => return Ok((Detected::Closed, buffer.freeze())),
            Ok(Ok(0)) => return Ok((Detected::Tcp, buffer.freeze())),
            Ok(Ok(_)) => match classify(&buffer) {
                Verdict::Known(protocol) => return Ok((protocol, buffer.freeze())),
                Verdict::NeedMore if buffer.len() >= MAX_DETECT_BYTES => {
                    return Ok((Detected::Tcp, buffer.freeze()));
                }
                Verdict::NeedMore => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(bytes: &[u8]) -> Option<Detected> {
        match classify(bytes) {
            Verdict::Known(protocol) => Some(protocol),
            Verdict::NeedMore => None,
        }
    }

    #[test]
    fn classifies_first_bytes() {
        assert_eq!(verdict(b"GET / HTTP/1.1\r\n"), Some(Detected::Http1));
        assert_eq!(verdict(b"OPTIONS * HTTP/1.1\r\n"), Some(Detected::Http1));
        assert_eq!(verdict(H2_PREFACE), Some(Detected::Http2));
        assert_eq!(verdict(b"PRI * HTTP/2"), None);
        assert_eq!(verdict(b"GE"), None);
        assert_eq!(verdict(b"GETX"), None);
        assert_eq!(verdict(b"GETX\r\n"), Some(Detected::Tcp));
        assert_eq!(verdict(b"\x16\x03\x01\x02\x00"), Some(Detected::Tcp));
        assert_eq!(verdict(b"SSH-2.0-OpenSSH"), None);
        assert_eq!(verdict(b"SSH-2.0-OpenSSH_8.9\r\n"), Some(Detected::Tcp));
        assert_eq!(
            verdict(b"SSH-2.0-OpenSSH_8.9 Ubuntu\r\n"),
            Some(Detected::Tcp)
        );
    }

    #[test]
    fn any_token_method_with_an_http_request_line_is_http1() {
        for line in [
            &b"PROPFIND /dav HTTP/1.1\r\n"[..],
            b"PURGE /cache HTTP/1.1\r\n",
            b"get / HTTP/1.1\r\n",
            b"M-SEARCH * HTTP/1.1\r\n",
            b"BREW /pot HTTP/1.0\n",
        ] {
            assert_eq!(verdict(line), Some(Detected::Http1), "{line:?}");
        }
        // Undecided until the line ends; then decided by its version.
        assert_eq!(verdict(b"PROPFIND /dav HTT"), None);
        assert_eq!(verdict(b"PROPFIND /dav HTTP/2.0\r\n"), Some(Detected::Tcp));
        assert_eq!(verdict(b"PROPFIND \x00\x01"), Some(Detected::Tcp));
        assert_eq!(verdict(b"(bad) / HTTP/1.1\r\n"), Some(Detected::Tcp));
    }
}
