//! Body types of the data path. [`ProxyBody`] is what flows to and from upstreams without
//! boxing: a body streaming from the client or an upstream, or bytes the proxy holds (a local reply, a request
//! buffered for retries). [`ObservedBody`] wraps every response sent downstream and records
//! the request's metrics when the response ends, so sizes and durations are complete.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use super::coalesce::Coalescing;
use super::downstream_body::DownstreamBody;
use super::grpc_frames::GrpcFrames;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};

pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

pub enum ProxyBody {
    /// A response body streaming from an upstream, its ready chunks joined (bulk bodies cost
    /// one downstream write per 64 KiB, not one per upstream read).
    Upstream(Coalescing<Incoming>),
    /// A request body streaming from the client; bytes are counted into `counter` when there
    /// is one.
    Downstream {
        body: DownstreamBody,
        counter: Option<Arc<RequestRecord>>,
    },
    /// Bytes held by the proxy, sent once.
    Full(Option<Bytes>),
}

impl ProxyBody {
    /// A response body streaming from an upstream.
    pub fn upstream(body: Incoming) -> ProxyBody {
        ProxyBody::Upstream(Coalescing::new(body))
    }

    pub fn empty() -> ProxyBody {
        ProxyBody::Full(None)
    }

    pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
        let bytes = bytes.into();
        ProxyBody::Full(if bytes.is_empty() { None } else { Some(bytes) })
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Upstream(body) => Pin::new(body)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(BodyError::from))),
            ProxyBody::Downstream { body, counter } => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let (Some(data), Some(counter)) = (frame.data_ref(), counter) {
                        counter.count_request_data(data);
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(err))) => {
                    // A streaming request body failing is the client's doing; the attempt
                    // that was sending it reads this to blame the client, not the upstream.
                    if let Some(counter) = counter {
                        counter.set_fault(err.fault());
                    }
                    Poll::Ready(Some(Err(err.into())))
                }
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            ProxyBody::Full(bytes) => Poll::Ready(bytes.take().map(|bytes| Ok(Frame::data(bytes)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream(body) => body.is_end_stream(),
            ProxyBody::Downstream { body, .. } => body.is_end_stream(),
            ProxyBody::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream(body) => body.size_hint(),
            ProxyBody::Downstream { body, .. } => body.size_hint(),
            ProxyBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
        }
    }
}

/// What is known of one request while it is in flight; shared by the request body (which
/// counts its bytes) and the response body (which finishes the record).
pub struct RequestRecord {
    pub request_bytes: AtomicU64,
    /// The request's gRPC messages, for a gRPC request (one task feeds it: uncontended).
    request_messages: Option<Mutex<GrpcFrames>>,
    /// A [`DownstreamFault`] as a number, 0 while the request body is sound.
    fault: AtomicU8,
    /// The endpoint of the last attempt, for the access log's `%UPSTREAM_HOST%`.
    upstream_host: std::sync::Mutex<Option<std::net::SocketAddr>>,
}

impl RequestRecord {
    /// A record of a request; `grpc` counts its messages too.
    pub fn new(grpc: bool) -> Arc<RequestRecord> {
        Arc::new(RequestRecord {
            request_bytes: AtomicU64::new(0),
            request_messages: grpc.then(|| Mutex::new(GrpcFrames::default())),
            fault: AtomicU8::new(0),
            upstream_host: std::sync::Mutex::new(None),
        })
    }

    pub fn set_upstream_host(&self, host: std::net::SocketAddr) {
        if let Ok(mut slot) = self.upstream_host.lock() {
            *slot = Some(host);
        }
    }

    pub fn upstream_host(&self) -> Option<std::net::SocketAddr> {
        self.upstream_host.lock().ok().and_then(|slot| *slot)
    }

    /// Counts a chunk of the request body: its bytes, and its messages for gRPC.
    pub fn count_request_data(&self, data: &[u8]) {
        self.request_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if let Some(frames) = &self.request_messages {
            frames
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .feed(data);
        }
    }

    /// gRPC messages in the request body so far (0 for other requests).
    pub fn request_messages(&self) -> u64 {
        self.request_messages.as_ref().map_or(0, |frames| {
            frames
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .messages
        })
    }

