//! The ADS gRPC endpoint, served on HTTP/2 directly rather than through tonic's generated
//! server, for memory's sake: tonic's encoder keeps one growable buffer per response stream,
//! as large as the largest message it ever sent (a full CDS response) for as long as the
//! proxy stays connected. Here every response is one frame encoded from the shared snapshot
//! ([`super::wire`]) and freed once sent, so an idle connection holds no copy of its config.
//!
//! Requests are decoded the same way ([`super::requests`]); only identity encoding is
//! accepted (Envoy does not compress ADS requests).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::mpsc;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Code, Status};

use super::requests::Requests;
use super::stream::{self, Protocol};
use super::{Shared, delta, sotw};

/// The gRPC service name.
pub const SERVICE_NAME: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// Largest request accepted (a NACK's error detail can be long; subscriptions list names).
const MAX_REQUEST: usize = 64 * 1024 * 1024;
/// Responses waiting per stream while the proxy reads slowly.
const STREAM_BUFFER: usize = 16;

/// Envoy's `AggregatedDiscoveryService` (SotW and delta) backed by the snapshot cache; a
/// tower service to add to a `tonic::transport::Server`.
#[derive(Clone)]
pub struct AdsService {
    shared: Arc<Shared>,
    delta: bool,
}

impl AdsService {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            delta: true,
        }
    }

    /// The same service answering delta streams with UNIMPLEMENTED, like a control plane that
    /// only speaks state of the world (for testing clients' fallback).
    pub fn without_delta(mut self) -> Self {
        self.delta = false;
        self
    }

    fn open<P: Protocol + 'static>(&self, request: http::Request<Body>) -> http::Response<Body> {
        let compressed = request
            .headers()
            .get("grpc-encoding")
            .is_some_and(|e| e.as_bytes() != b"identity");
        if compressed {
            return Status::unimplemented("compressed ADS requests are not supported").into_http();
        }
        if request
            .headers()
            .get(http::header::AUTHORIZATION)
            .is_some_and(|value| value.as_bytes().starts_with(b"Bearer "))
        {
            self.shared
                .metrics
                .streams_with_token
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!("ADS stream carries a bearer token");
        }
        let identity = super::peer::of_request(&request);
        let requests = Requests::new(request.into_body(), MAX_REQUEST);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(stream::run::<P>(
            self.shared.clone(),
            requests,
            tx,
            identity,
        ));
        let mut response = http::Response::new(Body::new(ResponseBody {
            frames: rx,
            finished: false,
        }));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        response
    }
}

impl NamedService for AdsService {
    const NAME: &'static str = SERVICE_NAME;
}

impl tower_service::Service<http::Request<Body>> for AdsService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let response = match request.uri().path() {
            SOTW_PATH => self.open::<sotw::Sotw>(request),
            DELTA_PATH if self.delta => self.open::<delta::Delta>(request),
            path => Status::new(Code::Unimplemented, format!("no method {path}")).into_http(),
        };
        std::future::ready(Ok(response))
    }
}

/// The response stream: encoded frames from the stream task, then the gRPC status trailers
/// (OK when the task ends, or the status it reported).
struct ResponseBody {
    frames: mpsc::Receiver<Result<Bytes, Status>>,
    finished: bool,
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        let status = match self.frames.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(data))) => return Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(Some(Err(status))) => status,
            Poll::Ready(None) => Status::new(Code::Ok, ""),
        };
        self.finished = true;
        let mut trailers = http::HeaderMap::new();
        if status.add_header(&mut trailers).is_err() {
            // Only a message that cannot be a header value gets here; keep the code.
            let _ = Status::new(status.code(), "").add_header(&mut trailers);
        }
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }
}
