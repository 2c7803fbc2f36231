//! Routing rows of the matrix, from the control-plane issue's acceptance: weighted split,
//! header match, fault abort, retry, timeout, and no NACK. Each takes one data plane; paths
//! carry the plane's name where upstream state is per path (the flaky paths).

use std::time::{Duration, Instant};

use crate::common::lateend::all_synced;
use crate::common::wait_until;
use crate::dataplane::DataPlane;
use crate::matrix::{Mesh, Outcome, share};

/// 80/20 between reviews v1 and v3 over 1000 requests, within ±5 points.
pub async fn weighted_split(mesh: &Mesh, plane: DataPlane) -> Outcome {
    let host = format!("reviews:{}", mesh.port);
    let counts = mesh.tally(plane, 1000, &host, "/", &[]).await;
    let (v1, v3) = (
        share(&counts, 200, "reviews-v1"),
        share(&counts, 200, "reviews-v3"),
    );
    let pass = (v1 - 80.0).abs() <= 5.0 && (v3 - 20.0).abs() <= 5.0 && v1 + v3 == 100.0;
    Outcome::new(pass, format!("v1 {v1:.1}% / v3 {v3:.1}% of 1000"))
}

/// `end-user: jason` always goes to reviews v2.
pub async fn header_match(mesh: &Mesh, plane: DataPlane) -> Outcome {
    let counts = mesh
        .tally(plane, 100, "reviews", "/", &[("end-user", "jason")])
        .await;
    let v2 = share(&counts, 200, "reviews-v2");
    Outcome::new(v2 == 100.0, format!("v2 {v2:.0}% of 100"))
}

/// A 418 abort on 30% of requests (±5 points); the rest reach ratings.
pub async fn fault_abort(mesh: &Mesh, plane: DataPlane) -> Outcome {
    let counts = mesh
        .tally(
            plane,
            1000,
            "ratings.default.svc.cluster.local",
            "/fault",
            &[],
        )
        .await;
    let total: usize = counts.values().sum();
    let aborted = counts
        .iter()
        .filter(|((status, _), _)| *status == 418)
        .map(|(_, n)| n)
        .sum::<usize>();
    let aborted = 100.0 * aborted as f64 / total.max(1) as f64;
    let passed = share(&counts, 200, "ratings-v1");
    let pass = (aborted - 30.0).abs() <= 5.0 && aborted + passed == 100.0;
    Outcome::new(pass, format!("418 on {aborted:.1}% of 1000"))
}

/// `retries: 3, retryOn: 5xx` turns an upstream's first 503 into a 200; `attempts: 0`
/// does not retry.
pub async fn retry(mesh: &Mesh, plane: DataPlane) -> Outcome {
    let mut recovered = 0;
    for i in 0..20 {
        let path = format!("/flaky-{}-{i}", plane.workload());
        let got = mesh.send(plane, "ratings", &path, &[]).await;
        if got.is_some_and(|r| r.status == 200 && r.body == "ratings-v1") {
            recovered += 1;
        }
    }
    let path = format!("/noretry-{}", plane.workload());
    let no_retry = mesh
        .send(plane, "ratings", &path, &[])
        .await
        .map(|r| r.status);
    let pass = recovered == 20 && no_retry == Some(503);
    Outcome::new(
        pass,
        format!("{recovered}/20 503→200; attempts 0: {no_retry:?}"),
    )
}

/// A 500 ms route timeout turns a 2 s upstream into a 504 well before 2 s.
pub async fn timeout(mesh: &Mesh, plane: DataPlane) -> Outcome {
    let started = Instant::now();
    let got = mesh.send(plane, "details", "/slow", &[]).await;
    let took = started.elapsed();
    let status = got.map(|r| r.status);
    let fast = mesh
        .send(plane, "details", "/", &[])
        .await
        .map(|r| r.status);
    let pass = status == Some(504) && took < Duration::from_millis(1800) && fast == Some(200);
    Outcome::new(
        pass,
        format!("{status:?} after {:.2} s", took.as_secs_f64()),
    )
}

/// lateend's /debug/syncz shows the data plane SYNCED on every type with no NACK.
pub async fn no_nack(mesh: &Mesh, plane: DataPlane) -> Outcome {
    let id = plane.node_id();
    let synced = wait_until("SYNCED without NACK", || async {
        all_synced(mesh.lateend.debug, &[&id]).await
    })
    .await;
    let figure = match &synced {
        Ok(()) => "CDS/EDS/LDS/RDS SYNCED, no NACK".to_string(),
        Err(_) => syncz_row(mesh, &id).await,
    };
    Outcome::new(synced.is_ok(), figure)
}

/// The proxy's row of /debug/syncz, to show what is wrong.
async fn syncz_row(mesh: &Mesh, id: &str) -> String {
    let body = crate::common::get(mesh.lateend.debug, "x", "/debug/syncz", &[])
        .await
        .map(|(_, b)| b)
        .unwrap_or_default();
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    rows.as_array()
        .and_then(|rows| rows.iter().find(|r| r["proxy"] == id))
        .map_or("not connected".to_string(), |r| r.to_string())
}
