//! Endpoint choice and per-cluster protection, shared by every worker of a snapshot: load
//! balancing (round robin, random, least request as power of two choices, a consistent-hash
//! ring for RING_HASH and MAGLEV), outlier detection (consecutive-failure ejection) and
//! circuit breakers. State lives in atomics of the compiled cluster, so a new snapshot (any
//! configuration change) starts it afresh. Clusters that use none of these features pay one
//! relaxed counter increment per pick, as before.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crate::config::model::{CircuitBreakers, LbPolicy, OutlierDetection};
use crate::config::snapshot::ClusterRt;

/// Envoy's default ring size when the cluster names none.
const DEFAULT_RING_SIZE: u64 = 1024;
/// Bound on the ring so a hostile `minimum_ring_size` cannot exhaust memory.
const MAX_RING_SIZE: u64 = 1 << 20;

#[derive(Default)]
struct HostState {
    in_flight: AtomicU32,
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// Milliseconds since the set's epoch until which the host is ejected (0: never was).
    ejected_until: AtomicU64,
    ejections: AtomicU32,
}

/// How one attempt on a host ended, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOutcome {
    Status(u16),
    /// Connect failure, reset or timeout: counted as a 503 from the host, as Envoy does when
    /// local-origin errors are not split out.
    LocalFailure,
}

pub struct HostSet {
    /// Endpoints, an address repeated by its weight.
    pub endpoints: Vec<SocketAddr>,
    policy: LbPolicy,
    /// One per distinct address: a weighted host is one host to outlier detection.
    state: Vec<HostState>,
    /// Endpoint index → its address's `state` index.
    slot: Vec<usize>,
    /// `(point, endpoint index)` sorted by point.
    ring: Vec<(u64, u32)>,
    next: AtomicUsize,
    outlier: Option<OutlierDetection>,
    epoch: Instant,
}

impl HostSet {
    pub fn new(
        endpoints: Vec<SocketAddr>,
        policy: LbPolicy,
        ring_size: Option<u64>,
        outlier: Option<OutlierDetection>,
    ) -> HostSet {
        let mut distinct: std::collections::HashMap<SocketAddr, usize> =
            std::collections::HashMap::new();
        let slot = endpoints
            .iter()
            .map(|endpoint| {
                let next = distinct.len();
                *distinct.entry(*endpoint).or_insert(next)
            })
            .collect();
        let state = (0..distinct.len()).map(|_| HostState::default()).collect();
        let ring = match policy {
            LbPolicy::RingHash | LbPolicy::Maglev => {
                build_ring(&endpoints, ring_size.unwrap_or(DEFAULT_RING_SIZE))
            }
            _ => Vec::new(),
        };
        HostSet {
            endpoints,
            policy,
            state,
            slot,
            ring,
            next: AtomicUsize::new(0),
            outlier,
            epoch: Instant::now(),
        }
    }

    pub fn policy(&self) -> LbPolicy {
        self.policy
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn is_ejected(&self, index: usize) -> bool {
        if self.outlier.is_none() {
            return false;
        }
        self.slot_ejected(self.slot[index], self.now_ms())
    }

    fn slot_ejected(&self, slot: usize, now: u64) -> bool {
        let until = self.state[slot].ejected_until.load(Ordering::Relaxed);
        until != 0 && now < until
    }

    /// The next endpoint by the policy, skipping ejected hosts and `avoid` (the host that
    /// just failed) when another is available. `hash` is the request's key for hashing
    /// policies (without one they pick at random). When every host is ejected they are all
    /// used again (Envoy's panic mode).
    pub fn pick(&self, avoid: Option<SocketAddr>, hash: Option<u64>) -> Option<usize> {
        let count = self.endpoints.len();
        if count == 0 {
            return None;
        }
        let usable = |index: usize, strict: bool| {
            !(strict && self.is_ejected(index))
                && (count == 1 || Some(self.endpoints[index]) != avoid)
        };
        match self.policy {
            LbPolicy::RoundRobin | LbPolicy::Random => {
                let start = match self.policy {
                    LbPolicy::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed),
                    _ => rand::random::<u32>() as usize,
                };
                for strict in [true, false] {
                    if let Some(found) = (0..count)
                        .map(|step| (start + step) % count)
                        .find(|&index| usable(index, strict))
                    {
                        return Some(found);
                    }
                }
                Some(start % count)
            }
            LbPolicy::LeastRequest => {
                if count == 1 {
                    return Some(0);
                }
                // Two random draws (no allocation: a draw on an unusable host moves on to
                // the next usable one), and the one with fewer requests in flight wins.
                let from = |start: usize| {
                    let walk = |strict: bool| {
                        (0..count)
                            .map(|step| (start + step) % count)
                            .find(|&index| usable(index, strict))
                    };
                    walk(true).or_else(|| walk(false)).unwrap_or(start)
                };
                let first = rand::random::<u32>() as usize % count;
                let second = (first + 1 + rand::random::<u32>() as usize % (count - 1)) % count;
                let (a, b) = (from(first), from(second));
                let load = |index: usize| {
                    self.state[self.slot[index]]
                        .in_flight
                        .load(Ordering::Relaxed)
                };
                Some(if load(b) < load(a) { b } else { a })
            }
            LbPolicy::RingHash | LbPolicy::Maglev => {
                let key = hash.unwrap_or_else(rand::random::<u64>);
                let start = self.ring.partition_point(|(point, _)| *point < key);
                let len = self.ring.len();
                for strict in [true, false] {
                    let found = (0..len)
                        .map(|step| self.ring[(start + step) % len].1 as usize)
                        .find(|&index| usable(index, strict));
                    if found.is_some() {
                        return found;
                    }
                }
                Some(0)
            }
        }
    }

