//! Proxies that register themselves, as with Istio's WorkloadGroup auto-registration: a proxy
//! whose metadata names a WorkloadGroup (`AUTO_REGISTER_GROUP`) is a candidate while it is
//! connected; [`super::workload_group`] decides, against the current configuration, whether
//! the group admits it and what WorkloadEntry it becomes, so ServiceEntries whose
//! `workloadSelector` matches its labels gain it as an endpoint. Proxies naming no group are
//! never registered. When its last stream ends a candidate stays for a grace period (a
//! reconnect cancels the removal), then leaves. Each verdict is logged once per proxy: when
//! it is first reached and whenever it changes (a group created or deleted, an identity or
//! metadata change), never on every rebuild, and counted in istiod's
//! `auto_registration_success_total` / `auto_registration_errors_total` (once per verdict, not
//! per rebuild) and `auto_registration_deletes_total` (registered workloads removed after
//! their grace period).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lateen_xds::VerifiedIdentity;

use super::workload_group::{Candidate, Refusal, Workload, admit};
use crate::proxy::Proxy;
use crate::store::Config;

#[derive(Debug)]
struct Entry {
    candidate: Candidate,
    streams: u32,
    gone_since: Option<Instant>,
    /// The last verdict logged.
    logged: Option<Result<(), Refusal>>,
}

/// Verdicts and removals so far, under istiod's metric names.
#[derive(Debug, Default)]
pub struct AutoRegistrationCounts {
    /// `auto_registration_success_total`: proxies admitted (each time a verdict becomes one).
    pub success: AtomicU64,
    /// `auto_registration_errors_total`: proxies refused (each time a verdict becomes one).
    pub errors: AtomicU64,
    /// `auto_registration_deletes_total`: registered workloads removed after their grace.
    pub deletes: AtomicU64,
}

/// Connected proxies that ask to be registered.
#[derive(Debug)]
pub struct AutoRegistry {
    grace: Duration,
    entries: Mutex<BTreeMap<String, Entry>>,
    counts: AutoRegistrationCounts,
}

