//! The pool against a real HTTP/1.1 server on 127.0.0.1: connections bounded by the worker's
//! budget, and swept when their endpoint leaves the configuration or has been idle past the
//! idle timeout.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use super::budget::ConnBudget;
use super::limits::IDLE_TIMEOUT;
use super::pool::{Pool, REMOVED_ENDPOINT_IDLE, Target, UpstreamError, UpstreamVersion};
use crate::config::model::ConnectionLimits;
use crate::http::body::ProxyBody;
use crate::metrics::Metrics;

/// An HTTP/1.1 server answering every request with 200 after `delay`.
async fn server(delay: Duration) -> SocketAddr {
    serve(delay, false).await
}

/// An HTTP/1.1 (or, when `h2`, prior-knowledge HTTP/2) server answering every request with
/// 200 after `delay`.
async fn serve(delay: Duration, h2: bool) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("address: {e}"));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                    ))
                });
                let io = TokioIo::new(stream);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(io, service)
                    .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    address
}

fn target(address: SocketAddr) -> Target {
    Target {
        address,
        source: None,
        tls: None,
        limits: Default::default(),
    }
}

async fn get(pool: &Pool, address: SocketAddr) -> Result<u16, UpstreamError> {
    get_within(pool, address, Duration::from_millis(500)).await
}

/// A GET that waits at most `patience` to connect (or for a connection).
async fn get_within(
    pool: &Pool,
    address: SocketAddr,
    patience: Duration,
) -> Result<u16, UpstreamError> {
    get_from(pool, target(address), UpstreamVersion::Http1, patience).await
}