    /// Counts a request in flight on `index` until [`HostSet::end`]; true when counted
    /// (only least-request clusters need the count).
    pub fn begin(&self, index: usize) -> bool {
        if self.policy != LbPolicy::LeastRequest {
            return false;
        }
        let Some(host) = self.slot.get(index).and_then(|&slot| self.state.get(slot)) else {
            return false;
        };
        host.in_flight.fetch_add(1, Ordering::Relaxed);
        true
    }

    pub fn end(&self, index: usize) {
        if let Some(host) = self.slot.get(index).and_then(|&slot| self.state.get(slot)) {
            host.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Feeds outlier detection with how an attempt on `index` ended.
    pub fn report(&self, index: usize, outcome: HostOutcome) {
        let Some(outlier) = &self.outlier else { return };
        let Some(&slot) = self.slot.get(index) else {
            return;
        };
        let host = &self.state[slot];
        let (is_5xx, is_gateway) = match outcome {
            HostOutcome::Status(status) => (status >= 500, matches!(status, 502..=504)),
            HostOutcome::LocalFailure => (true, true),
        };
        if !is_5xx {
            // Only write when there is something to clear: keeps the line unshared.
            if host.consecutive_5xx.load(Ordering::Relaxed) != 0 {
                host.consecutive_5xx.store(0, Ordering::Relaxed);
            }
            if host.consecutive_gateway.load(Ordering::Relaxed) != 0 {
                host.consecutive_gateway.store(0, Ordering::Relaxed);
            }
            return;
        }
        let fives = host.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1;
        let gateways = if is_gateway {
            host.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            host.consecutive_gateway.store(0, Ordering::Relaxed);
            0
        };
        let tripped = (outlier.consecutive_5xx > 0 && fives >= outlier.consecutive_5xx)
            || (outlier.consecutive_gateway_failure > 0
                && gateways >= outlier.consecutive_gateway_failure);
        if tripped {
            self.eject(slot, outlier);
        }
    }

    fn eject(&self, slot: usize, outlier: &OutlierDetection) {
        let now = self.now_ms();
        let host = &self.state[slot];
        host.consecutive_5xx.store(0, Ordering::Relaxed);
        host.consecutive_gateway.store(0, Ordering::Relaxed);
        let previous_until = host.ejected_until.load(Ordering::Relaxed);
        if previous_until != 0 && now < previous_until {
            return;
        }
        let ejected = (0..self.state.len())
            .filter(|&other| self.slot_ejected(other, now))
            .count();
        let allowed = (self.state.len() * outlier.max_ejection_percent as usize / 100).max(1);
        if ejected >= allowed {
            return;
        }
        // The multiplier goes down by one per interval the host stayed healthy.
        let interval_ms = outlier.interval.as_millis().max(1) as u64;
        let healthy_intervals = if previous_until == 0 {
            0
        } else {
            (now - previous_until) / interval_ms
        };
        let previous = u64::from(host.ejections.load(Ordering::Relaxed));
        let multiplier = previous.saturating_sub(healthy_intervals) + 1;
        host.ejections.store(
            multiplier.min(u64::from(u32::MAX)) as u32,
            Ordering::Relaxed,
        );
        let longest = outlier.max_ejection_time.max(outlier.base_ejection_time);
        let time = outlier
            .base_ejection_time
            .saturating_mul(multiplier.min(u64::from(u32::MAX)) as u32)
            .min(longest);
        host.ejected_until
            .store(now + time.as_millis().max(1) as u64, Ordering::Relaxed);
        let address = self
            .slot
            .iter()
            .position(|&known| known == slot)
            .map(|index| self.endpoints[index]);
        tracing::info!(endpoint = ?address, ejection_ms = time.as_millis() as u64, "outlier detection ejected host");
    }
}

/// The counts one exchange holds (a circuit-breaker request, a request in flight on a
/// host) until its response body ends or is dropped: streams count as long as they last.
#[derive(Default)]
pub struct Holds {
    cluster: Option<Arc<ClusterRt>>,
    in_flight: Option<usize>,
    request: Option<RequestPermit>,
}

impl Holds {
    pub fn new(cluster: &Arc<ClusterRt>) -> Holds {
        Holds {
            cluster: Some(cluster.clone()),
            in_flight: None,
            request: None,
        }
    }

    /// Keeps a breaker request admitted by [`Breakers::try_request`] until the exchange ends.
    pub fn hold_request(&mut self, permit: RequestPermit) {
        self.request = Some(permit);
    }

    /// Moves the in-flight count to the host of the current attempt.
    pub fn hold_in_flight(&mut self, index: Option<usize>) {
        if let (Some(previous), Some(cluster)) = (self.in_flight.take(), &self.cluster) {
            cluster.hosts.end(previous);
        }
        self.in_flight = index;
    }

    pub fn is_empty(&self) -> bool {
        self.in_flight.is_none() && self.request.is_none()
    }
}

impl Drop for Holds {
    fn drop(&mut self) {
        let Some(cluster) = &self.cluster else { return };
        if let Some(index) = self.in_flight {
            cluster.hosts.end(index);
        }
        // The breaker permit, if any, gives its count back as it drops with `self`.
    }
}

/// Envoy-like ring: each host gets `size / hosts` (at least one) points from hashing
/// `address_N`, so a key keeps its host while the endpoint set is unchanged.
fn build_ring(endpoints: &[SocketAddr], size: u64) -> Vec<(u64, u32)> {
    if endpoints.is_empty() {
        return Vec::new();
    }
    let size = size.clamp(1, MAX_RING_SIZE);
    let per_host = size.div_ceil(endpoints.len() as u64).max(1);
    let mut ring = Vec::with_capacity((per_host as usize).saturating_mul(endpoints.len()));
    for (index, endpoint) in endpoints.iter().enumerate() {
        let name = endpoint.to_string();
        for replica in 0..per_host {
            ring.push((
                hash_bytes(format!("{name}_{replica}").as_bytes()),
                index as u32,
            ));
        }
    }
    ring.sort_unstable();
    ring
}

/// FNV-1a with a final avalanche: stable across builds and processes, unlike std's hasher.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// The cluster's circuit breakers and the requests and retries they count.
pub struct Breakers {
    limits: CircuitBreakers,
    /// Shared with every [`RequestPermit`], which gives its count back when dropped.
    requests: Arc<AtomicU32>,
    retries: AtomicU32,
}

/// A request admitted by a cluster's circuit breakers, owned by the exchange (it lives in
/// [`Holds`] until the response body ends); its count is given back when it is dropped,
/// however the exchange ends.
pub struct RequestPermit(Arc<AtomicU32>);

impl Drop for RequestPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A counted request or retry; the count drops with it.
pub struct Permit<'a>(&'a AtomicU32);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Breakers {
    pub fn new(limits: CircuitBreakers) -> Breakers {
        Breakers {
            limits,
            requests: Arc::new(AtomicU32::new(0)),
            retries: AtomicU32::new(0),
        }
    }