    pub fn set_fault(&self, fault: DownstreamFault) {
        self.fault.store(fault as u8, Ordering::Relaxed);
    }

    /// How the client broke its request body, if it did.
    pub fn fault(&self) -> Option<DownstreamFault> {
        match self.fault.load(Ordering::Relaxed) {
            1 => Some(DownstreamFault::Malformed),
            2 => Some(DownstreamFault::Aborted),
            _ => None,
        }
    }
}

/// How a client broke the body of its request: the client's fault, never the upstream's
/// (no outlier-detection failure, no retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownstreamFault {
    /// Bytes that are not HTTP (a malformed chunk size or extension): 400, `DPE`.
    Malformed = 1,
    /// The client went away or reset the stream mid-body: `DC`.
    Aborted = 2,
}

impl DownstreamFault {
    /// What a request body's read error says about the client. hyper reports an unparsable
    /// chunk as an `InvalidInput`/`InvalidData` I/O error; anything else (an early end, a
    /// reset stream) is the client going away.
    pub fn of(err: &hyper::Error) -> DownstreamFault {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(current) = source {
            if let Some(io) = current.downcast_ref::<std::io::Error>()
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
                )
            {
                return DownstreamFault::Malformed;
            }
            source = current.source();
        }
        if err.is_parse() {
            DownstreamFault::Malformed
        } else {
            DownstreamFault::Aborted
        }
    }

    /// The local reply's status and flag for this fault.
    pub fn reply(self) -> (http::StatusCode, crate::metrics::ResponseFlags) {
        match self {
            DownstreamFault::Malformed => (
                http::StatusCode::BAD_REQUEST,
                crate::metrics::ResponseFlags::DPE,
            ),
            DownstreamFault::Aborted => (
                http::StatusCode::BAD_REQUEST,
                crate::metrics::ResponseFlags::DC,
            ),
        }
    }
}

/// Called once when a response has been sent (or abandoned).
pub trait Finish: Send + 'static {
    /// `response_bytes` counts body bytes sent and `response_messages` the gRPC messages in
    /// them (0 unless counted); `grpc_status` is from the trailers if any; `complete` is false
    /// when the client went away first.
    fn finish(
        self: Box<Self>,
        response_bytes: u64,
        response_messages: u64,
        grpc_status: Option<u16>,
        complete: bool,
    );
}

pub struct ObservedBody {
    inner: ProxyBody,
    sent: u64,
    /// The response's gRPC messages, when counted.
    frames: Option<GrpcFrames>,
    grpc_status: Option<u16>,
    done: bool,
    on_finish: Option<Box<dyn Finish>>,
}

impl ObservedBody {
    pub fn new(inner: ProxyBody, on_finish: Option<Box<dyn Finish>>) -> ObservedBody {
        ObservedBody {
            inner,
            sent: 0,
            frames: None,
            grpc_status: None,
            done: false,
            on_finish,
        }
    }

    /// Counts the gRPC messages of the body as well.
    pub fn counting_grpc_messages(mut self) -> ObservedBody {
        self.frames = Some(GrpcFrames::default());
        self
    }

    fn complete(&mut self, complete: bool) {
        if let Some(on_finish) = self.on_finish.take() {
            let messages = self.frames.as_ref().map_or(0, |frames| frames.messages);
            on_finish.finish(self.sent, messages, self.grpc_status, complete);
        }
    }
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                    if let Some(frames) = &mut this.frames {
                        frames.feed(data);
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    this.grpc_status = grpc_status(trailers);
                }
                if this.inner.is_end_stream() {
                    this.done = true;
                    this.complete(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => {
                this.done = true;
                this.complete(false);
                Poll::Ready(Some(Err(err)))
            }
            Poll::Ready(None) => {
                this.done = true;
                this.complete(true);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        let complete = self.done || self.inner.is_end_stream();
        self.complete(complete);
    }
}

/// The `grpc-status` of a header or trailer block.
pub fn grpc_status(headers: &http::HeaderMap) -> Option<u16> {
    headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}
