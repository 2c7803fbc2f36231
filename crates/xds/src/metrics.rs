//! Plain atomic counters the control plane exports (for example with prometheus-client).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::types::{PUSH_ORDER, push_rank, short_name};

/// Upper bounds (seconds) of the push-latency histogram buckets; a last bucket catches the rest.
pub const PUSH_LATENCY_BOUNDS: [f64; 10] =
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Upper bounds (bytes) of the response-size histogram buckets (istiod's
/// `pilot_xds_config_size_bytes`); a last bucket catches the rest.
pub const CONFIG_SIZE_BOUNDS: [f64; 6] = [
    1.0,
    10_000.0,
    1_000_000.0,
    4_000_000.0,
    10_000_000.0,
    40_000_000.0,
];

/// Counters of the xDS server.
#[derive(Debug, Default)]
pub struct XdsMetrics {
    /// Responses sent, per type in [`PUSH_ORDER`] order; the last slot counts other types.
    pushes: [AtomicU64; PUSH_ORDER.len() + 1],
    /// NACKs received, same indexing.
    nacks: [AtomicU64; PUSH_ORDER.len() + 1],
    /// ACKs received (all types).
    pub acks: AtomicU64,
    /// Streams currently connected.
    pub connected_proxies: AtomicI64,
    /// Streams accepted since start.
    pub connections_total: AtomicU64,
    /// Streams opened with an `authorization: Bearer ...` header (the proxy's projected
    /// service-account token; carried, not yet checked).
    pub streams_with_token: AtomicU64,
    /// Time from `set_snapshot` to the ACK of the first push of that snapshot, per type push.
    pub push_latency: LatencyHistogram,
    /// Time from `set_snapshot` to the first response of that snapshot being sent, per type
    /// in [`PUSH_ORDER`] order (istiod's `pilot_xds_push_time`).
    push_time: [LatencyHistogram; PUSH_ORDER.len() + 1],
    /// Encoded size of each response sent, same indexing.
    config_size: [SizeHistogram; PUSH_ORDER.len() + 1],
}

/// Histogram of sizes in bytes over [`CONFIG_SIZE_BOUNDS`] (per-bucket counts, not cumulative).
#[derive(Debug, Default)]
pub struct SizeHistogram {
    pub buckets: [AtomicU64; CONFIG_SIZE_BOUNDS.len() + 1],
    pub count: AtomicU64,
    pub sum: AtomicU64,
}

impl SizeHistogram {
    /// Records one size.
    pub fn observe(&self, bytes: u64) {
        let slot = CONFIG_SIZE_BOUNDS
            .iter()
            .position(|b| bytes as f64 <= *b)
            .unwrap_or(CONFIG_SIZE_BOUNDS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Cumulative-free histogram: `buckets[i]` counts observations `<= PUSH_LATENCY_BOUNDS[i]`
/// and above the previous bound; the last slot counts the rest.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Per-bucket counts (not cumulative).
    pub buckets: [AtomicU64; PUSH_LATENCY_BOUNDS.len() + 1],
    /// Number of observations.
    pub count: AtomicU64,
    /// Sum of observations in microseconds.
    pub sum_micros: AtomicU64,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let slot = PUSH_LATENCY_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(PUSH_LATENCY_BOUNDS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

impl XdsMetrics {
    pub(crate) fn count_push(&self, type_url: &str) {
        self.pushes[push_rank(type_url)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn observe_push_time(&self, type_url: &str, elapsed: Duration) {
        self.push_time[push_rank(type_url)].observe(elapsed);
    }

    pub(crate) fn observe_config_size(&self, type_url: &str, bytes: u64) {
        self.config_size[push_rank(type_url)].observe(bytes);
    }

    /// Response-size histograms per short type name.
    pub fn config_size_by_type(&self) -> Vec<(&'static str, &SizeHistogram)> {
        self.config_size
            .iter()
            .enumerate()
            .map(|(i, h)| (PUSH_ORDER.get(i).map_or("other", |t| short_name(t)), h))
            .collect()
    }

    /// Push-time histograms per short type name.
    pub fn push_time_by_type(&self) -> Vec<(&'static str, &LatencyHistogram)> {
        self.push_time
            .iter()
            .enumerate()
            .map(|(i, h)| (PUSH_ORDER.get(i).map_or("other", |t| short_name(t)), h))
            .collect()
    }

    pub(crate) fn count_nack(&self, type_url: &str) {
        self.nacks[push_rank(type_url)].fetch_add(1, Ordering::Relaxed);
    }

    /// Pushes per short type name (`CDS`, `EDS`, ..., `other`).
    pub fn pushes_by_type(&self) -> Vec<(&'static str, u64)> {
        per_type(&self.pushes)
    }

    /// NACKs per short type name.
    pub fn nacks_by_type(&self) -> Vec<(&'static str, u64)> {
        per_type(&self.nacks)
    }

    /// All pushes.
    pub fn pushes_total(&self) -> u64 {
        self.pushes.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// All NACKs.
    pub fn nacks_total(&self) -> u64 {
        self.nacks.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

fn per_type(counters: &[AtomicU64]) -> Vec<(&'static str, u64)> {
    counters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let name = PUSH_ORDER.get(i).map_or("other", |t| short_name(t));
            (name, c.load(Ordering::Relaxed))
        })
        .collect()
}
