//! Protocol detection: one bounded read of the client's first bytes, with a short timeout.
//! An HTTP/2 preface means h2c, an HTTP/1.x method followed by a space means HTTP/1, and
//! anything else (or silence, as from server-speaks-first protocols) means opaque TCP.

use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const METHODS: &[&[u8]] = &[
    b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT",
];
/// The longest prefix that can decide: the h2 preface.
const DECIDING_BYTES: usize = 24;

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
    Verdict::Known(Detected::Tcp)
}

/// Reads until the first bytes decide the protocol or `timeout` passes. Returns the verdict
/// and the bytes read, which the caller must replay.
pub async fn detect(
    stream: &mut TcpStream,
    timeout: Duration,
) -> std::io::Result<(Detected, Bytes)> {
    let mut buffer = BytesMut::with_capacity(512);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let read = tokio::time::timeout_at(deadline, stream.read_buf(&mut buffer)).await;
        match read {
            Err(_elapsed) => return Ok((Detected::Tcp, buffer.freeze())),
            Ok(Err(err)) => return Err(err),
            Ok(Ok(0)) if buffer.is_empty() => return Ok((Detected::Closed, buffer.freeze())),
            Ok(Ok(0)) => return Ok((Detected::Tcp, buffer.freeze())),
            Ok(Ok(_)) => match classify(&buffer) {
                Verdict::Known(protocol) => return Ok((protocol, buffer.freeze())),
                Verdict::NeedMore if buffer.len() >= DECIDING_BYTES => {
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
        assert_eq!(verdict(b"GETX"), Some(Detected::Tcp));
        assert_eq!(verdict(b"\x16\x03\x01\x02\x00"), Some(Detected::Tcp));
        assert_eq!(verdict(b"SSH-2.0-OpenSSH"), Some(Detected::Tcp));
    }
}
