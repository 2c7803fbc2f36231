//! Gathers the writes of one poll of a connection task into as few system calls as it takes,
//! beneath the downstream HTTP/2 codec.
//!
//! `h2` hands each DATA frame (16 KiB at most, the client's frame size) to a write call of
//! its own and flushes after each, so a bulk response cost one `writev` per 16 KiB (65,536
//! per GiB) where Envoy writes several frames at once. Here a flush does not send at once:
//! what was written in this poll of the connection task is held (up to 64 KiB) and sent by
//! the first flush of a later poll, and the task wakes itself so that poll comes straight
//! away. `h2` flushes at the end of every poll of its connection and on shutdown, so nothing
//! held is left behind. The buffer lives only from a write to its send: an idle connection
//! holds none.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Writes gathered before they are sent, whatever the polls.
const BATCH: usize = 64 << 10;

/// Counts the polls of the task that owns a [`WriteBatch`]; the task ticks it as each poll
/// begins.
#[derive(Debug, Clone, Default)]
pub struct PollCount(Arc<AtomicU64>);

impl PollCount {
    pub fn tick(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

pub struct WriteBatch<I> {
    io: I,
    pending: Vec<u8>,
    /// How much of `pending` is sent already (a write can take part of it).
    sent: usize,
    /// The poll in which a flush was first held back, while something is held.
    held_since: Option<u64>,
    polls: PollCount,
}

impl<I> WriteBatch<I> {
    pub fn new(io: I, polls: PollCount) -> WriteBatch<I> {
        WriteBatch {
            io,
            pending: Vec::new(),
            sent: 0,
            held_since: None,
            polls,
        }
    }
}

impl<I: AsyncWrite + Unpin> WriteBatch<I> {
    /// Sends what is gathered. A large batch keeps its buffer for the next one (freeing and
    /// taking 64 KiB again for every batch made the allocator give memory back to the
    /// system each time: a `brk` call per batch); `poll_flush` frees it once a poll has
    /// written nothing.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let unsent = &self.pending[self.sent..];
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, unsent))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += written;
        }
        if self.sent >= BATCH / 2 {
            self.pending.clear();
        } else {
            self.pending = Vec::new();
        }
        self.sent = 0;
        self.held_since = None;
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes: sends what is held when they would not fit.
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<()>> {
        if self.pending.len() + len > BATCH {
            ready!(self.poll_send(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteBatch<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteBatch<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_room(cx, data.len()))?;
        if data.len() >= BATCH {
            return Pin::new(&mut this.io).poll_write(cx, data);
        }
        this.pending.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        parts: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = parts.iter().map(|part| part.len()).sum();
        ready!(this.poll_room(cx, total))?;
        if total >= BATCH {
            return Pin::new(&mut this.io).poll_write_vectored(cx, parts);
        }
        this.pending.reserve(total);
        for part in parts {
            this.pending.extend_from_slice(part);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_empty() && this.pending.capacity() > 0 {
            // A poll that wrote nothing: the flow has stopped, the buffer goes.
            this.pending = Vec::new();
        }
        if !this.pending.is_empty() {
            let poll = this.polls.now();
            match this.held_since {
                None => {
                    // Held until the next poll, which comes at once.
                    this.held_since = Some(poll);
                    cx.waker().wake_by_ref();
                    return Poll::Ready(Ok(()));
                }
                Some(held) if held == poll => return Poll::Ready(Ok(())),
                Some(_) => {}
            }
        }
        ready!(this.poll_send(cx))?;
        if this.pending.capacity() > 0 {
            // Kept for a flow that goes on; a poll must come to free it if none does.
            cx.waker().wake_by_ref();
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A sink that records each write call it gets, taking at most `limit` bytes of each.
    #[derive(Default)]
    struct Calls {
        writes: Vec<usize>,
        bytes: Vec<u8>,
        limit: Option<usize>,
    }

    impl AsyncWrite for Calls {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let taken = this.limit.map_or(data.len(), |limit| data.len().min(limit));
            this.writes.push(taken);
            this.bytes.extend_from_slice(&data[..taken]);
            Poll::Ready(Ok(taken))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn bytes(seed: usize, len: usize) -> Vec<u8> {
        (0..len).map(|offset| (seed * 7 + offset) as u8).collect()
    }

    #[tokio::test]
    async fn the_frames_of_one_poll_go_out_together_at_the_first_flush_of_the_next() {
        let polls = PollCount::default();
        let mut batch = WriteBatch::new(Calls::default(), polls.clone());
        let mut expected = Vec::new();
        // Three 16 KiB frames with their 9-byte headers, flushed after each, as h2 does.
        for seed in 0..3 {
            let (header, payload) = (bytes(seed, 9), bytes(seed + 100, 16 << 10));
            let parts = [io::IoSlice::new(&header), io::IoSlice::new(&payload)];
            let written = batch.write_vectored(&parts).await.expect("write");
            assert_eq!(written, header.len() + payload.len());
            batch.flush().await.expect("flush");
            expected.extend_from_slice(&header);
            expected.extend_from_slice(&payload);
        }
        assert!(batch.io.writes.is_empty(), "held within the poll");
        polls.tick();
        batch.flush().await.expect("flush");
        assert_eq!(batch.io.writes.len(), 1, "one write for the three frames");
        assert_eq!(batch.io.bytes, expected, "every byte, in order");
        // The buffer stays for a flow that goes on, and goes with a poll that wrote nothing.
        assert!(batch.pending.capacity() > 0);
        polls.tick();
        batch.flush().await.expect("flush");
        assert_eq!(
            batch.pending.capacity(),
            0,
            "nothing held once the flow stopped"
        );
    }

    #[tokio::test]
    async fn a_full_batch_and_a_shutdown_send_at_once_and_short_writes_lose_nothing() {
        let polls = PollCount::default();
        let mut batch = WriteBatch::new(
            Calls {
                limit: Some(1000),
                ..Calls::default()
            },
            polls,
        );
        let mut expected = Vec::new();
        for seed in 0..5 {
            let frame = bytes(seed, 16 << 10);
            batch.write_all(&frame).await.expect("write");
            expected.extend_from_slice(&frame);
        }
        assert!(
            !batch.io.writes.is_empty(),
            "64 KiB went out without a flush"
        );
        // A write as large as a batch goes straight to the socket, what it did not take
        // is gathered.
        let large = bytes(9, BATCH);
        batch.write_all(&large).await.expect("write");
        expected.extend_from_slice(&large);
        batch.shutdown().await.expect("shutdown");
        assert_eq!(batch.io.bytes, expected);
    }
}
