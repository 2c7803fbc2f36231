//! What istiod writes to the cluster, lateend writes: one replica at a time, chosen by a
//! `coordination.k8s.io` Lease per job with istiod's election names, while every replica serves
//! xDS and the webhooks.
//!
//! | job | Lease (in the system namespace) | module |
//! |---|---|---|
//! | `istio-ca-root-cert` ConfigMap in every namespace MeshConfig `discoverySelectors` select | `istio-namespace-controller-election` | [`root_cert`] |
//! | `caBundle` of lateend's Mutating/ValidatingWebhookConfiguration, validation fail-closed once `/validate` rejects | `istio-validation-controller-election` | [`webhook_ca`] |
//! | `status.validationMessages` (IST0106) on Istio resources lateend rejects | `istio-analyze-leader` | [`status`] |
//!
//! Leader election follows client-go's (and so istiod's): lease 30 s, a leader gives up when it
//! could not renew for 15 s, everyone retries every 7.5 s, expiry is judged by local time since
//! the record last changed (no clock comparison between replicas), and the lease is released
//! on shutdown. A job runs only while its lease is held: losing it cancels the job mid-way,
//! which is safe because every job reconciles from what the API server says, not from memory.
//!
//! The root certificate is the mesh CA's root ([`crate::mesh_ca`], kept in `istio-ca-secret`
//! so every replica shares it), which also signs lateend's serving certificate (15012 and
//! 15017), as istiod's.

pub mod lease;
pub mod root_cert;
pub mod selector;
pub mod status;
pub mod webhook_ca;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::kube::RejectedObject;
pub use lease::{Elector, LeaseTimings};

/// Lease of the `istio-ca-root-cert` publisher (istiod's namespace controller).
pub const NAMESPACE_CONTROLLER_LEASE: &str = "istio-namespace-controller-election";
/// Lease of the webhook configuration patcher (istiod's validation controller).
pub const WEBHOOK_CONTROLLER_LEASE: &str = "istio-validation-controller-election";
/// Lease of the status writer (istiod's analysis controller, which writes validationMessages).
pub const STATUS_CONTROLLER_LEASE: &str = "istio-analyze-leader";

/// MeshConfig `discoverySelectors` as they are now (read on every reconcile).
pub type SelectorSource = Arc<dyn Fn() -> Vec<serde_json::Value> + Send + Sync>;

/// What the writers need to know.
#[derive(Clone)]
pub struct Settings {
    /// lateend's own namespace (Leases live here).
    pub namespace: String,
    /// This replica's name in the Leases (`POD_NAME`).
    pub identity: String,
    /// PEM of the CA that signed lateend's serving certificate.
    pub ca_pem: String,
    /// Name of lateend's MutatingWebhookConfiguration.
    pub injection_webhook_config: String,
    /// Names of lateend's ValidatingWebhookConfigurations (its revision's, and for the
    /// default revision the default validator of objects without a revision label).
    pub validation_webhook_configs: Vec<String>,
    /// The control plane's revision (`default` for none).
    pub revision: String,
    /// Whether to write `status.validationMessages`.
    pub write_status: bool,
    pub discovery_selectors: SelectorSource,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("namespace", &self.namespace)
            .field("identity", &self.identity)
            .field("injection_webhook_config", &self.injection_webhook_config)
            .field(
                "validation_webhook_configs",
                &self.validation_webhook_configs,
            )
            .field("revision", &self.revision)
            .field("write_status", &self.write_status)
            .finish_non_exhaustive()
    }
}

/// The holder identity of this replica: `POD_NAME`, else `unknown-HOSTNAME` as istiod does.
pub fn holder_identity(pod_name: Option<&str>) -> String {
    match pod_name {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default();
            format!("unknown-{host}")
        }
    }
}

/// The running writers; [`ClusterWrites::shutdown`] releases the Leases.
pub struct ClusterWrites {
    electors: Vec<Arc<Elector>>,
    tasks: Vec<JoinHandle<()>>,
    rejected: watch::Sender<Arc<Vec<RejectedObject>>>,
}

impl ClusterWrites {
    /// Where the configuration source reports the Istio objects it rejects (the whole set
    /// each time); their status is written while this replica holds the status Lease.
    pub fn rejected_objects(&self) -> watch::Sender<Arc<Vec<RejectedObject>>> {
        self.rejected.clone()
    }

    /// Stops the jobs and releases every Lease this replica holds, so another replica takes
    /// over at once instead of after the lease duration.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        for elector in &self.electors {
            elector.release().await;
        }
    }
}

/// Starts the electors and their jobs in the background.
pub fn start(client: kube::Client, settings: Settings) -> ClusterWrites {
    start_with(client, settings, LeaseTimings::ISTIOD)
}

/// [`start`] with other lease timings (tests).
pub fn start_with(
    client: kube::Client,
    settings: Settings,
    timings: LeaseTimings,
) -> ClusterWrites {
    let (rejected, rejected_rx) = watch::channel(Arc::new(Vec::new()));
    let elector = |name: &str| {
        Arc::new(Elector::new(
            client.clone(),
            &settings.namespace,
            name,
            &settings.identity,
            timings,
        ))
    };
    let root = elector(NAMESPACE_CONTROLLER_LEASE);
    let hooks = elector(WEBHOOK_CONTROLLER_LEASE);
    let mut electors = vec![root.clone(), hooks.clone()];
    let mut tasks = vec![];
    for e in [&root, &hooks] {
        tasks.push(tokio::spawn(e.clone().run()));
    }
    {
        let (client, settings) = (client.clone(), settings.clone());
        tasks.push(tokio::spawn(while_leading(root.leading(), move || {
            root_cert::run(client.clone(), settings.clone())
        })));
    }
    {
        let (client, settings) = (client.clone(), settings.clone());
        tasks.push(tokio::spawn(while_leading(hooks.leading(), move || {
            webhook_ca::run(client.clone(), settings.clone())
        })));
    }
    if settings.write_status {
        let status = elector(STATUS_CONTROLLER_LEASE);
        electors.push(status.clone());
        tasks.push(tokio::spawn(status.clone().run()));
        let client = client.clone();
        tasks.push(tokio::spawn(while_leading(status.leading(), move || {
            status::run(client.clone(), rejected_rx.clone())
        })));
    }
    ClusterWrites {
        electors,
        tasks,
        rejected,
    }
}

/// Runs `job` whenever `leading` is true, cancelling it when leadership is lost; a job that
/// ends by itself is started again after a pause (it only ends on an error it logged).
async fn while_leading<F, Fut>(mut leading: watch::Receiver<bool>, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        if !until(&mut leading, true).await {
            return;
        }
        tokio::select! {
            () = job() => tokio::time::sleep(Duration::from_secs(1)).await,
            _ = until(&mut leading, false) => {}
        }
    }
}

/// Waits until `leading` is `want`; false when the elector is gone.
async fn until(leading: &mut watch::Receiver<bool>, want: bool) -> bool {
    leading.wait_for(|l| *l == want).await.is_ok()
}
