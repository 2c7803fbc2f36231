//! The bound on one worker's upstream connections (issue #16 item 3). Every connection the
//! pool opens (HTTP/1.1, HTTP/2, upgrades, TCP proxying) holds a [`ConnSlot`] for as long as
//! its socket is open, so a client with 3000 streams cannot make 3000 upstream connections
//! and run the process out of descriptors. A request that finds no idle connection and no
//! free slot waits, briefly and in a bounded queue, for either (see `Pool::send_h1`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// Requests of one worker that may wait for an upstream connection at once (Envoy's default
/// `max_pending_requests`); more are refused at once with 503 `UO`.
pub const MAX_WAITING: usize = 1024;

/// The first pause before a waiting request looks again unprompted; it doubles up to
/// [`MAX_RECHECK`].
const FIRST_RECHECK: Duration = Duration::from_millis(5);
const MAX_RECHECK: Duration = Duration::from_millis(100);

/// One worker's upstream connections: how many are open against the limit, and the requests
/// waiting for one.
#[derive(Debug)]
pub struct ConnBudget {
    limit: usize,
    open: AtomicUsize,
    waiting: AtomicUsize,
    /// Woken when a slot frees or a busy connection becomes idle.
    freed: Notify,
}

impl ConnBudget {
    pub fn new(limit: usize) -> Arc<ConnBudget> {
        Arc::new(ConnBudget {
            limit: limit.max(1),
            open: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A slot for one more connection, or `None` at the limit.
    pub fn try_take(self: &Arc<Self>) -> Option<ConnSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |open| {
                (open < self.limit).then_some(open + 1)
            })
            .ok()
            .map(|_| ConnSlot(self.clone()))
    }

    /// True while some request waits for a connection: only then does a connection that
    /// returns to the pool busy get watched until it is idle.
    pub fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// What `found` gives once a slot frees or a connection returns to the pool, waiting in
    /// the bounded queue for up to `patience`; `None` when the queue is full or time is up.
    pub async fn wait_for<T>(
        self: &Arc<Self>,
        patience: Duration,
        mut found: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        if let Some(found) = found() {
            return Some(found);
        }
        let _waiting = self.wait_turn()?;
        let deadline = tokio::time::Instant::now() + patience;
        let mut recheck = FIRST_RECHECK;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return None;
            }
            // A wake-up may be for another waiter or already used: look again each time, and
            // now and then without one (a connection returned busy becomes idle unannounced
            // when nobody waited as it came back).
            let _ =
                tokio::time::timeout_at((now + recheck).min(deadline), self.freed.notified()).await;
            recheck = (recheck * 2).min(MAX_RECHECK);
            if let Some(found) = found() {
                return Some(found);
            }
        }
    }

    fn wait_turn(self: &Arc<Self>) -> Option<Waiting> {
        self.waiting
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |waiting| {
                (waiting < MAX_WAITING).then_some(waiting + 1)
            })
            .ok()
            .map(|_| Waiting(self.clone()))
    }

    /// Wakes one waiting request: a slot was freed or an idle connection returned.
    pub fn wake_one(&self) {
        self.freed.notify_one();
    }
}

/// A place in the queue of requests waiting for an upstream connection.
struct Waiting(Arc<ConnBudget>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One open upstream connection counted against its worker's budget.
#[derive(Debug)]
pub struct ConnSlot(Arc<ConnBudget>);

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.wake_one();
    }
}

/// A stream that holds its connection's slot until it is dropped (closed).
pub struct Slotted<S> {
    inner: S,
    _slot: ConnSlot,
}

impl<S> Slotted<S> {
    pub fn new(inner: S, slot: ConnSlot) -> Slotted<S> {
        Slotted { inner, _slot: slot }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Slotted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Slotted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back() {
        let budget = ConnBudget::new(2);
        let first = budget.try_take();
        let second = budget.try_take();
        assert!(first.is_some() && second.is_some());
        assert!(budget.try_take().is_none());
        drop(first);
        assert_eq!(budget.open(), 1);
        assert!(budget.try_take().is_some());
    }

    #[test]
    fn the_queue_of_waiters_is_bounded() {
        let budget = ConnBudget::new(1);
        let places: Vec<_> = (0..MAX_WAITING)
            .filter_map(|_| budget.wait_turn())
            .collect();
        assert_eq!(places.len(), MAX_WAITING);
        assert!(budget.has_waiters());
        assert!(budget.wait_turn().is_none());
        drop(places);
        assert!(!budget.has_waiters());
    }

    #[tokio::test]
    async fn a_waiter_gets_the_slot_freed_and_gives_up_at_its_deadline() {
        let budget = ConnBudget::new(1);
        let held = budget.try_take();
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move {
                budget
                    .wait_for(Duration::from_secs(5), || budget.try_take())
                    .await
                    .is_some()
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert!(waiter.await.unwrap_or(false), "the waiter got the slot");
        let _kept = budget.try_take();
        let late = budget
            .wait_for(Duration::from_millis(30), || budget.try_take())
            .await;
        assert!(late.is_none(), "no slot freed in time");
    }
}