/// A GET to `target` over `version`, its body read to the end.
async fn get_from(
    pool: &Pool,
    target: Target,
    version: UpstreamVersion,
    patience: Duration,
) -> Result<u16, UpstreamError> {
    let request = http::Request::get(format!("http://{}/", target.address))
        .body(ProxyBody::full(bytes::Bytes::new()))
        .unwrap_or_else(|e| panic!("request: {e}"));
    let response = pool.send(target, version, patience, request).await?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

#[tokio::test]
async fn an_endpoint_that_left_the_configuration_is_swept() {
    let address = server(Duration::ZERO).await;
    let pool = Pool::new(Arc::new(Metrics::default()), None);
    assert_eq!(get(&pool, address).await.ok(), Some(200));
    // Let the connection become idle once its response has been read.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(pool.pooled_endpoints(), 1);
    let live: HashSet<SocketAddr> = [address].into();
    pool.sweep(IDLE_TIMEOUT, Duration::ZERO, &live);
    assert_eq!(
        pool.pooled_endpoints(),
        1,
        "a live endpoint keeps its connection"
    );
    pool.sweep(IDLE_TIMEOUT, Duration::ZERO, &HashSet::new());
    assert_eq!(
        pool.pooled_endpoints(),
        0,
        "a removed endpoint is forgotten"
    );
    assert!(
        all_connections_closed(&pool).await,
        "its connection closed and gave its slot back"
    );
}

/// Until the budget has every connection back (its sockets closed), at most 2 s.
async fn all_connections_closed(pool: &Pool) -> bool {
    connections_settle_at(pool, 0).await
}

/// Until at most `open` connections hold a slot of the budget, at most 2 s.
async fn connections_settle_at(pool: &Pool, open: usize) -> bool {
    tokio::time::timeout(Duration::from_secs(2), async {
        while pool.budget().open() > open {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_live_endpoints_connection_idle_past_the_idle_timeout_is_closed() {
    let address = server(Duration::ZERO).await;
    let pool = Pool::new(Arc::new(Metrics::default()), None);
    let live: HashSet<SocketAddr> = [address].into();
    assert_eq!(get(&pool, address).await.ok(), Some(200));
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Idle for 50 ms: within a 1 s idle timeout it stays.
    pool.sweep(Duration::from_secs(1), REMOVED_ENDPOINT_IDLE, &live);
    assert_eq!(pool.pooled_endpoints(), 1, "kept within the idle timeout");
    assert_eq!(pool.budget().open(), 1);
    // Past a 20 ms one it goes, though the endpoint is still in the configuration.
    pool.sweep(Duration::from_millis(20), REMOVED_ENDPOINT_IDLE, &live);
    assert_eq!(pool.pooled_endpoints(), 0, "closed past the idle timeout");
    assert!(
        all_connections_closed(&pool).await,
        "its connection closed and gave its slot back"
    );
    // The endpoint is still served, on a new connection.
    assert_eq!(get(&pool, address).await.ok(), Some(200));
}

#[tokio::test]
async fn requests_beyond_the_budget_wait_for_a_connection_or_overflow() {
    let address = server(Duration::from_millis(100)).await;
    let pool = Arc::new(Pool::with_budget(
        Arc::new(Metrics::default()),
        None,
        ConnBudget::new(2),
    ));
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { get(&pool, address).await.ok() })
        })
        .collect();
    let mut answered = 0;
    for request in requests {
        if request.await.ok().flatten() == Some(200) {
            answered += 1;
        }
        assert!(pool.budget().open() <= 2, "at most the budget is open");
    }
    assert_eq!(
        answered, 6,
        "the waiting requests reused the two connections"
    );
    // Both slots hold idle connections to `address`: another endpoint gets one of them.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let other = server(Duration::from_millis(300)).await;
    assert_eq!(
        get(&pool, other).await.ok(),
        Some(200),
        "an idle slot was given up"
    );
    assert!(pool.budget().open() <= 2);
}

#[tokio::test]
async fn a_request_that_cannot_get_a_connection_in_time_overflows() {
    let slow = server(Duration::from_millis(400)).await;
    let pool = Arc::new(Pool::with_budget(
        Arc::new(Metrics::default()),
        None,
        ConnBudget::new(1),
    ));
    let busy = {
        let pool = pool.clone();
        tokio::spawn(async move { get(&pool, slow).await.ok() })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = get_within(&pool, slow, Duration::from_millis(100)).await;
    assert!(
        matches!(refused, Err(UpstreamError::Overflow { limit: 1 })),
        "{refused:?}"
    );
    assert_eq!(busy.await.ok().flatten(), Some(200));
}

#[tokio::test]
async fn the_large_buffer_connections_are_handed_out_first() {
    let address = server(Duration::from_millis(100)).await;
    let pool = Arc::new(Pool::new(Arc::new(Metrics::default()), None));
    let requests: Vec<_> = (0..6)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { get(&pool, address).await.ok() })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.ok().flatten(), Some(200));
    }
    let large = super::read_buffer::LARGE_PER_WORKER;
    let on_top = |flags: &[bool]| {
        flags.iter().filter(|large| **large).count() == large
            && flags.iter().rev().take(large).all(|large| *large)
    };
    let flags = pool.idle_large_buffers(address);
    assert_eq!(flags.len(), 6);
    assert!(on_top(&flags), "large ones on top: {flags:?}");
    // A request takes a large one and gives it back on top again.
    assert_eq!(get(&pool, address).await.ok(), Some(200));
    let flags = pool.idle_large_buffers(address);
    assert!(on_top(&flags), "still on top: {flags:?}");
}

/// Connections the pool has opened so far.
fn opened(metrics: &Metrics) -> u64 {
    metrics
        .stats
        .upstream_cx_total
        .load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test]
