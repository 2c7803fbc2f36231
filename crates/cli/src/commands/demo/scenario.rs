//! `--scenario canary`: shifts reviews traffic from v1 to v3 in steps (0 → 20 → 100 %) by
//! rewriting the VirtualService in the config folder, sends requests to productpage from the
//! host at each step, and prints the split productpage's sidecar observed (its
//! `istio_requests_total` with reporter source, by destination version). The same in both
//! modes: only the addresses differ.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::config;
use super::http;
use super::mesh::{SERVICE_PORT, WORKLOADS};
use super::mode::Mode;

/// Requests sent at each step.
const REQUESTS: u32 = 200;

pub async fn canary(config_dir: &Path, mode: Mode) -> anyhow::Result<()> {
    let productpage = format!("{}:{SERVICE_PORT}", WORKLOADS[0].address(mode));
    let metrics = format!("{}:15090", WORKLOADS[0].address(mode));
    println!("\nScenario canary: reviews traffic moves from v1 to v3 in steps.");
    for share in [0u32, 20, 100] {
        let weights = [("v1", 100 - share), ("v3", share)];
        std::fs::write(
            config_dir.join("virtual-service-reviews.yaml"),
            config::reviews_virtual_service(&weights),
        )?;
        // lateend polls the folder (every 100 ms) and debounces pushes; give it time to land.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let before = reviews_counts(&metrics);
        let mut failed = 0;
        for _ in 0..REQUESTS {
            let productpage = productpage.clone();
            match tokio::task::spawn_blocking(move || {
                http::get(&productpage, "/productpage", Some("productpage"))
            })
            .await?
            {
                Ok((200, _)) => {}
                _ => failed += 1,
            }
        }
        let after = reviews_counts(&metrics);
        let observed: Vec<String> = after
            .iter()
            .map(|(version, count)| (version, count - before.get(version).copied().unwrap_or(0.0)))
            .filter(|(_, delta)| *delta > 0.0)
            .map(|(version, delta)| format!("{version} {:.0}%", delta * 100.0 / REQUESTS as f64))
            .collect();
        println!(
            "  v3 weight {share:>3}%: {REQUESTS} requests, {failed} failed; observed by productpage's sidecar: {}",
            observed.join(", ")
        );
    }
    Ok(())
}

/// Counts of requests from productpage's sidecar (metrics at `metrics`) to reviews, by
/// destination version.
fn reviews_counts(metrics: &str) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    let Ok((_, text)) = http::get(metrics, "/stats/prometheus", None) else {
        return counts;
    };
    for line in text.lines().filter(|line| {
        line.starts_with("istio_requests_total{")
            && line.contains("destination_service_name=\"reviews\"")
            && line.contains("reporter=\"source\"")
    }) {
        let version = line
            .split("destination_version=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("unknown");
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0);
        *counts.entry(version.to_string()).or_insert(0.0) += value;
    }
    counts
}
