//! Serves one downstream HTTP/2 connection with the `h2` crate directly rather than through
//! hyper, whose HTTP/2 server cannot send an interim response: a request with
//! `Expect: 100-continue` is answered `100` by the proxy as soon as its head arrives and the
//! `expect` header is not forwarded, as Envoy does by default (`proxy_100_continue` off).
//!
//! Everything else is what hyper's HTTP/2 server did, setting for setting: the same `h2`
//! limits (see [`builder`]), a task per stream running the same service
//! ([`super::service::handle`]), a stream the client resets cancelling its request, request
//! bodies giving flow-control capacity back as they are consumed, response bodies sent only
//! as the client grants capacity (never buffered whole), trailers both ways, `content-length`
//! set from a body of known size, a `date` header, and connection-specific headers stripped.
//! A graceful close (GOAWAY, then in-flight streams finish) and the idle timeout come from
//! [`super::server`]'s `drive`, as for HTTP/1.1.

use bytes::Bytes;
use h2::server::{Connection, Handshake, SendResponse};
use h2::{Reason, RecvStream, SendStream};
use http::header::{self, HeaderMap, HeaderValue};
use http_body::Body;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::{BodyError, ObservedBody};
use super::downstream_body::{DownstreamBody, H2RequestBody};
use super::server::GracefulConnection;
use super::service::{ConnContext, handle};
use crate::config::model::HttpLimits;
use crate::net::write_batch::{PollCount, WriteBatch};

/// Flow-control windows advertised to clients: 1 MiB per stream, 4 MiB per connection (the
/// spec's 64 KiB caps a stream at 64 KiB per round trip).
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 4 << 20;
/// The largest frame accepted (the spec's default, hyper's).
const MAX_FRAME_SIZE: u32 = 16 << 10;
/// How much response data a stream may queue beyond what the client has granted (hyper's).
const MAX_SEND_BUFFER: usize = 400 << 10;
/// Streams the client made the proxy reset (malformed frames) before the connection is ended
/// with GOAWAY: hyper's bound, against resets used as a flood.
const MAX_LOCAL_ERROR_RESETS: usize = 1024;

/// The `h2` settings of a downstream connection. Rapid-reset, CONTINUATION and HPACK
/// protections are `h2`'s own (pending-accept resets 20, concurrent resets 50, header list
/// size), as they were under hyper, which sets the same values.
pub fn builder(limits: &HttpLimits) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME_SIZE)
        .max_header_list_size(limits.max_header_bytes.min(u32::MAX as usize) as u32)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESETS))
        .max_send_buffer_size(MAX_SEND_BUFFER);
    builder
}

/// One HTTP/2 connection: its handshake, then accepting streams until the client or a
/// graceful close ends it. Each stream runs in a task of its own.
pub struct H2Connection<I> {
    state: State<WriteBatch<I>>,
    /// Ticked as each poll begins: what `h2` writes in one poll leaves in one system call
    /// (`net/write_batch.rs`).
    polls: PollCount,
    ctx: Arc<ConnContext>,
    /// A graceful close asked for during the handshake, done once it completes.
    close_pending: bool,
}

enum State<I> {
    Handshaking(Handshake<I, Bytes>),
    Serving(Connection<I, Bytes>),
}

impl<I> H2Connection<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    pub fn new(io: I, limits: &HttpLimits, ctx: Arc<ConnContext>) -> H2Connection<I> {
        let polls = PollCount::default();
        let io = WriteBatch::new(io, polls.clone());
        H2Connection {
            state: State::Handshaking(builder(limits).handshake(io)),
            polls,
            ctx,
            close_pending: false,
        }
    }
}

impl<I> Future for H2Connection<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.polls.tick();
        loop {
            match &mut this.state {
                State::Handshaking(handshake) => match ready!(Pin::new(handshake).poll(cx)) {
                    Ok(mut connection) => {
                        if this.close_pending {
                            connection.graceful_shutdown();
                        }
                        this.state = State::Serving(connection);
                    }
                    Err(err) => {
                        tracing::debug!(%err, "h2 handshake failed");
                        return Poll::Ready(());
                    }
                },
                State::Serving(connection) => match ready!(connection.poll_accept(cx)) {
                    Some(Ok((request, respond))) => {
                        tokio::spawn(serve_stream(this.ctx.clone(), request, respond));
                    }
                    Some(Err(err)) => {
                        tracing::debug!(%err, "h2 connection ended");
                        return Poll::Ready(());
                    }
                    None => return Poll::Ready(()),
                },
            }
        }
    }
}

impl<I> GracefulConnection for H2Connection<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    fn close_gracefully(self: Pin<&mut Self>) {
        let this = self.get_mut();
        match &mut this.state {
            State::Handshaking(_) => this.close_pending = true,
            State::Serving(connection) => connection.graceful_shutdown(),
        }
    }
}

