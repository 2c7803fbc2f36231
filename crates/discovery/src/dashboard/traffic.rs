//! The service graph's numbers: per proxy a short window of scrapes of Istio's standard
//! metrics, reduced to counters per edge (source workload → destination workload through a
//! service), and the rates computed from the window's oldest and newest scrape the way
//! Prometheus' `rate()` and `histogram_quantile()` would over the same span.
//!
//! Which series make an edge: `reporter="source"` ones (the calling sidecar saw the request),
//! and `reporter="destination"` ones whose source is `unknown` (a caller outside the mesh,
//! which no source sidecar reports); the destination's view of a call between two sidecars is
//! only read for `connection_security_policy`, which Istio sets on that side, so no request
//! is counted twice.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::promtext::Sample;

/// Metric name prefixes a scrape keeps.
pub const METRICS: &[&str] = &[
    "istio_requests_total",
    "istio_request_duration_milliseconds",
];

/// The name of a caller or callee that is not a known workload.
pub const UNKNOWN: &str = "unknown";

/// How long a proxy's scrapes are kept: rates are averages over up to this span.
pub const WINDOW: Duration = Duration::from_secs(30);

/// How long after the dashboard was last asked for the graph the proxies are still scraped.
pub const KEEP_SCRAPING: Duration = Duration::from_secs(120);

/// One edge of the graph: who called whom through which service.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EdgeKey {
    /// `namespace/workload`, or [`UNKNOWN`].
    pub source: String,
    /// `namespace/workload`, or the service's host when the callee is not a known workload.
    pub destination: String,
    /// `destination_service` (a host).
    pub service: String,
}

/// Cumulative counters of one edge as one proxy reports them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    pub requests: f64,
    /// Responses with a 5xx code, or none at all (`response_code="0"`).
    pub errors: f64,
    /// Requests the destination saw over mutual TLS.
    pub mutual_tls: f64,
    /// Duration histogram: bucket upper bound (ms, by its bits: every bound is positive, so
    /// the bits sort as the numbers do) to cumulative count.
    pub buckets: BTreeMap<u64, f64>,
}

impl Counters {
    /// `self - earlier`, each counter taken whole when it went down (the proxy restarted).
    fn since(&self, earlier: &Counters) -> Counters {
        let delta = |now: f64, then: f64| if now >= then { now - then } else { now };
        Counters {
            requests: delta(self.requests, earlier.requests),
            errors: delta(self.errors, earlier.errors),
            mutual_tls: delta(self.mutual_tls, earlier.mutual_tls),
            buckets: self
                .buckets
                .iter()
                .map(|(le, n)| {
                    let then = earlier.buckets.get(le).copied().unwrap_or(0.0);
                    (*le, delta(*n, then))
                })
                .collect(),
        }
    }

    fn add(&mut self, other: &Counters) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.mutual_tls += other.mutual_tls;
        for (le, n) in &other.buckets {
            *self.buckets.entry(*le).or_default() += n;
        }
    }
}

/// What the graph shows on an edge.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EdgeStats {
    #[serde(flatten)]
    pub key: EdgeKey,
    /// Requests per second over the window.
    pub rps: f64,
    /// Share of those requests that failed (0..=1).
    pub error_rate: f64,
    /// 99th percentile of the request duration in ms; none without requests in the window.
    pub p99_ms: Option<f64>,
    /// Whether the destination reported mutual TLS for this edge (ever, in the window).
    pub mtls: bool,
    /// Workload labels Istio's metrics carry (`app`, `version`) of both ends.
    pub source_app: String,
    pub source_version: String,
    pub destination_app: String,
    pub destination_version: String,
}

/// One scrape reduced to counters (and end labels) per edge.
pub type EdgeCounters = HashMap<EdgeKey, (Counters, Labels)>;

