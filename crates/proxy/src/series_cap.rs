//! A bound on the distinct label sets (series) of a group of Istio metrics. Peer metadata and
//! response codes come from clients, so without a bound a hostile or broken peer could make
//! the proxy keep an unbounded number of series in memory (issue #16 item 4). A label set
//! already exported is always updated; a new one beyond the bound is not created, and the
//! drop is counted (`lateen.metrics_series_dropped` in `/stats`).

use prometheus_client::metrics::family::Family;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Series per metric group unless configured otherwise: ample for a workload talking to a few
/// hundred peers with many response codes, small enough to stay a few MiB.
pub const DEFAULT_MAX_SERIES: usize = 10_000;

/// Counts the label sets created in one family, the family that each label set of the group
/// enters first.
pub struct SeriesCap {
    limit: usize,
    created: AtomicUsize,
}

impl SeriesCap {
    pub fn new(limit: usize) -> SeriesCap {
        SeriesCap {
            limit,
            created: AtomicUsize::new(0),
        }
    }

    /// Whether `labels` may be recorded: it already has a series in `family`, or there is
    /// room for one more. Two threads racing on the same new label set may both count it;
    /// the bound then holds with room to spare.
    pub fn admit<S, M, C>(&self, family: &Family<S, M, C>, labels: &S) -> bool
    where
        S: Clone + std::hash::Hash + Eq,
        C: prometheus_client::metrics::family::MetricConstructor<M>,
    {
        if family.get(labels).is_some() {
            return true;
        }
        self.created
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |created| {
                (created < self.limit).then_some(created + 1)
            })
            .is_ok()
    }
}