impl AutoRegistry {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            entries: Mutex::new(BTreeMap::new()),
            counts: AutoRegistrationCounts::default(),
        }
    }

    /// Verdicts and removals so far.
    pub fn counts(&self) -> &AutoRegistrationCounts {
        &self.counts
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A stream of `proxy` opened, its transport having verified `identity` (if any). Returns
    /// whether the set of candidates changed. A proxy naming no WorkloadGroup is not a
    /// candidate (one that named a group before and no longer does stops being one).
    pub fn connect(&self, proxy: &Proxy, identity: Option<&VerifiedIdentity>) -> bool {
        let mut entries = self.lock();
        let Some(group) = proxy.auto_register_group.clone() else {
            return entries.remove(&proxy.id).is_some();
        };
        let candidate = Candidate {
            id: proxy.id.clone(),
            address: proxy.ip.clone(),
            namespace: proxy.namespace.clone(),
            labels: proxy.labels.clone(),
            group,
            identity: identity.cloned(),
        };
        match entries.get_mut(&proxy.id) {
            Some(e) => {
                e.streams += 1;
                e.gone_since = None;
                let changed = e.candidate != candidate;
                e.candidate = candidate;
                changed
            }
            None => {
                entries.insert(
                    proxy.id.clone(),
                    Entry {
                        candidate,
                        streams: 1,
                        gone_since: None,
                        logged: None,
                    },
                );
                true
            }
        }
    }

    /// A stream of the proxy ended; its last stream starts the grace period.
    pub fn disconnect(&self, id: &str, now: Instant) {
        if let Some(e) = self.lock().get_mut(id) {
            e.streams = e.streams.saturating_sub(1);
            if e.streams == 0 {
                e.gone_since = Some(now);
            }
        }
    }

    /// Removes candidates whose grace period is over; returns their ids.
    pub fn expire(&self, now: Instant) -> Vec<String> {
        let mut entries = self.lock();
        let expired: Vec<String> = entries
            .iter()
            .filter(|(_, e)| {
                e.gone_since
                    .is_some_and(|t| now.duration_since(t) >= self.grace)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            if let Some(e) = entries.remove(id)
                && matches!(e.logged, Some(Ok(())))
            {
                self.counts.deletes.fetch_add(1, Ordering::Relaxed);
                tracing::info!(proxy = %id, "auto-registered workload removed after grace period");
            }
        }
        expired
    }

    /// The workloads `config`'s WorkloadGroups admit among the candidates (including those in
    /// their grace period); logs each proxy's verdict when it is new.
    pub fn admitted(&self, config: &Config) -> Vec<Workload> {
        let mut entries = self.lock();
        let mut admitted = Vec::new();
        for (id, entry) in entries.iter_mut() {
            let verdict = admit(&entry.candidate, config);
            let summary = verdict.as_ref().map(|_| ()).map_err(Clone::clone);
            if entry.logged.as_ref() != Some(&summary) {
                match &verdict {
                    Ok(w) => {
                        self.counts.success.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            proxy = %id,
                            address = %w.address,
                            entry = %format!("{}/{}", w.namespace, w.entry_name()),
                            "workload auto-registered"
                        );
                    }
                    Err(reason) => {
                        self.counts.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            proxy = %id,
                            %reason,
                            "auto-registration refused; the proxy gets its configuration but is no endpoint"
                        );
                    }
                }
                entry.logged = Some(summary);
            }
            if let Ok(workload) = verdict {
                admitted.push(workload);
            }
        }
        admitted
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lateen_xds::ProxyNode;

    const GROUP: &str = "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: reviews, namespace: default}\nspec:\n  metadata: {labels: {app: reviews}}\n  template: {serviceAccount: reviews, labels: {version: v1}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: elsewhere, namespace: other}\nspec: {template: {}}\n";

    fn config(yaml: &str) -> Config {
        let loaded = lateen_api::load(yaml, "wg.yaml").unwrap_or_else(|e| panic!("{e}"));
        Config {
            resources: loaded.resources().cloned().collect(),
            ..Config::default()
        }
    }

    /// A sidecar at 10.0.0.`n` in namespace `default` naming `group` (if any).
    fn proxy(n: u8, group: Option<&str>) -> Proxy {
        let mut metadata =
            serde_json::json!({"LABELS": {"tier": "backend"}, "NAMESPACE": "default"});
        if let Some(g) = group {
            metadata["AUTO_REGISTER_GROUP"] = g.into();
        }
        Proxy::from_node(&ProxyNode {
            id: format!("sidecar~10.0.0.{n}~r-{n}.default~default.svc.cluster.local"),
            cluster: String::new(),
            metadata,
            user_agent: String::new(),
        })
    }

    fn identity(namespace: &str) -> VerifiedIdentity {
        VerifiedIdentity {
            spiffe: format!("spiffe://cluster.local/ns/{namespace}/sa/reviews"),
            namespace: namespace.into(),
            service_account: "reviews".into(),
        }
    }

    fn addresses(workloads: &[Workload]) -> Vec<&str> {
        workloads.iter().map(|w| w.address.as_str()).collect()
    }

    #[test]
    fn only_proxies_a_group_admits_are_workloads() {
        let reg = AutoRegistry::new(Duration::from_secs(10));
        let cfg = config(GROUP);
        assert!(
            !reg.connect(&proxy(1, None), None),
            "no group: no candidate"
        );
        assert!(reg.connect(&proxy(2, Some("missing")), None));
        assert!(reg.connect(&proxy(3, Some("elsewhere")), None));
        assert!(reg.connect(&proxy(4, Some("reviews")), Some(&identity("other"))));
        assert!(reg.connect(&proxy(5, Some("reviews")), None));
        assert!(reg.connect(&proxy(6, Some("reviews")), Some(&identity("default"))));
        let admitted = reg.admitted(&cfg);
        assert_eq!(addresses(&admitted), ["10.0.0.5", "10.0.0.6"]);
        let labels = &admitted[0].labels;
        assert_eq!(labels.get("app").map(String::as_str), Some("reviews"));
        assert_eq!(labels.get("version").map(String::as_str), Some("v1"));
        assert_eq!(labels.get("tier").map(String::as_str), Some("backend"));
        // The verdict follows the configuration: without the group nobody is admitted.
        assert!(reg.admitted(&Config::default()).is_empty());
        assert_eq!(reg.admitted(&cfg).len(), 2);
        // A proxy that stops naming a group stops being a candidate.
        assert!(reg.connect(&proxy(5, None), None));
        assert_eq!(addresses(&reg.admitted(&cfg)), ["10.0.0.6"]);
    }

    #[test]
    fn leaves_after_grace_unless_reconnected() {
        let reg = AutoRegistry::new(Duration::from_secs(10));
        let cfg = config(GROUP);
        let p = proxy(2, Some("reviews"));
        assert!(reg.connect(&p, None));
        let t0 = Instant::now();
        reg.disconnect(&p.id, t0);
        assert!(reg.expire(t0 + Duration::from_secs(5)).is_empty());
        assert!(!reg.connect(&p, None)); // reconnect within grace: same candidate
        reg.disconnect(&p.id, t0 + Duration::from_secs(6));
        assert!(reg.expire(t0 + Duration::from_secs(15)).is_empty());
        assert_eq!(
            reg.admitted(&cfg).len(),
            1,
            "admitted during its grace period"
        );
        assert_eq!(reg.expire(t0 + Duration::from_secs(16)), vec![p.id.clone()]);
        assert!(reg.admitted(&cfg).is_empty());
    }

    #[test]
    fn a_verdict_is_logged_once_until_it_changes() {
        let reg = AutoRegistry::new(Duration::from_secs(10));
        let p = proxy(2, Some("reviews"));
        reg.connect(&p, None);
        let logged = |reg: &AutoRegistry| reg.lock().get(&p.id).and_then(|e| e.logged.clone());
        reg.admitted(&Config::default());
        let refused = logged(&reg);
        assert!(matches!(refused, Some(Err(Refusal::GroupNotFound { .. }))));
        reg.admitted(&Config::default());
        assert_eq!(logged(&reg), refused);
        reg.admitted(&config(GROUP));
        assert_eq!(logged(&reg), Some(Ok(())));
        let counts = reg.counts();
        assert_eq!(counts.errors.load(Ordering::Relaxed), 1);
        assert_eq!(counts.success.load(Ordering::Relaxed), 1);
    }
}