/// Reduces one scrape to counters per edge.
pub fn edges_of(samples: &[Sample]) -> EdgeCounters {
    let mut edges = EdgeCounters::new();
    for sample in samples {
        let reporter = sample.label("reporter");
        let source_known = sample.label("source_workload") != UNKNOWN
            && !sample.label("source_workload").is_empty();
        let counts_requests = reporter == "source" || (reporter == "destination" && !source_known);
        let reads_security = reporter == "destination" && source_known;
        if !counts_requests && !reads_security {
            continue;
        }
        let (key, labels) = key_of(sample);
        let entry = edges
            .entry(key)
            .or_insert_with(|| (Counters::default(), labels));
        let counters = &mut entry.0;
        match sample.name.as_str() {
            "istio_requests_total" => {
                if counts_requests {
                    counters.requests += sample.value;
                    let code = sample.label("response_code");
                    if code.starts_with('5') || code == "0" {
                        counters.errors += sample.value;
                    }
                }
                if reporter == "destination"
                    && sample.label("connection_security_policy") == "mutual_tls"
                {
                    counters.mutual_tls += sample.value;
                }
            }
            "istio_request_duration_milliseconds_bucket" if counts_requests => {
                let le = match sample.label("le") {
                    "+Inf" => f64::INFINITY,
                    le => match le.parse::<f64>() {
                        Ok(le) => le,
                        Err(_) => continue,
                    },
                };
                *counters.buckets.entry(le.to_bits()).or_default() += sample.value;
            }
            _ => {}
        }
    }
    edges
}

/// The `app`/`version` labels of an edge's ends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Labels {
    pub source_app: String,
    pub source_version: String,
    pub destination_app: String,
    pub destination_version: String,
}

fn key_of(sample: &Sample) -> (EdgeKey, Labels) {
    let workload = |name: &str, namespace: &str| {
        if name.is_empty() || name == UNKNOWN {
            None
        } else {
            Some(format!("{namespace}/{name}"))
        }
    };
    let service = sample.label("destination_service").to_string();
    let key = EdgeKey {
        source: workload(
            sample.label("source_workload"),
            sample.label("source_workload_namespace"),
        )
        .unwrap_or_else(|| UNKNOWN.to_string()),
        destination: workload(
            sample.label("destination_workload"),
            sample.label("destination_workload_namespace"),
        )
        .unwrap_or_else(|| {
            if service.is_empty() {
                UNKNOWN.to_string()
            } else {
                service.clone()
            }
        }),
        service,
    };
    let labels = Labels {
        source_app: sample.label("source_app").to_string(),
        source_version: sample.label("source_version").to_string(),
        destination_app: sample.label("destination_app").to_string(),
        destination_version: sample.label("destination_version").to_string(),
    };
    (key, labels)
}

/// `histogram_quantile(q, ...)` over cumulative buckets: linear interpolation inside the
/// bucket the rank falls in; the highest finite bound when it falls in `+Inf`.
pub fn quantile(q: f64, buckets: &BTreeMap<u64, f64>) -> Option<f64> {
    let bounds: Vec<(f64, f64)> = buckets
        .iter()
        .map(|(bits, n)| (f64::from_bits(*bits), *n))
        .collect();
    let total = bounds.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for (le, count) in &bounds {
        if *count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            if in_bucket <= 0.0 {
                return Some(*le);
            }
            return Some(lower.0 + (le - lower.0) * (rank - lower.1) / in_bucket);
        }
        lower = (*le, *count);
    }
    Some(lower.0)
}

/// One proxy's recent scrapes.
#[derive(Default)]
struct Window {
    scrapes: VecDeque<(Instant, EdgeCounters)>,
}

impl Window {
    fn push(&mut self, at: Instant, edges: EdgeCounters) {
        self.scrapes.push_back((at, edges));
        while self.scrapes.len() > 2
            && self
                .scrapes
                .front()
                .is_some_and(|(t, _)| at.duration_since(*t) > WINDOW)
        {
            self.scrapes.pop_front();
        }
    }

