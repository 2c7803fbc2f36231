//! The body of a request as the client sends it: hyper's for HTTP/1.1, or an h2 stream's for
//! HTTP/2 (served by [`super::h2_server`] with `h2` directly). Both read the same way, so
//! routing, retries, mirroring and metrics see one type.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::body::DownstreamFault;

pub enum DownstreamBody {
    Http1(Incoming),
    H2(H2RequestBody),
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DownstreamBodyError {
    #[error(transparent)]
    Http1(#[from] hyper::Error),
    #[error("HTTP/2 request body: {0}")]
    H2(#[from] h2::Error),
}

impl DownstreamBodyError {
    /// What the error says about the client. On HTTP/2 a body fails only when the client
    /// resets its stream or the connection goes (malformed frames end the stream in `h2`
    /// itself), so it is the client going away, as it was when hyper served h2.
    pub fn fault(&self) -> DownstreamFault {
        match self {
            DownstreamBodyError::Http1(err) => DownstreamFault::of(err),
            DownstreamBodyError::H2(_) => DownstreamFault::Aborted,
        }
    }
}

impl Body for DownstreamBody {
    type Data = Bytes;
    type Error = DownstreamBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, DownstreamBodyError>>> {
        match self.get_mut() {
            DownstreamBody::Http1(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(DownstreamBodyError::from))),
            DownstreamBody::H2(body) => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            DownstreamBody::Http1(body) => body.is_end_stream(),
            DownstreamBody::H2(body) => body.recv.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            DownstreamBody::Http1(body) => body.size_hint(),
            DownstreamBody::H2(body) => match body.remaining {
                Some(remaining) => SizeHint::with_exact(remaining),
                None => SizeHint::default(),
            },
        }
    }
}

/// An HTTP/2 request body. Flow-control capacity is given back as each chunk is taken, so the
/// client can send more as fast as the request is forwarded, and no faster.
pub struct H2RequestBody {
    recv: h2::RecvStream,
    /// Bytes still to come by the request's `content-length` (`h2` resets the stream when the
    /// DATA disagrees with it); retries and mirrors read it to decide whether to buffer.
    remaining: Option<u64>,
    data_done: bool,
}

impl H2RequestBody {
    pub fn new(recv: h2::RecvStream, headers: &http::HeaderMap) -> H2RequestBody {
        let remaining = match content_length(headers) {
            Some(length) => Some(length),
            None if recv.is_end_stream() => Some(0),
            None => None,
        };
        H2RequestBody {
            recv,
            remaining,
            data_done: false,
        }
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, DownstreamBodyError>>> {
        if !self.data_done {
            match self.recv.poll_data(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(bytes))) => {
                    let _ = self.recv.flow_control().release_capacity(bytes.len());
                    if let Some(remaining) = &mut self.remaining {
                        *remaining = remaining.saturating_sub(bytes.len() as u64);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                // RST_STREAM(NO_ERROR) is the client saying it needs no more of the response
                // read (RFC 9113 §8.1): the body ends, it does not fail.
                Poll::Ready(Some(Err(err))) if err.reason() == Some(h2::Reason::NO_ERROR) => {
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err.into()))),
                Poll::Ready(None) => self.data_done = true,
            }
        }
        match self.recv.poll_trailers(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(trailers)) => Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t)))),
            Poll::Ready(Err(err)) if err.reason() == Some(h2::Reason::NO_ERROR) => {
                Poll::Ready(None)
            }
            Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err.into()))),
        }
    }
}

/// The request's `content-length` when every value it has parses and agrees (else unknown,
/// as hyper reads it).
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    let mut length = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        for part in value.to_str().ok()?.split(',') {
            let parsed: u64 = part.trim().parse().ok()?;
            if length.is_some_and(|seen| seen != parsed) {
                return None;
            }
            length = Some(parsed);
        }
    }
    length
}

#[cfg(test)]
mod tests {
    use super::content_length;

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        for value in values {
            headers.append(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn content_length_is_known_only_when_every_value_agrees() {
        assert_eq!(content_length(&headers(&[])), None);
        assert_eq!(content_length(&headers(&["12"])), Some(12));
        assert_eq!(content_length(&headers(&["12", "12, 12"])), Some(12));
        assert_eq!(content_length(&headers(&["12", "13"])), None);
        assert_eq!(content_length(&headers(&["-1"])), None);
        assert_eq!(content_length(&headers(&["0x10"])), None);
    }
}
