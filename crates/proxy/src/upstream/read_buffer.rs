//! The read buffer of an upstream HTTP/1.1 connection: 4 KiB for most, 64 KiB for a few.
//!
//! Why two sizes: hyper hands a response body on in chunks no larger than its read buffer, and
//! each chunk costs a task hand-over and hyper's framing work, so a 1 GiB download through a
//! 4 KiB buffer spends a fifth of its CPU on 262,144 chunks (issue 16 item 10). A large buffer
//! per connection is what hyper's adaptive strategy gives, but with one upstream connection
//! per concurrent request it costs megabytes at a few hundred connections, the small-request
//! memory issue 2 won (hyper keeps the buffer while a connection is pooled). So each worker
//! gives the large buffer to at most [`LARGE_PER_WORKER`] live connections, the first it
//! opens, and the pool keeps them on top of its idle stacks, so they are handed out first: a
//! light load keeps reusing them and a bulk transfer usually finds one, at a bounded cost of
//! 120 KiB per worker. The others keep 4 KiB and read bulk bodies ahead through
//! [`super::read_ahead::ReadAhead`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The read buffer of most upstream HTTP/1.1 connections.
pub const SMALL: usize = 4 * 1024;
/// The read buffer of the few connections that may carry bulk bodies in large chunks.
pub const LARGE: usize = 64 * 1024;
/// Live connections per worker with the large buffer.
pub const LARGE_PER_WORKER: usize = 2;

/// One worker's count of live connections with the large buffer (clones share it).
#[derive(Debug, Default, Clone)]
pub struct LargeBuffers {
    live: Arc<AtomicUsize>,
}

/// A connection's claim on a large buffer; dropped with the connection.
#[derive(Debug)]
pub struct LargeBuffer {
    live: Arc<AtomicUsize>,
}

impl Drop for LargeBuffer {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

impl LargeBuffers {
    /// The read buffer size for a new connection, with the claim to keep alongside it when
    /// it is the large one.
    pub fn for_new_connection(&self) -> (usize, Option<LargeBuffer>) {
        let claimed = self
            .live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |live| {
                (live < LARGE_PER_WORKER).then_some(live + 1)
            })
            .is_ok();
        if claimed {
            let claim = LargeBuffer {
                live: self.live.clone(),
            };
            (LARGE, Some(claim))
        } else {
            (SMALL, None)
        }
    }

    /// Live connections holding a large buffer.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_connections_get_the_large_buffer_until_one_closes() {
        let buffers = LargeBuffers::default();
        let mut claims: Vec<_> = (0..LARGE_PER_WORKER)
            .map(|_| buffers.for_new_connection())
            .collect();
        assert!(
            claims
                .iter()
                .all(|(size, claim)| *size == LARGE && claim.is_some())
        );
        let (size, claim) = buffers.for_new_connection();
        assert_eq!((size, claim.is_none()), (SMALL, true));
        assert_eq!(buffers.live(), LARGE_PER_WORKER);
        claims.pop();
        assert_eq!(buffers.live(), LARGE_PER_WORKER - 1);
        assert_eq!(buffers.for_new_connection().0, LARGE);
    }
}
