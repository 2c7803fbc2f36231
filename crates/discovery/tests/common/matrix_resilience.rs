//! Resilience rows: outlier ejection and recovery, circuit breaking (503 with the UO
//! response flag), and request mirroring.

use std::time::{Duration, Instant};

use crate::common::client::{Request, fetch};
use crate::dataplane::DataPlane;
use crate::matrix::{Mesh, Outcome};

/// outlierDetection consecutive5xxErrors 3, interval 1 s, baseEjectionTime 3 s over three
/// round-robin hosts: while pool-c answers 500, exactly three 500s reach the client before
/// pool-c is ejected; once it is healthy again it takes traffic after the ejection time
/// (3 s, at most one interval later: between 2.5 and 6 s after the ejection).
pub async fn outlier(mesh: &Mesh, plane: DataPlane) -> Outcome {
    let bad = mesh.backend("pool-c");
    bad.set_failing(true);
    let mut errors = 0;
    let mut ejected_at = None;
    let mut after = Vec::new();
    for _ in 0..30 {
        let got = mesh.send(plane, "outlier", "/", &[]).await;
        let status = got.as_ref().map_or(0, |r| r.status);
        if ejected_at.is_some() {
            after.push(status);
        } else if status == 500 {
            errors += 1;
            if errors == 3 {
                ejected_at = Some(Instant::now());
                // Envoy ejects on its main thread and then updates the worker's host set:
                // give that a moment so a loaded machine does not race it.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    bad.set_failing(false);
    let clean = after.len() >= 15 && after.iter().all(|s| *s == 200);
    let Some(ejected_at) = ejected_at else {
        return Outcome::new(
            false,
            format!("{errors} 500s in 30 requests, never ejected"),
        );
    };
    let returned = back_in_rotation(mesh, plane, Duration::from_secs(10)).await;
    let back_after = returned.map(|t| t.duration_since(ejected_at));
    let timely =
        back_after.is_some_and(|d| d >= Duration::from_millis(2500) && d <= Duration::from_secs(6));
    let failed_after = after.iter().filter(|s| **s != 200).count();
    let figure = format!(
        "ejected after {errors}×500 ({failed_after} of {} later failed), back after {}",
        after.len(),
        back_after.map_or("never".to_string(), |d| format!("{:.1} s", d.as_secs_f64()))
    );
    Outcome::new(clean && timely, figure)
}

/// When pool-c first answers through `plane` again (polling every 50 ms up to `limit`).
async fn back_in_rotation(mesh: &Mesh, plane: DataPlane, limit: Duration) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let got = mesh.send(plane, "outlier", "/", &[]).await;
        if got.is_some_and(|r| r.status == 200 && r.body == "pool-c") {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// maxConnections 1, http1MaxPendingRequests 1, http2MaxRequests 1 against a host that
/// holds each request 1 s: one request is sent first (it takes the one connection), then 9
/// at once: one waits for the connection and 8 get 503 with `x-envoy-overloaded: true`
/// and the UO flag (lateen-proxy's `response_flags="UO"` metric). The first goes alone
/// because Envoy queues a request only once its connection is up.
pub async fn circuit_breaking(mesh: &Mesh, plane: DataPlane) -> Outcome {
    let uo_before = uo_count(mesh, plane).await;
    let target = mesh.plane(plane).egress;
    let requests: Vec<_> = (0..10)
        .map(|i| {
            tokio::spawn(async move {
                if i > 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let request = Request {
                    target,
                    source: None,
                    host: "breaker",
                    path: "/hold",
                    headers: &[],
                };
                fetch(&request).await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for request in requests {
        replies.push(request.await.ok().flatten());
    }
    let ok = replies.iter().flatten().filter(|r| r.status == 200).count();
    let rejected: Vec<_> = replies
        .iter()
        .flatten()
        .filter(|r| r.status == 503)
        .collect();
    let overloaded = rejected
        .iter()
        .filter(|r| r.header("x-envoy-overloaded") == Some("true"))
        .count();
    // lateen-proxy also counts the flag in its metrics (Envoy here has no Istio stats).
    let flagged = match plane {
        DataPlane::Envoy => overloaded,
        DataPlane::LateenProxy => {
            // Metrics are recorded when a response ends: give them a moment.
            tokio::time::sleep(Duration::from_millis(300)).await;
            uo_count(mesh, plane).await.saturating_sub(uo_before)
        }
    };
    let pass = ok == 2 && rejected.len() == 8 && overloaded == 8 && flagged == 8;
    Outcome::new(
        pass,
        format!(
            "{ok}×200, {}×503 ({overloaded} x-envoy-overloaded, {flagged} UO)",
            rejected.len()
        ),
    )
}

/// lateen-proxy's `istio_requests_total` with `response_flags="UO"`, summed.
async fn uo_count(mesh: &Mesh, plane: DataPlane) -> usize {
    let Some(port) = mesh.plane(plane).metrics else {
        return 0;
    };
    let text = crate::common::get(port, "x", "/stats/prometheus", &[])
        .await
        .map(|m| m.1)
        .unwrap_or_default();
    lateen_test_support::metrics_text::sum(
        &text,
        "istio_requests_total",
        &["response_flags=\"UO\""],
    ) as usize
}

/// mirror to `shadow` at 100%: every response comes from the primary and the shadow host
/// receives a copy of each of 20 requests (within 5 s; mirroring is fire-and-forget).
pub async fn mirroring(mesh: &Mesh, plane: DataPlane) -> Outcome {
    let shadow = mesh.backend("mirror-shadow");
    let before = shadow.hits();
    let mut primary = 0;
    for _ in 0..20 {
        let got = mesh.send(plane, "mirror", "/", &[]).await;
        if got.is_some_and(|r| r.status == 200 && r.body == "mirror-primary") {
            primary += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while shadow.hits() - before < 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let copies = shadow.hits() - before;
    Outcome::new(
        primary == 20 && copies == 20,
        format!("{primary}/20 from primary, {copies} copies mirrored"),
    )
}