    /// Per edge, the counters' increase from the oldest to the newest scrape and the span.
    fn increase(&self) -> Option<(f64, EdgeCounters)> {
        let (first_at, first) = self.scrapes.front()?;
        let (last_at, last) = self.scrapes.back()?;
        let seconds = last_at.duration_since(*first_at).as_secs_f64();
        if seconds <= 0.0 {
            return None;
        }
        let empty = Counters::default();
        let increase = last
            .iter()
            .map(|(key, (now, labels))| {
                let then = first.get(key).map_or(&empty, |(c, _)| c);
                (key.clone(), (now.since(then), labels.clone()))
            })
            .collect();
        Some((seconds, increase))
    }
}

/// Every proxy's window, the last scrape errors and when the graph was last asked for.
#[derive(Default)]
pub struct Traffic {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    windows: HashMap<String, Window>,
    errors: BTreeMap<String, String>,
    last_viewed: Option<Instant>,
}

impl Traffic {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update leaves the state whole, so a panicked holder does not spoil it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that someone looks at the graph, which keeps the scraping going.
    pub fn viewed(&self, now: Instant) {
        self.lock().last_viewed = Some(now);
    }

    /// Whether proxies should be scraped now: the graph was asked for recently.
    pub fn wanted(&self, now: Instant) -> bool {
        self.lock()
            .last_viewed
            .is_some_and(|t| now.duration_since(t) < KEEP_SCRAPING)
    }

    /// Adds a scrape of `proxy`.
    pub fn record(&self, proxy: &str, at: Instant, samples: &[Sample]) {
        let edges = edges_of(samples);
        let mut state = self.lock();
        state.errors.remove(proxy);
        state
            .windows
            .entry(proxy.to_string())
            .or_default()
            .push(at, edges);
    }

    /// Notes that `proxy` could not be scraped (its window is kept).
    pub fn record_error(&self, proxy: &str, error: String) {
        self.lock().errors.insert(proxy.to_string(), error);
    }

    /// Forgets proxies that are no longer connected.
    pub fn retain(&self, connected: &HashSet<String>) {
        let mut state = self.lock();
        state.windows.retain(|id, _| connected.contains(id));
        state.errors.retain(|id, _| connected.contains(id));
    }

    /// The last scrape error of each proxy that failed.
    pub fn errors(&self) -> BTreeMap<String, String> {
        self.lock().errors.clone()
    }

    /// Every edge some proxy reported, with rates over the window, sorted.
    pub fn edges(&self) -> Vec<EdgeStats> {
        let state = self.lock();
        let mut total: BTreeMap<EdgeKey, (f64, Counters, Labels)> = BTreeMap::new();
        for window in state.windows.values() {
            let Some((seconds, increase)) = window.increase() else {
                continue;
            };
            for (key, (counters, labels)) in increase {
                let entry = total
                    .entry(key)
                    .or_insert_with(|| (0.0, Counters::default(), Labels::default()));
                entry.0 += counters.requests / seconds;
                entry.1.add(&counters);
                merge_labels(&mut entry.2, &labels);
            }
        }
        total
            .into_iter()
            .map(|(key, (rps, counters, labels))| EdgeStats {
                key,
                rps,
                error_rate: if counters.requests > 0.0 {
                    counters.errors / counters.requests
                } else {
                    0.0
                },
                p99_ms: quantile(0.99, &counters.buckets),
                mtls: counters.mutual_tls > 0.0,
                source_app: labels.source_app,
                source_version: labels.source_version,
                destination_app: labels.destination_app,
                destination_version: labels.destination_version,
            })
            .collect()
    }
}

/// Keeps the labels already known; fills the ones a proxy left `unknown` or empty.
fn merge_labels(into: &mut Labels, from: &Labels) {
    let fill = |into: &mut String, from: &String| {
        if (into.is_empty() || into == UNKNOWN) && !from.is_empty() {
            into.clone_from(from);
        }
    };
    fill(&mut into.source_app, &from.source_app);
    fill(&mut into.source_version, &from.source_version);
    fill(&mut into.destination_app, &from.destination_app);
    fill(&mut into.destination_version, &from.destination_version);
}

#[cfg(test)]
#[path = "traffic_tests.rs"]
mod tests;
