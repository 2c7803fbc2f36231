//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection` does it
//! (which istiod uses): try to acquire or renew every `retry`; a record held by someone else is
//! taken over only when it has not changed for `lease_duration` as measured by this process's
//! own clock; a leader that cannot renew for `renew_deadline` stops leading.
//! Writes are `replace` with the observed resourceVersion, so two replicas racing for the same
//! record cannot both win.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;

/// Lease duration, renew deadline and retry period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry: Duration,
}

impl LeaseTimings {
    /// istiod's: a 30 s lease, renew deadline ttl/2, retry ttl/4.
    pub const ISTIOD: LeaseTimings = LeaseTimings::from_ttl(Duration::from_secs(30));

    /// istiod's proportions for another ttl.
    pub const fn from_ttl(ttl: Duration) -> Self {
        Self {
            lease_duration: ttl,
            renew_deadline: Duration::from_nanos((ttl.as_nanos() / 2) as u64),
            retry: Duration::from_nanos((ttl.as_nanos() / 4) as u64),
        }
    }
}

/// What was last seen of the record and when (by our clock).
#[derive(Debug, Default)]
struct Observed {
    /// holderIdentity, renewTime and leaseTransitions as seen.
    record: Option<(Option<String>, Option<MicroTime>, Option<i32>)>,
    at: Option<Instant>,
    /// When this replica last renewed successfully.
    renewed: Option<Instant>,
}

/// One election: `run` it, watch [`Elector::leading`].
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: LeaseTimings,
    leading: watch::Sender<bool>,
    observed: Mutex<Observed>,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Outcome of one attempt.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Leading,
    HeldByOther(String),
}

impl Elector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timings: LeaseTimings,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            timings,
            leading: watch::channel(false).0,
            observed: Mutex::new(Observed::default()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// True while this replica holds the Lease.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_leading(&self, now_leading: bool) {
        let was = self.leading.send_replace(now_leading);
        if was != now_leading {
            if now_leading {
                tracing::info!(lease = %self.name, identity = %self.identity, "leader election lock obtained");
            } else {
                tracing::info!(lease = %self.name, identity = %self.identity, "leader election lock lost");
            }
        }
    }

    /// Tries to acquire or renew every `retry` until the task is dropped.
    pub async fn run(self: std::sync::Arc<Self>) {
        // A failing API call is reported when it starts failing and when it recovers, not on
        // every retry (a missing namespace would otherwise log every 7.5 s per Lease).
        let mut failing = false;
        loop {
            let attempt = self.try_acquire_or_renew().await;
            if attempt.is_ok() && std::mem::take(&mut failing) {
                tracing::info!(lease = %self.name, "lease reachable again");
            }
            match attempt {
                Ok(Attempt::Leading) => {
                    self.observed().renewed = Some(Instant::now());
                    self.set_leading(true);
                }
                Ok(Attempt::HeldByOther(holder)) => {
                    tracing::debug!(lease = %self.name, %holder, "lease held by another replica");
                    self.set_leading(false);
                }
                Err(e) => {
                    let renewed = self.observed().renewed;
                    let overdue = renewed.is_none_or(|r| r.elapsed() > self.timings.renew_deadline);
                    if std::mem::replace(&mut failing, true) {
                        tracing::debug!(lease = %self.name, error = %e, "could not acquire or renew the lease");
                    } else {
                        tracing::warn!(lease = %self.name, error = %e, "could not acquire or renew the lease; retrying");
                    }
                    if overdue {
                        self.set_leading(false);
                    }
                }
            }
            tokio::time::sleep(self.timings.retry).await;
        }
    }

    async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let duration_secs =
            i32::try_from(self.timings.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::HeldByOther(
                    "(just created by another replica)".into(),
                )),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (
            spec.holder_identity.clone(),
            spec.renew_time.clone(),
            spec.lease_transitions,
        );
        let fresh_for_us = {
            let mut seen = self.observed();
            if seen.record.as_ref() != Some(&record) {
                seen.record = Some(record);
                seen.at = Some(Instant::now());
            }
            let held_for = spec
                .lease_duration_seconds
                .map_or(self.timings.lease_duration, |s| {
                    Duration::from_secs(u64::try_from(s.max(0)).unwrap_or(0))
                });
            seen.at.is_some_and(|at| at.elapsed() < held_for)
        };
        if let Some(other) = holder.as_ref().filter(|h| **h != self.identity)
            && fresh_for_us
        {
            return Ok(Attempt::HeldByOther(other.clone()));
        }
        let mut next = spec.clone();
        if holder.as_deref() != Some(self.identity.as_str()) {
            next.acquire_time = Some(now.clone());
            next.lease_transitions =
                Some(spec.lease_transitions.unwrap_or(0) + i32::from(holder.is_some()));
        }
        next.holder_identity = Some(self.identity.clone());
        next.lease_duration_seconds = Some(duration_secs);
        next.renew_time = Some(now);
        lease.spec = Some(next);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                Ok(Attempt::HeldByOther("(changed concurrently)".into()))
            }
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up if this replica holds it (holder cleared, duration 1 s), as
    /// client-go's `ReleaseOnCancel`, which istiod sets.
    pub async fn release(&self) {
        if !*self.leading.borrow() {
            return;
        }
        self.set_leading(false);
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        let now = MicroTime(Timestamp::now());
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now.clone());
        spec.acquire_time = Some(now);
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.name, "lease released"),
            Err(e) => tracing::warn!(lease = %self.name, error = %e, "could not release the lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istiod_timings() {
        let t = LeaseTimings::ISTIOD;
        assert_eq!(t.lease_duration, Duration::from_secs(30));
        assert_eq!(t.renew_deadline, Duration::from_secs(15));
        assert_eq!(t.retry, Duration::from_millis(7500));
    }
}
