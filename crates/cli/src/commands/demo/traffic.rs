//! `--traffic RPS`: steady requests to productpage while the demo runs, so the dashboard's
//! service graph (and Prometheus, Kiali, ...) has something to show. Each request is a
//! blocking GET on the blocking pool with the client's own timeouts; a failed one is only
//! counted, and ticks missed while requests are slow are skipped rather than bunched.

use std::time::Duration;

use super::http;
use super::mesh::{SERVICE_PORT, WORKLOADS};
use super::mode::Mode;

/// Requests in flight at most: beyond that a tick is skipped.
const MAX_IN_FLIGHT: usize = 16;

/// Sends `rps` requests a second to productpage until the task is dropped.
pub async fn run(mode: Mode, rps: u32) {
    let address = format!("{}:{SERVICE_PORT}", WORKLOADS[0].address(mode));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rps.max(1))));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let in_flight = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    loop {
        ticker.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            continue;
        };
        let address = address.clone();
        tokio::task::spawn_blocking(move || {
            let _ = http::get(&address, "/productpage", Some("productpage"));
            drop(permit);
        });
    }
}