async fn a_connection_carries_at_most_its_clusters_requests_over_either_protocol() {
    for (h2, version) in [
        (false, UpstreamVersion::Http1),
        (true, UpstreamVersion::Http2),
    ] {
        let address = serve(Duration::ZERO, h2).await;
        let metrics = Arc::new(Metrics::default());
        let pool = Pool::new(metrics.clone(), None);
        let limited = Target {
            limits: ConnectionLimits {
                max_requests_per_connection: Some(2),
                ..Default::default()
            },
            ..target(address)
        };
        for _ in 0..5 {
            let answer =
                get_from(&pool, limited.clone(), version, Duration::from_millis(500)).await;
            assert_eq!(answer.ok(), Some(200), "{version:?}");
            // Let an HTTP/1.1 connection become ready again once its body has been read.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            opened(&metrics),
            3,
            "{version:?}: five requests, two per connection"
        );
        // Without limits, one connection carries them all.
        for _ in 0..5 {
            let answer =
                get_from(&pool, target(address), version, Duration::from_millis(500)).await;
            assert_eq!(answer.ok(), Some(200), "{version:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            opened(&metrics),
            4,
            "{version:?}: one more connection for the rest"
        );
    }
}

#[tokio::test]
async fn the_clusters_idle_timeout_and_maximum_duration_close_pooled_connections() {
    let address = server(Duration::ZERO).await;
    let pool = Pool::new(Arc::new(Metrics::default()), None);
    let live: HashSet<SocketAddr> = [address].into();
    let with = |limits: ConnectionLimits| Target {
        limits,
        ..target(address)
    };
    let short_idle = with(ConnectionLimits {
        idle_timeout: Some(Duration::from_millis(20)),
        ..Default::default()
    });
    let never_idle = with(ConnectionLimits {
        idle_timeout: Some(Duration::ZERO),
        ..Default::default()
    });
    let short_life = with(ConnectionLimits {
        max_connection_duration: Some(Duration::from_millis(20)),
        ..Default::default()
    });
    for target in [&short_idle, &never_idle, &short_life] {
        let answer = get_from(
            &pool,
            target.clone(),
            UpstreamVersion::Http1,
            Duration::from_millis(500),
        )
        .await;
        assert_eq!(answer.ok(), Some(200));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(pool.pooled_endpoints(), 3);
    pool.sweep(IDLE_TIMEOUT, REMOVED_ENDPOINT_IDLE, &live);
    assert_eq!(
        pool.pooled_endpoints(),
        1,
        "the 20 ms idle timeout and the 20 ms lifetime are over; a zero idle timeout never is"
    );
    assert!(
        connections_settle_at(&pool, 1).await,
        "their sockets closed"
    );
    // A zero idle timeout outlasts even a 1 ms default.
    pool.sweep(Duration::from_millis(1), REMOVED_ENDPOINT_IDLE, &live);
    assert_eq!(pool.pooled_endpoints(), 1);
}

#[tokio::test]
async fn a_connection_idle_past_its_clusters_idle_timeout_is_not_handed_out_again() {
    let address = server(Duration::ZERO).await;
    let metrics = Arc::new(Metrics::default());
    let pool = Pool::new(metrics.clone(), None);
    let short_idle = Target {
        limits: ConnectionLimits {
            idle_timeout: Some(Duration::from_millis(200)),
            ..Default::default()
        },
        ..target(address)
    };
    let get = || {
        get_from(
            &pool,
            short_idle.clone(),
            UpstreamVersion::Http1,
            Duration::from_millis(500),
        )
    };
    assert_eq!(get().await.ok(), Some(200));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(get().await.ok(), Some(200));
    assert_eq!(opened(&metrics), 1, "reused within the idle timeout");
    // No sweep runs here: the request itself passes over the stale connection.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get().await.ok(), Some(200));
    assert_eq!(
        opened(&metrics),
        2,
        "a new connection past the idle timeout"
    );
}

#[tokio::test]
async fn streams_in_flight_on_a_spent_http2_connection_finish_while_a_new_one_takes_over() {
    let address = serve(Duration::from_millis(300), true).await;
    let metrics = Arc::new(Metrics::default());
    let pool = Arc::new(Pool::new(metrics.clone(), None));
    let one_each = Target {
        limits: ConnectionLimits {
            max_requests_per_connection: Some(1),
            ..Default::default()
        },
        ..target(address)
    };
    // Each request starts while the ones before it are still waiting for their answer.
    let requests: Vec<_> = (0..3u64)
        .map(|i| {
            let (pool, target) = (pool.clone(), one_each.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50 * i)).await;
                get_from(
                    &pool,
                    target,
                    UpstreamVersion::Http2,
                    Duration::from_secs(1),
                )
                .await
                .ok()
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.ok().flatten(), Some(200));
    }
    assert_eq!(opened(&metrics), 3, "a connection per request");
    assert!(
        all_connections_closed(&pool).await,
        "the spent connections closed once their streams ended"
    );
}