    /// A request may start unless as many are in flight as the limits allow. On HTTP/1 each
    /// one holds a connection or waits for one, as in Envoy's pool: when connections are the
    /// tighter limit (`max_connections` ≤ `max_requests`), as many requests run as there are
    /// connections and `max_pending_requests` more wait for one; when `max_requests` is the
    /// tighter one, a waiting request would get a connection of its own at once and then be
    /// refused for exceeding `max_requests`, so only `max_requests` are admitted. On HTTP/2
    /// every request counts against `max_requests`.
    /// The admitted request's permit, or `None` at the limit.
    pub fn try_request(&self, http1: bool) -> Option<RequestPermit> {
        let CircuitBreakers {
            max_connections,
            max_pending_requests,
            max_requests,
            ..
        } = self.limits;
        let limit = if http1 && max_connections <= max_requests {
            max_connections.saturating_add(max_pending_requests)
        } else {
            max_requests
        };
        acquire(&self.requests, limit)?;
        Some(RequestPermit(self.requests.clone()))
    }

    pub fn admit_retry(&self) -> Option<Permit<'_>> {
        acquire(&self.retries, self.limits.max_retries)?;
        Some(Permit(&self.retries))
    }
}

/// Counts one more against `limit`; the caller wraps the count in the guard that gives it
/// back.
fn acquire(counter: &AtomicU32, limit: u32) -> Option<()> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |current| {
            (current < limit).then_some(current + 1)
        })
        .ok()
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hosts(count: u16) -> Vec<SocketAddr> {
        (0..count)
            .map(|port| SocketAddr::from(([127, 0, 0, 1], 8000 + port)))
            .collect()
    }

    #[test]
    fn ring_keeps_a_key_on_one_host() {
        let set = HostSet::new(hosts(5), LbPolicy::RingHash, None, None);
        for key in 0..200u64 {
            let hash = hash_bytes(&key.to_le_bytes());
            let first = set.pick(None, Some(hash));
            assert!((0..10).all(|_| set.pick(None, Some(hash)) == first));
        }
        let spread: std::collections::HashSet<_> = (0..200u64)
            .map(|key| set.pick(None, Some(hash_bytes(&key.to_le_bytes()))))
            .collect();
        assert_eq!(spread.len(), 5, "keys spread over all hosts");
    }

    #[test]
    fn ejection_skips_the_host_then_it_returns() {
        let outlier = OutlierDetection {
            consecutive_5xx: 2,
            base_ejection_time: Duration::from_millis(50),
            max_ejection_percent: 50,
            ..Default::default()
        };
        let set = HostSet::new(hosts(2), LbPolicy::RoundRobin, None, Some(outlier));
        set.report(0, HostOutcome::Status(500));
        assert!(!set.is_ejected(0));
        set.report(0, HostOutcome::LocalFailure);
        assert!(set.is_ejected(0));
        assert!((0..10).all(|_| set.pick(None, None) == Some(1)));
        std::thread::sleep(Duration::from_millis(80));
        assert!(!set.is_ejected(0));
    }

    #[test]
    fn a_weighted_host_is_ejected_whole() {
        let outlier = OutlierDetection {
            consecutive_5xx: 1,
            max_ejection_percent: 50,
            ..Default::default()
        };
        let mut endpoints = hosts(2);
        endpoints.push(endpoints[0]);
        let set = HostSet::new(endpoints, LbPolicy::RoundRobin, None, Some(outlier));
        set.report(2, HostOutcome::Status(503));
        assert!(set.is_ejected(0) && set.is_ejected(2) && !set.is_ejected(1));
    }

    #[test]
    fn breakers_count_requests() {
        let breakers = Breakers::new(CircuitBreakers {
            max_connections: 1,
            max_pending_requests: 1,
            ..Default::default()
        });
        let first = breakers.try_request(true);
        let second = breakers.try_request(true);
        assert!(first.is_some() && second.is_some());
        assert!(breakers.try_request(true).is_none());
        drop(first);
        assert!(
            breakers.try_request(true).is_some(),
            "a dropped permit frees its place"
        );
        assert!(breakers.admit_retry().is_some());
    }

    #[test]
    fn http1_requests_wait_for_the_connection_limit_beyond_max_requests() {
        // Istio's http2MaxRequests 1 with maxConnections 1 and one pending: Envoy runs one
        // request and queues one.
        let limits = CircuitBreakers {
            max_connections: 1,
            max_pending_requests: 1,
            max_requests: 1,
            ..Default::default()
        };
        let breakers = Breakers::new(limits);
        let held = [breakers.try_request(true), breakers.try_request(true)];
        assert!(held.iter().all(Option::is_some));
        assert!(breakers.try_request(true).is_none());
        // Fewer requests than connections: pending requests would overflow on attach.
        let breakers = Breakers::new(CircuitBreakers {
            max_connections: 10,
            max_pending_requests: 5,
            max_requests: 2,
            ..Default::default()
        });
        let held = [breakers.try_request(true), breakers.try_request(true)];
        assert!(held.iter().all(Option::is_some));
        assert!(breakers.try_request(true).is_none());
    }
}
