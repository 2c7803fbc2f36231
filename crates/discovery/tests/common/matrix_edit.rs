//! The live-edit rows, run on both data planes at once because they edit the shared config:
//! while a client per data plane keeps sending, the reviews VirtualService moves all traffic
//! to v2 (it must move within 2 s with no failed request), then an invalid version of the
//! file is written (lateend rejects it and traffic keeps flowing under the previous one).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::client::{Reply, Request, fetch};
use crate::common::{wait_until, write_config};
use crate::dataplane::DataPlane;
use crate::matrix::{Mesh, Outcome};
use crate::matrix_config::{REVIEWS_ALL_V2, REVIEWS_INVALID};

type Seen = Vec<(Instant, Option<Reply>)>;

/// (live VirtualService edit, rejected bad file) outcomes for each data plane.
pub async fn live_edit_and_bad_file(mesh: &Mesh) -> Vec<(DataPlane, Outcome, Outcome)> {
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = DataPlane::ALL
        .iter()
        .map(|&plane| {
            let (stop, target) = (stop.clone(), mesh.plane(plane).egress);
            tokio::spawn(async move {
                let mut seen: Seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let request = Request {
                        target,
                        source: None,
                        host: "reviews",
                        path: "/",
                        headers: &[],
                    };
                    seen.push((Instant::now(), fetch(&request).await));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (plane, seen)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let edited_at = Instant::now();
    write_config(&mesh.config, "reviews.yaml", REVIEWS_ALL_V2);
    tokio::time::sleep(Duration::from_secs(4)).await;

    let broken_at = Instant::now();
    write_config(&mesh.config, "reviews.yaml", REVIEWS_INVALID);
    let logged = wait_until("the rejection log line", || async {
        mesh.lateend.process.log().lines().any(|l| {
            l.contains("config rejected")
                && l.contains("reviews.yaml")
                && l.contains("spec.http[0].route[0].weight")
        })
    })
    .await
    .is_ok();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let metrics = crate::common::get(mesh.lateend.debug, "x", "/metrics", &[])
        .await
        .map(|m| m.1)
        .unwrap_or_default();
    let counted = metrics.contains("lateend_config_rejected_total 1");

    let mut out = Vec::new();
    for client in clients {
        let Ok((plane, seen)) = client.await else {
            continue;
        };
        let edit = judge_edit(&seen, edited_at, broken_at);
        let bad = judge_bad_file(&seen, broken_at, logged && counted);
        out.push((plane, edit, bad));
    }
    out
}

fn ok_v2(reply: &Option<Reply>) -> bool {
    reply
        .as_ref()
        .is_some_and(|r| r.status == 200 && r.body == "reviews-v2")
}

/// Traffic sent after the edit and before the bad file: every request succeeded and none
/// reached the old subsets later than 2 s after the edit.
fn judge_edit(seen: &Seen, edited_at: Instant, broken_at: Instant) -> Outcome {
    let window: Vec<_> = seen.iter().filter(|(t, _)| *t < broken_at).collect();
    let failed = window
        .iter()
        .filter(|(_, r)| r.as_ref().is_none_or(|r| r.status != 200))
        .count();
    let moved_after = window
        .iter()
        .filter(|(t, r)| *t >= edited_at && !ok_v2(r))
        .map(|(t, _)| t.duration_since(edited_at))
        .max()
        .unwrap_or_default();
    let pass = failed == 0 && moved_after <= Duration::from_secs(2) && window.len() > 10;
    Outcome::new(
        pass,
        format!(
            "moved within {:.2} s, {failed} failed of {}",
            moved_after.as_secs_f64(),
            window.len()
        ),
    )
}

/// After the invalid file: lateend logged and counted the rejection, and every request
/// still succeeded on the previous config (all v2).
fn judge_bad_file(seen: &Seen, broken_at: Instant, rejected: bool) -> Outcome {
    let after: Vec<_> = seen.iter().filter(|(t, _)| *t >= broken_at).collect();
    let kept = after.iter().filter(|(_, r)| ok_v2(r)).count();
    let pass = rejected && after.len() > 10 && kept == after.len();
    Outcome::new(
        pass,
        format!(
            "rejected: {rejected}; {kept}/{} still 200 from v2",
            after.len()
        ),
    )
}
