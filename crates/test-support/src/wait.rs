//! Waiting for something to become true, always bounded in time: [`poll`] (blocking) and
//! [`poll_async`] return `None` when the limit passes, for a test that handles that itself;
//! [`until`], [`until_some`] and [`eventually`] panic naming what never happened (with a
//! report, such as the logs of the processes involved, from [`until_or`]); [`port_open`]
//! waits for a TCP listener. The one place tests wait, so none of them writes its own loop.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How often a condition is checked: often enough not to slow tests, rare enough not to busy
/// a shared 2-core machine.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Calls `check` every [`INTERVAL`] until it returns `Some`, for at most `limit` (`check` runs
/// at least once, and once more at the deadline).
pub fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(INTERVAL.min(deadline - now));
    }
}

/// [`poll`] for async tests: sleeps on tokio's timer between checks.
pub async fn poll_async<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return None;
        }
        tokio::time::sleep(INTERVAL.min(deadline - now)).await;
    }
}

/// Waits up to `limit` for `check` to hold; panics naming `what` when it never does.
pub fn until(what: &str, limit: Duration, check: impl FnMut() -> bool) {
    until_or(what, limit, check, String::new);
}

/// [`until`], and the panic message ends with `report()` (logs, the last state seen).
pub fn until_or(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> bool,
    report: impl FnOnce() -> String,
) {
    if poll(limit, || check().then_some(())).is_none() {
        panic!("timed out after {limit:?} waiting for {what}\n{}", report());
    }
}

/// Waits up to `limit` for `check` to return `Some`, and returns its value; panics naming
/// `what` when it never does.
pub fn until_some<T>(what: &str, limit: Duration, check: impl FnMut() -> Option<T>) -> T {
    match poll(limit, check) {
        Some(value) => value,
        None => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// [`until_some`] for async tests.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match poll_async(limit, check).await {
        Some(value) => value,
        None => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Whether something accepts TCP connections on `address` within `limit`.
pub fn port_open(address: SocketAddr, limit: Duration) -> bool {
    poll(limit, || {
        TcpStream::connect_timeout(&address, INTERVAL)
            .ok()
            .map(|_| ())
    })
    .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_gives_up_at_the_limit() {
        let started = Instant::now();
        let mut calls = 0;
        let found: Option<()> = poll(Duration::from_millis(250), || {
            calls += 1;
            None
        });
        assert!(found.is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!((2..=5).contains(&calls), "{calls} checks");
    }

    #[test]
    fn until_some_returns_the_value() {
        let mut n = 0;
        let value = until_some("the third call", Duration::from_secs(5), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(value, 3);
    }

    #[test]
    #[should_panic(expected = "waiting for nothing\nthe report")]
    fn until_or_panics_with_the_report() {
        until_or(
            "nothing",
            Duration::from_millis(50),
            || false,
            || "the report".to_string(),
        );
    }

    #[test]
    fn port_open_sees_a_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        assert!(port_open(address, Duration::from_secs(2)));
    }
}
