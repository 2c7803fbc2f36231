//! [`Coalescing`]: a body that joins the chunks its inner body has ready into one larger chunk
//! before handing them on, so a bulk body costs one downstream write per [`TARGET_CHUNK`]
//! bytes instead of one per upstream read.
//!
//! Why: on loopback and in a pod, every write of a TCP socket runs the receiver's side of the
//! stack in the writer's context; a `perf` profile of a 1 GiB download through the proxy was
//! 88 % kernel time, mostly per-write work (transmit, softirq, waking the reader), with the
//! upstream's 4 KiB reads turned into 4 KiB writes (issue 16 item 10). Envoy writes what its
//! buffer holds, at least 16 KiB at a time.
//!
//! Latency is kept: a chunk is held only while the inner body has more *immediately*. When the
//! inner body is not ready, the task yields (another task, typically the upstream
//! connection's, may be about to hand over the next chunk); if it is still not ready after
//! [`PATIENCE`] polls, what is held goes out. Streaming bodies (gRPC, server-sent events)
//! therefore see at most a scheduler round or two of delay, and a body that is never bulky is
//! never copied: a single chunk is passed on as it came.

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A coalesced chunk goes out once it holds this much: one loopback TSO segment is 64 KiB, so
/// larger writes gain little while the buffer costs memory per bulk body.
pub const TARGET_CHUNK: usize = 64 * 1024;

/// Polls that find the inner body not ready before held data goes out. Not 2: hyper's
/// HTTP/1.1 server polls a response body twice in one poll of its connection task (a second
/// write poll re-checks a pending body before it yields), so the second poll would come
/// before the upstream connection's task had its turn.
pub const PATIENCE: u8 = 3;

/// Data taken from the inner body and not yet handed on.
enum Held {
    Nothing,
    /// One chunk, passed on without a copy if nothing joins it.
    One(Bytes),
    /// Several chunks copied together.
    Joined(BytesMut),
}

impl Held {
    fn len(&self) -> usize {
        match self {
            Held::Nothing => 0,
            Held::One(bytes) => bytes.len(),
            Held::Joined(joined) => joined.len(),
        }
    }

    fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        match std::mem::replace(self, Held::Nothing) {
            Held::Nothing => *self = Held::One(data),
            Held::One(first) => {
                let mut joined =
                    BytesMut::with_capacity(TARGET_CHUNK.max(first.len() + data.len()));
                joined.extend_from_slice(&first);
                joined.extend_from_slice(&data);
                *self = Held::Joined(joined);
            }
            Held::Joined(mut joined) => {
                joined.extend_from_slice(&data);
                *self = Held::Joined(joined);
            }
        }
    }

    fn take(&mut self) -> Option<Bytes> {
        match std::mem::replace(self, Held::Nothing) {
            Held::Nothing => None,
            Held::One(bytes) => Some(bytes),
            Held::Joined(joined) => Some(joined.freeze()),
        }
    }
}

/// What the inner body said after data that is still held: it goes out next.
enum After<E> {
    Frame(Frame<Bytes>),
    Error(E),
    End,
}

/// A body whose ready data chunks are joined up to [`TARGET_CHUNK`] (see the module doc).
pub struct Coalescing<B: Body> {
    inner: B,
    held: Held,
    after: Option<Box<After<B::Error>>>,
    /// Polls in a row that found the inner body not ready while data was held.
    not_ready: u8,
}

impl<B: Body<Data = Bytes>> Coalescing<B> {
    pub fn new(inner: B) -> Coalescing<B> {
        Coalescing {
            inner,
            held: Held::Nothing,
            after: None,
            not_ready: 0,
        }
    }

    fn hand_on(&mut self) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.held.take() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None => self.after_held(),
        }
    }

    fn after_held(&mut self) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.after.take().map(|after| *after) {
            Some(After::Frame(frame)) => Poll::Ready(Some(Ok(frame))),
            Some(After::Error(err)) => Poll::Ready(Some(Err(err))),
            Some(After::End) => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// Holds what ended the run of data; it goes out after the held data.
    fn end_run(&mut self, after: After<B::Error>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.after = Some(Box::new(after));
        self.hand_on()
    }
}

impl<B> Body for Coalescing<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        if this.after.is_some() {
            return this.hand_on();
        }
        loop {
            if this.held.len() >= TARGET_CHUNK {
                return this.hand_on();
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.not_ready = 0;
                        this.held.push(data);
                    }
                    Err(frame) => return this.end_run(After::Frame(frame)),
                },
                Poll::Ready(Some(Err(err))) => return this.end_run(After::Error(err)),
                Poll::Ready(None) => return this.end_run(After::End),
                Poll::Pending => {
                    if this.held.len() == 0 {
                        return Poll::Pending;
                    }
                    this.not_ready += 1;
                    if this.not_ready >= PATIENCE {
                        this.not_ready = 0;
                        return this.hand_on();
                    }
                    // Give the task that feeds the inner body a turn before handing on.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.after.as_deref() {
            Some(After::End) => self.held.len() == 0,
            Some(_) => false,
            None => self.held.len() == 0 && self.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let held = self.held.len() as u64;
        if matches!(self.after.as_deref(), Some(After::End)) {
            return SizeHint::with_exact(held);
        }
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(held));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(held));
        }
        hint
    }
}

#[cfg(test)]
#[path = "coalesce_tests.rs"]
mod tests;
