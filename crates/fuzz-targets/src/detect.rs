//! The first bytes a client sends on a sniffed port: protocol detection decides HTTP/1.1,
//! h2c (the preface) or opaque TCP, reading them in the chunks the fuzzer chose.

use lateen_proxy::net::detect::detect;
use std::time::Duration;

/// First byte: the size of each read (1..=256); the rest: what the client sends, then EOF.
pub fn protocol_detect(data: &[u8]) {
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    let mut reader = Chunked { rest: body, chunk };
    let _ = runtime.block_on(detect(&mut reader, Duration::from_secs(1)));
}

/// A reader that hands out at most `chunk` bytes a read, as a slow client's segments.
struct Chunked<'a> {
    rest: &'a [u8],
    chunk: usize,
}

impl tokio::io::AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let take = self.chunk.min(self.rest.len()).min(buf.remaining());
        let (head, tail) = self.rest.split_at(take);
        buf.put_slice(head);
        self.rest = tail;
        std::task::Poll::Ready(Ok(()))
    }
}
