//! The request body up to a size limit, and a 413 that HTTP/2 clients receive (issue #16
//! item 12). Over HTTP/2 a 413 sent while the client still uploads ends in a stream reset
//! that curl reports as a framing error instead of the 413: an over-large body is therefore
//! read to its end and thrown away (bounded in bytes and time) before the 413, and what is
//! left unread travels inside the response body, dropped only once the response is complete,
//! so h2 resets with NO_ERROR (RFC 9113 §8.1) rather than CANCEL.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

/// A response body that keeps an unread request body alive until it is itself dropped.
pub struct ReplyBody {
    inner: Full<Bytes>,
    _unread: Option<Incoming>,
}

impl From<Full<Bytes>> for ReplyBody {
    fn from(inner: Full<Bytes>) -> ReplyBody {
        ReplyBody {
            inner,
            _unread: None,
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body that was not read whole: why, and what is left of it.
pub struct TooLarge {
    reason: String,
    unread: Incoming,
}

impl TooLarge {
    /// 413 with the reason, the unread body kept until the response is sent.
    pub fn reply(self) -> Response<ReplyBody> {
        let mut response = Response::new(ReplyBody {
            inner: Full::new(Bytes::from(format!("cannot read body: {}\n", self.reason))),
            _unread: Some(self.unread),
        });
        *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
        response
    }
}

/// Over-large bodies are read and thrown away up to this many bytes, so the client finishes
/// sending and then reads the 413 (curl over HTTP/2 reports a stream error for a 413 that
/// arrives while it is still sending); a larger remainder is left unread.
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;
/// And for at most this long.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// The whole body when it is at most `limit` bytes. A body over the limit (a declared
/// `Content-Length` says so before anything is read) is drained, within bounds, and refused.
pub async fn read(
    mut body: Incoming,
    content_length: Option<u64>,
    limit: usize,
) -> Result<Bytes, TooLarge> {
    let reason = format!("length limit exceeded ({limit} bytes)");
    if content_length.is_some_and(|length| length > limit as u64) {
        return Err(drained(body, 0, reason).await);
    }
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                return Err(TooLarge {
                    reason: e.to_string(),
                    unread: body,
                });
            }
        };
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > limit {
                let read = (collected.len() + data.len()) as u64;
                return Err(drained(body, read, reason).await);
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

/// Reads what is left of `body` (of which `read` bytes were read) and throws it away, up to
/// [`DRAIN_BYTES`] and [`DRAIN_TIME`].
async fn drained(mut body: Incoming, mut read: u64, reason: String) -> TooLarge {
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    while read <= DRAIN_BYTES {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                read += frame.data_ref().map_or(0, |data| data.len() as u64);
            }
            Ok(None | Some(Err(_))) | Err(_) => break,
        }
    }
    TooLarge {
        reason,
        unread: body,
    }
}
