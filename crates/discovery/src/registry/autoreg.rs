//! Proxies that register themselves: like Istio's WorkloadGroup auto-registration, a sidecar
//! that connects becomes a workload (its IP, labels, namespace, service account and declared
//! ports), so ServiceEntries whose `workloadSelector` matches its labels gain it as an endpoint.
//! When its last stream ends it stays for a grace period (a reconnect cancels the removal),
//! then leaves.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Instance;
use crate::proxy::{Proxy, ProxyType};
use crate::store::Config;

/// A self-registered workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Node id of the proxy.
    pub id: String,
    pub address: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    /// Declared port name to port.
    pub ports: BTreeMap<String, u32>,
    /// `AUTO_REGISTER_GROUP`: a WorkloadGroup in the same namespace whose template adds labels,
    /// ports and service account.
    pub group: Option<String>,
}

impl Workload {
    /// The workload as a service instance, completed by its WorkloadGroup when it names one.
    pub fn instance(&self, config: &Config) -> Instance {
        let mut labels = BTreeMap::new();
        let mut ports = BTreeMap::new();
        let mut service_account = self.service_account.clone();
        let mut locality = String::new();
        let template = self.group.as_ref().and_then(|g| {
            config
                .workload_groups()
                .find(|wg| wg.name() == g && wg.namespace() == self.namespace)
        });
        if let Some(wg) = template {
            if let Some(meta) = &wg.spec.metadata {
                labels.extend(meta.labels.clone());
            }
            if let Some(t) = &wg.spec.template {
                labels.extend(t.labels.clone());
                ports.extend(t.ports.clone());
                if let Some(sa) = &t.service_account {
                    service_account = sa.clone();
                }
                if let Some(l) = &t.locality {
                    locality = l.clone();
                }
            }
        }
        labels.extend(self.labels.clone());
        ports.extend(self.ports.clone());
        Instance {
            address: self.address.clone(),
            ports,
            labels,
            weight: 1,
            service_account,
            locality,
            origin: format!("proxy {}", self.id),
        }
    }
}

#[derive(Debug)]
struct Entry {
    workload: Workload,
    streams: u32,
    gone_since: Option<Instant>,
}

/// Registered proxies.
#[derive(Debug)]
pub struct AutoRegistry {
    grace: Duration,
    entries: Mutex<BTreeMap<String, Entry>>,
}

impl AutoRegistry {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A stream of `proxy` opened. Returns whether the set of workloads changed. Gateways and
    /// proxies without an IP are not registered.
    pub fn connect(&self, proxy: &Proxy) -> bool {
        if proxy.proxy_type != ProxyType::Sidecar || proxy.ip.is_empty() {
            return false;
        }
        let workload = Workload {
            id: proxy.id.clone(),
            address: proxy.ip.clone(),
            namespace: proxy.namespace.clone(),
            labels: proxy.labels.clone(),
            service_account: proxy.service_account.clone(),
            ports: proxy
                .ports
                .iter()
                .filter(|p| !p.name.is_empty())
                .map(|p| (p.name.clone(), p.port))
                .collect(),
            group: proxy.auto_register_group.clone(),
        };
        let mut entries = self.lock();
        match entries.get_mut(&proxy.id) {
            Some(e) => {
                e.streams += 1;
                e.gone_since = None;
                let changed = e.workload != workload;
                e.workload = workload;
                changed
            }
            None => {
                tracing::info!(proxy = %proxy.id, address = %proxy.ip, "workload registered");
                entries.insert(
                    proxy.id.clone(),
                    Entry {
                        workload,
                        streams: 1,
                        gone_since: None,
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

    /// Removes workloads whose grace period is over; returns their ids.
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
            entries.remove(id);
            tracing::info!(proxy = %id, "workload unregistered after grace period");
        }
        expired
    }

    /// Every registered workload (including those in their grace period).
    pub fn workloads(&self) -> Vec<Workload> {
        self.lock().values().map(|e| e.workload.clone()).collect()
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lateen_xds::ProxyNode;

    fn proxy(id: &str) -> Proxy {
        Proxy::from_node(&ProxyNode {
            id: id.to_string(),
            cluster: String::new(),
            metadata: serde_json::json!({"LABELS": {"app": "reviews"}}),
            user_agent: String::new(),
        })
    }

    #[test]
    fn leaves_after_grace_unless_reconnected() {
        let reg = AutoRegistry::new(Duration::from_secs(10));
        let p = proxy("sidecar~10.0.0.2~r.default~default.svc.cluster.local");
        assert!(reg.connect(&p));
        let t0 = Instant::now();
        reg.disconnect(&p.id, t0);
        assert!(reg.expire(t0 + Duration::from_secs(5)).is_empty());
        assert!(!reg.connect(&p)); // reconnect within grace: same workload
        reg.disconnect(&p.id, t0 + Duration::from_secs(6));
        assert!(reg.expire(t0 + Duration::from_secs(15)).is_empty());
        assert_eq!(reg.expire(t0 + Duration::from_secs(16)), vec![p.id.clone()]);
        assert!(reg.workloads().is_empty());
        assert!(!reg.connect(&proxy("router~10.0.0.3~gw.x~x.svc.cluster.local")));
    }

    #[test]
    fn workload_group_template_completes_the_workload() {
        let loaded = lateen_api::load(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: reviews, namespace: default}\nspec:\n  metadata: {labels: {app: reviews}}\n  template: {serviceAccount: reviews-sa, ports: {http: 9080}, labels: {version: v1}}\n",
            "wg.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let config = Config {
            resources: loaded.resources().cloned().collect(),
            ..Config::default()
        };
        let workload = Workload {
            id: "sidecar~10.0.0.7~vm-1.default~default.svc.cluster.local".into(),
            address: "10.0.0.7".into(),
            namespace: "default".into(),
            labels: [("version".to_string(), "v2".to_string())].into(),
            service_account: "default".into(),
            ports: BTreeMap::new(),
            group: Some("reviews".into()),
        };
        let instance = workload.instance(&config);
        assert_eq!(
            instance.labels.get("app").map(String::as_str),
            Some("reviews")
        );
        // The proxy's own labels win over the template's.
        assert_eq!(
            instance.labels.get("version").map(String::as_str),
            Some("v2")
        );
        assert_eq!(instance.ports.get("http"), Some(&9080));
        assert_eq!(instance.service_account, "reviews-sa");
    }
}