/// One stream: the request through the service, then its response back to the client.
async fn serve_stream(
    ctx: Arc<ConnContext>,
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let (mut head, recv) = request.into_parts();
    answer_expect_continue(&mut head.headers, &recv, &mut respond);
    let body = DownstreamBody::H2(H2RequestBody::new(recv, &head.headers));
    let request = http::Request::from_parts(head, body);
    // A client resetting the stream before the response cancels the request: the service's
    // future is dropped, which records it (0, `DC`) and releases what it held. In a block of
    // its own so the finished future's space is reused by the body's send (the task holds
    // one or the other, as hyper's did).
    let response = {
        let handling = handle(ctx, request);
        let mut handling = std::pin::pin!(handling);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(Ok(response)) = handling.as_mut().poll(cx) {
                return Poll::Ready(Some(response));
            }
            match respond.poll_reset(cx) {
                Poll::Ready(_) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    };
    let Some(response) = response else {
        return;
    };
    let (mut parts, body) = response.into_parts();
    strip_connection_headers(&mut parts.headers);
    if let header::Entry::Vacant(entry) = parts.headers.entry(header::DATE) {
        entry.insert(super::http_date::now());
    }
    let end_of_stream = body.is_end_stream();
    if !end_of_stream
        && let Some(length) = body.size_hint().exact()
        && let header::Entry::Vacant(entry) = parts.headers.entry(header::CONTENT_LENGTH)
    {
        entry.insert(HeaderValue::from(length));
    }
    let send = match respond.send_response(http::Response::from_parts(parts, ()), end_of_stream) {
        Ok(send) => send,
        Err(err) => {
            tracing::debug!(%err, "h2 response head not sent");
            respond.send_reset(Reason::INTERNAL_ERROR);
            return;
        }
    };
    if !end_of_stream {
        let mut pipe = Pipe {
            body,
            send,
            waiting: None,
        };
        std::future::poll_fn(|cx| pipe.poll(cx)).await;
    }
}

/// Answers `Expect: 100-continue` with a 100 at once and removes the header, as Envoy does:
/// the client then sends its body while the request is routed, and the upstream, which never
/// sees the header, does not wait for a 100 of its own. A request whose body has already
/// ended gets none (nothing is waiting for it).
fn answer_expect_continue(
    headers: &mut HeaderMap,
    recv: &RecvStream,
    respond: &mut SendResponse<Bytes>,
) {
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !expects_continue {
        return;
    }
    headers.remove(header::EXPECT);
    if recv.is_end_stream() {
        return;
    }
    let mut interim = http::Response::new(());
    *interim.status_mut() = http::StatusCode::CONTINUE;
    if let Err(err) = respond.send_informational(interim) {
        tracing::debug!(%err, "100 Continue not sent");
    }
}

/// Headers that are the connection's business in HTTP/1.1 and malformed in HTTP/2
/// (RFC 9113 §8.2.2), removed from every response as hyper did, with any named in
/// `Connection`.
fn strip_connection_headers(headers: &mut HeaderMap) {
    for name in [
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TE,
        header::HeaderName::from_static("keep-alive"),
        header::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
    if let Some(connection) = headers.remove(header::CONNECTION)
        && let Ok(tokens) = connection.to_str()
    {
        for token in tokens.split(',') {
            headers.remove(token.trim());
        }
    }
}

/// A response body being sent: each chunk is taken from the body only once the client has
/// granted capacity for the one before, so a slow client holds the body back instead of the
/// proxy buffering it.
struct Pipe {
    body: ObservedBody,
    send: SendStream<Bytes>,
    /// A chunk taken from the body and waiting for capacity, and whether it ends the body.
    waiting: Option<(Bytes, bool)>,
}

impl Pipe {
    /// Ready when the body is sent, failed or reset; the body records which on drop.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            // Registers for RST_STREAM while waiting for the body or for capacity.
            if let Poll::Ready(reset) = self.send.poll_reset(cx) {
                tracing::debug!(?reset, "h2 response stream reset by the client");
                return Poll::Ready(());
            }
            if let Some((chunk, end)) = self.waiting.take() {
                while self.send.capacity() == 0 {
                    match self.send.poll_capacity(cx) {
                        Poll::Pending => {
                            self.waiting = Some((chunk, end));
                            return Poll::Pending;
                        }
                        Poll::Ready(Some(Ok(0))) => {}
                        Poll::Ready(Some(Ok(_))) => break,
                        // The stream was reset or the connection ended.
                        Poll::Ready(Some(Err(_)) | None) => return Poll::Ready(()),
                    }
                }
                if self.send.send_data(chunk, end).is_err() || end {
                    return Poll::Ready(());
                }
                continue;
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(chunk) => {
                        let end = self.body.is_end_stream();
                        if chunk.is_empty() {
                            if self.send.send_data(chunk, end).is_err() || end {
                                return Poll::Ready(());
                            }
                            continue;
                        }
                        // Claim one byte, not the chunk: a claim pins connection window,
                        // and `send_data` raises it to the chunk's length anyway (hyper's
                        // way, so streams waiting together do not starve each other).
                        self.send.reserve_capacity(1);
                        self.waiting = Some((chunk, end));
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.send.reserve_capacity(0);
                            let _ = self.send.send_trailers(trailers);
                            return Poll::Ready(());
                        }
                    }
                },
                Some(Err(err)) => {
                    tracing::debug!(%err, "response body failed; resetting the h2 stream");
                    self.send.send_reset(reset_reason(&err));
                    return Poll::Ready(());
                }
                None => {
                    let _ = self.send.send_data(Bytes::new(), true);
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// The reset a failed response body becomes: an upstream's own HTTP/2 reset passed on as it
/// came (a gRPC CANCEL stays CANCEL), anything else INTERNAL_ERROR.
fn reset_reason(err: &BodyError) -> Reason {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
    while let Some(current) = source {
        if let Some(reason) = current
            .downcast_ref::<h2::Error>()
            .and_then(h2::Error::reason)
        {
            return reason;
        }
        source = current.source();
    }
    Reason::INTERNAL_ERROR
}

#[cfg(test)]
mod tests {
    #[test]
    fn connection_specific_headers_and_those_connection_names_are_stripped() {
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-hop"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("proxy-connection", "close"),
            ("x-hop", "1"),
            ("x-end-to-end", "2"),
        ] {
            headers.insert(name, http::HeaderValue::from_static(value));
        }
        super::strip_connection_headers(&mut headers);
        let left: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
        assert_eq!(left, ["x-end-to-end"]);
    }
}
