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

/// What a body holds between polls once a chunk did not go straight on. Boxed: most bodies
/// never need it, and every in-flight request carries a [`Coalescing`] inline.
struct Holding<E> {
    held: Held,
    after: Option<After<E>>,
    /// Polls in a row that found the inner body not ready while data was held.
    not_ready: u8,
}

/// A body whose ready data chunks are joined up to [`TARGET_CHUNK`] (see the module doc).
pub struct Coalescing<B: Body> {
    inner: B,
    holding: Option<Box<Holding<B::Error>>>,
}

type Polled<E> = Poll<Option<Result<Frame<Bytes>, E>>>;

impl<B: Body<Data = Bytes>> Coalescing<B> {
    pub fn new(inner: B) -> Coalescing<B> {
        Coalescing {
            inner,
            holding: None,
        }
    }

    fn held_len(&self) -> usize {
        self.holding
            .as_ref()
            .map_or(0, |holding| holding.held.len())
    }

    /// Hands on the held data, else what ended the run of data.
    fn hand_on(&mut self) -> Polled<B::Error> {
        let Some(holding) = self.holding.as_mut() else {
            return Poll::Pending;
        };
        if let Some(data) = holding.held.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match holding.after.take() {
            Some(after) => {
                self.holding = None;
                Self::deliver(after)
            }
            None => Poll::Pending,
        }
    }

    fn deliver(after: After<B::Error>) -> Polled<B::Error> {
        match after {
            After::Frame(frame) => Poll::Ready(Some(Ok(frame))),
            After::Error(err) => Poll::Ready(Some(Err(err))),
            After::End => Poll::Ready(None),
        }
    }

    /// What ended the run of data goes out after the held data, or now if none is held.
    fn end_run(&mut self, after: After<B::Error>) -> Polled<B::Error> {
        match self.holding.as_mut() {
            Some(holding) if holding.held.len() > 0 => {
                holding.after = Some(after);
                self.hand_on()
            }
            _ => {
                self.holding = None;
                Self::deliver(after)
            }
        }
    }
}

impl<B> Body for Coalescing<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Polled<B::Error> {
        let this = self.get_mut();
        if this
            .holding
            .as_ref()
            .is_some_and(|holding| holding.after.is_some())
        {
            return this.hand_on();
        }
        loop {
            if this.held_len() >= TARGET_CHUNK {
                return this.hand_on();
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let holding = match this.holding.as_mut() {
                            Some(holding) => holding,
                            // The last chunk of a body with nothing held goes straight on.
                            None if this.inner.is_end_stream() => {
                                return Poll::Ready(Some(Ok(Frame::data(data))));
                            }
                            None => this.holding.insert(Box::new(Holding {
                                held: Held::Nothing,
                                after: None,
                                not_ready: 0,
                            })),
                        };
                        holding.not_ready = 0;
                        holding.held.push(data);
                    }
                    Err(frame) => return this.end_run(After::Frame(frame)),
                },
                Poll::Ready(Some(Err(err))) => return this.end_run(After::Error(err)),
                Poll::Ready(None) => return this.end_run(After::End),
                Poll::Pending => {
                    let Some(holding) = this.holding.as_mut().filter(|h| h.held.len() > 0) else {
                        return Poll::Pending;
                    };
                    holding.not_ready += 1;
                    if holding.not_ready >= PATIENCE {
                        holding.not_ready = 0;
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
        match &self.holding {
            Some(holding) => match &holding.after {
                Some(After::End) => holding.held.len() == 0,
                Some(_) => false,
                None => holding.held.len() == 0 && self.inner.is_end_stream(),
            },
            None => self.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let held = self.held_len() as u64;
        if let Some(holding) = &self.holding
            && matches!(holding.after, Some(After::End))
        {
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
