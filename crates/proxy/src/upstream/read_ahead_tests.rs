use super::*;
use std::task::Waker;

/// A socket with `available` bytes waiting, then (when `ends`) the end of the stream, else
/// nothing more for now.
struct Socket {
    available: Vec<u8>,
    read: usize,
    ends: bool,
    calls: usize,
}

impl Socket {
    fn with(available: Vec<u8>, ends: bool) -> Socket {
        Socket {
            available,
            read: 0,
            ends,
            calls: 0,
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.calls += 1;
        let left = &this.available[this.read..];
        if left.is_empty() {
            return if this.ends {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        }
        let count = left.len().min(out.remaining());
        out.put_slice(&left[..count]);
        this.read += count;
        Poll::Ready(Ok(()))
    }
}

/// What one 4 KiB read (hyper's) gave: bytes, or `None` for not ready.
fn read_4k(reader: &mut ReadAhead<Socket>) -> Option<Vec<u8>> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut space = [0u8; 4096];
    let mut out = ReadBuf::new(&mut space);
    match Pin::new(reader).poll_read(&mut cx, &mut out) {
        Poll::Ready(Ok(())) => Some(out.filled().to_vec()),
        Poll::Ready(Err(err)) => panic!("read failed: {err}"),
        Poll::Pending => None,
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn small_messages_are_read_straight_into_the_callers_buffer() {
    let mut reader = ReadAhead::new(Socket::with(b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), false));
    assert_eq!(
        read_4k(&mut reader).as_deref(),
        Some(&b"HTTP/1.1 200 OK\r\n\r\n"[..])
    );
    assert_eq!(read_4k(&mut reader), None);
    assert_eq!(reader.buffered_capacity(), 0);
    assert_eq!(reader.inner.calls, 2);
}

#[test]
fn a_bulk_body_is_read_in_growing_gulps_and_handed_out_in_order() {
    let body = pattern(4 * 1024 * 1024);
    let mut reader = ReadAhead::new(Socket::with(body.clone(), true));
    let mut got = Vec::with_capacity(body.len());
    let mut largest = 0;
    for _ in 0..4096 {
        match read_4k(&mut reader) {
            Some(bytes) if bytes.is_empty() => break,
            Some(bytes) => got.extend_from_slice(&bytes),
            None => panic!("the socket is never quiet here"),
        }
        largest = largest.max(reader.buffered_capacity());
        assert!(reader.buffered_capacity() <= 2 * MAX_GULP);
    }
    assert_eq!(got.len(), body.len());
    assert!(got == body, "bytes out of order");
    assert!(largest >= MAX_GULP, "the gulp never grew: {largest}");
    // 1024 reads of 4 KiB by the caller; the socket saw a small fraction of that.
    assert!(
        reader.inner.calls < 40,
        "{} socket reads",
        reader.inner.calls
    );
}

#[test]
fn the_read_ahead_is_freed_once_drained_and_the_socket_is_quiet() {
    let mut reader = ReadAhead::new(Socket::with(pattern(100 * 1024), false));
    let mut total = 0;
    for _ in 0..100 {
        match read_4k(&mut reader) {
            Some(bytes) => total += bytes.len(),
            None => break,
        }
    }
    assert_eq!(total, 100 * 1024);
    assert_eq!(reader.buffered_capacity(), 0);
}

#[test]
fn the_end_of_the_stream_passes_through() {
    let mut reader = ReadAhead::new(Socket::with(pattern(8192), true));
    assert_eq!(read_4k(&mut reader).map(|b| b.len()), Some(4096));
    assert_eq!(read_4k(&mut reader).map(|b| b.len()), Some(4096));
    assert_eq!(read_4k(&mut reader).map(|b| b.len()), Some(0));
}

#[test]
fn gulps_double_while_filled_and_fall_back_when_the_body_trickles() {
    assert_eq!(
        ReadAhead::<Socket>::next_gulp(FIRST_GULP, FIRST_GULP),
        2 * FIRST_GULP
    );
    assert_eq!(ReadAhead::<Socket>::next_gulp(MAX_GULP, MAX_GULP), MAX_GULP);
    assert_eq!(
        ReadAhead::<Socket>::next_gulp(MAX_GULP, 10 * 1024),
        MAX_GULP / 2
    );
    assert_eq!(
        ReadAhead::<Socket>::next_gulp(64 * 1024, 20 * 1024),
        64 * 1024
    );
    assert_eq!(ReadAhead::<Socket>::next_gulp(64 * 1024, 100), 0);
}
