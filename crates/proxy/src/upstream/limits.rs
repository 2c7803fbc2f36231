//! When a pooled upstream connection is done with, by its cluster's [`ConnectionLimits`]
//! (Envoy's `common_http_protocol_options`, Istio's `connectionPool`): idle for longer than
//! the idle timeout, carried `max_requests_per_connection` requests, or used for longer than
//! `max_connection_duration`. A spent connection is not handed out again; it closes once its
//! last response has been read, as Envoy drains it.

use std::time::{Duration, Instant};

use crate::config::model::ConnectionLimits;

/// Envoy's default upstream `idle_timeout`, for clusters that set none.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long a connection has been open and how many requests it has been given.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    opened: Instant,
    requests: u32,
}

impl Usage {
    pub fn new() -> Usage {
        Usage {
            opened: Instant::now(),
            requests: 0,
        }
    }

    /// Counts a request handed to the connection; whether that spent it (see
    /// [`Usage::spent`]), so that it takes no more.
    pub fn take_request(&mut self, limits: &ConnectionLimits) -> bool {
        self.requests = self.requests.saturating_add(1);
        self.spent_now(limits)
    }

    /// Whether the connection may take no more requests: it has carried its maximum, or it
    /// has been open for its maximum duration.
    pub fn spent(&self, limits: &ConnectionLimits, now: Instant) -> bool {
        let carried = limits
            .max_requests_per_connection
            .is_some_and(|max| self.requests >= max);
        let aged = limits
            .max_connection_duration
            .is_some_and(|max| now.saturating_duration_since(self.opened) >= max);
        carried || aged
    }

    /// [`Usage::spent`] now; reads the clock only when the cluster has limits at all (the
    /// common case, checked on every returned connection, has none).
    fn spent_now(&self, limits: &ConnectionLimits) -> bool {
        (limits.max_requests_per_connection.is_some() || limits.max_connection_duration.is_some())
            && self.spent(limits, Instant::now())
    }
}

impl Default for Usage {
    fn default() -> Usage {
        Usage::new()
    }
}

/// Whether a connection idle for `idle_for` has passed its cluster's idle timeout
/// (`default` when the cluster sets none; never when it sets zero).
pub fn idle_too_long(limits: &ConnectionLimits, default: Duration, idle_for: Duration) -> bool {
    match limits.idle_timeout {
        Some(timeout) if timeout.is_zero() => false,
        Some(timeout) => idle_for > timeout,
        None => idle_for > default,
    }
}

/// Whether a pooled connection, idle since `idle_since`, may not be handed out again: idle
/// past its idle timeout (`default_idle` when its cluster sets none), or spent. Checked when
/// a request would take it, not only by the sweep: a short idle timeout is set to stay clear
/// of an upstream that closes idle connections itself.
pub fn done_with(
    limits: &ConnectionLimits,
    default_idle: Duration,
    idle_since: Instant,
    usage: &Usage,
    now: Instant,
) -> bool {
    idle_too_long(
        limits,
        default_idle,
        now.saturating_duration_since(idle_since),
    ) || usage.spent(limits, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_connection_is_spent_by_requests_or_by_age() {
        let limits = ConnectionLimits {
            max_requests_per_connection: Some(2),
            max_connection_duration: Some(10 * SECOND),
            ..Default::default()
        };
        let mut usage = Usage::new();
        let start = usage.opened;
        assert!(!usage.take_request(&limits));
        assert!(!usage.spent(&limits, start));
        assert!(usage.take_request(&limits), "two requests of two");
        assert!(usage.spent(&limits, start));
        let fresh = Usage::new();
        assert!(!fresh.spent(&limits, fresh.opened + 9 * SECOND));
        assert!(
            fresh.spent(&limits, fresh.opened + 10 * SECOND),
            "ten seconds old"
        );
        assert!(
            !fresh.spent(&ConnectionLimits::default(), fresh.opened + 1000 * SECOND),
            "no limits: never spent"
        );
    }

    #[test]
    fn the_idle_timeout_is_the_clusters_else_the_default_and_zero_means_never() {
        let default = 3600 * SECOND;
        let unset = ConnectionLimits::default();
        assert!(!idle_too_long(&unset, default, 3599 * SECOND));
        assert!(idle_too_long(&unset, default, 3601 * SECOND));
        let short = ConnectionLimits {
            idle_timeout: Some(SECOND),
            ..Default::default()
        };
        assert!(idle_too_long(&short, default, 2 * SECOND));
        let never = ConnectionLimits {
            idle_timeout: Some(Duration::ZERO),
            ..Default::default()
        };
        assert!(!idle_too_long(&never, default, 100_000 * SECOND));
    }
}
