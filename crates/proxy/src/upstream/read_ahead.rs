//! [`ReadAhead`]: an I/O wrapper under an upstream HTTP/1.1 connection that reads the socket
//! in large gulps while a body streams in, and in its caller's small reads otherwise.
//!
//! Why: hyper reads an upstream HTTP/1.1 connection into a fixed 4 KiB buffer (see
//! `connect_h1`): with one connection per concurrent request, a larger buffer per
//! connection costs megabytes at a few hundred connections. But a 1 GiB download then costs
//! 262,144 `recv` calls (issue 16 item 10). This wrapper keeps the small buffer for small
//! messages and, once a read fills what hyper asked for (more is waiting in the socket), reads
//! ahead into a buffer of its own that starts at [`FIRST_GULP`] and doubles while reads fill
//! it, up to [`MAX_GULP`]; hyper's 4 KiB reads are then served from memory. The buffer is
//! freed as soon as it is drained and the socket has nothing more, so an idle pooled
//! connection holds none of it: memory is spent only while bytes are flowing.

use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The first read-ahead, once a read showed that more is waiting.
pub const FIRST_GULP: usize = 16 * 1024;
/// The largest read-ahead: beyond it the per-call cost is already negligible next to the copy.
pub const MAX_GULP: usize = 256 * 1024;

pub struct ReadAhead<S> {
    inner: S,
    /// Read ahead and not yet handed to the caller.
    buffer: BytesMut,
    /// The size of the next read-ahead; 0 while reads go straight to the caller.
    gulp: usize,
}

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> ReadAhead<S> {
        ReadAhead {
            inner,
            buffer: BytesMut::new(),
            gulp: 0,
        }
    }

    /// How many bytes are allocated for reading ahead (0 when idle).
    pub fn buffered_capacity(&self) -> usize {
        self.buffer.capacity()
    }

    fn hand_out(&mut self, out: &mut ReadBuf<'_>) {
        let count = out.remaining().min(self.buffer.len());
        out.put_slice(&self.buffer[..count]);
        self.buffer.advance(count);
    }

    /// Next size after a read-ahead of `read` bytes into a buffer of `gulp`: doubled while
    /// reads fill it, halved when they use under a quarter, and back to direct reads once a
    /// read is smaller than the first gulp's quarter (the body is ending or trickling).
    fn next_gulp(gulp: usize, read: usize) -> usize {
        if read >= gulp {
            (gulp * 2).min(MAX_GULP)
        } else if read < FIRST_GULP / 4 {
            0
        } else if read < gulp / 4 {
            (gulp / 2).max(FIRST_GULP)
        } else {
            gulp
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.buffer.is_empty() {
            this.hand_out(out);
            return Poll::Ready(Ok(()));
        }
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.gulp == 0 {
            // Straight into the caller's buffer; a read that fills it says more is waiting.
            let asked = out.remaining();
            let before = out.filled().len();
            let polled = Pin::new(&mut this.inner).poll_read(cx, out);
            if let Poll::Ready(Ok(())) = polled
                && out.filled().len() - before == asked
            {
                this.gulp = FIRST_GULP;
            }
            return polled;
        }
        // Allocated only while bytes flow (freed below); not zeroed: `poll_read_buf` reads
        // into the spare capacity.
        this.buffer.clear();
        this.buffer.reserve(this.gulp);
        match tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.buffer) {
            Poll::Ready(Ok(read)) => {
                this.gulp = Self::next_gulp(this.gulp, read);
                this.hand_out(out);
                if this.buffer.is_empty() && this.gulp == 0 {
                    this.buffer = BytesMut::new();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => {
                // Drained and the socket is quiet: an idle connection holds no read-ahead.
                this.buffer = BytesMut::new();
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, data)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "read_ahead_tests.rs"]
mod tests;
