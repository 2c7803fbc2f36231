//! The `istio-ca-root-cert` ConfigMap (key `root-cert.pem`, label `istio.io/config: "true"`)
//! in every namespace MeshConfig `discoverySelectors` select, as istiod's namespace controller
//! keeps it: created when missing, corrected when its data is edited, recreated when deleted.
//! Namespaces being deleted are left alone, and so are Kubernetes' own `kube-public`,
//! `kube-node-lease` and `local-path-storage` (istiod's ignored namespaces; it does write to
//! `kube-system`, where ztunnel may run). A ConfigMap in a namespace no longer selected is left
//! in place, as istiod leaves it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use tokio_stream::StreamExt;

use super::Settings;
use super::selector::namespace_selected;

/// The ConfigMap's name and key, Istio's.
pub const CONFIGMAP_NAME: &str = "istio-ca-root-cert";
pub const ROOT_CERT_KEY: &str = "root-cert.pem";
/// Namespaces istiod never writes the root certificate to.
pub const IGNORED_NAMESPACES: &[&str] = &["kube-public", "kube-node-lease", "local-path-storage"];

/// How often a reconcile runs without an event (MeshConfig changes arrive this way).
const TICK: Duration = Duration::from_secs(2);

/// What a namespace needs done to its ConfigMap.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create,
    /// Replace this (stored) ConfigMap's data.
    Correct(Arc<ConfigMap>),
}

/// The namespaces that need work, in name order.
pub fn plan(
    namespaces: &[Arc<Namespace>],
    existing: impl Fn(&str) -> Option<Arc<ConfigMap>>,
    selectors: &[serde_json::Value],
    ca_pem: &str,
) -> Vec<(String, Action)> {
    let mut work = vec![];
    for ns in namespaces {
        let name = ns.name_any();
        let terminating = ns.status.as_ref().and_then(|s| s.phase.as_deref())
            == Some("Terminating")
            || ns.metadata.deletion_timestamp.is_some();
        if terminating
            || IGNORED_NAMESPACES.contains(&name.as_str())
            || !namespace_selected(selectors, ns.labels())
        {
            continue;
        }
        match existing(&name) {
            None => work.push((name, Action::Create)),
            Some(cm) if !holds(&cm, ca_pem) => work.push((name, Action::Correct(cm))),
            Some(_) => {}
        }
    }
    work.sort_by(|a, b| a.0.cmp(&b.0));
    work
}

fn holds(cm: &ConfigMap, ca_pem: &str) -> bool {
    cm.data
        .as_ref()
        .and_then(|d| d.get(ROOT_CERT_KEY))
        .is_some_and(|v| v == ca_pem)
        && cm.labels().get("istio.io/config").map(String::as_str) == Some("true")
}

fn desired(namespace: &str, ca_pem: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIGMAP_NAME.into()),
            namespace: Some(namespace.into()),
            labels: Some(BTreeMap::from([("istio.io/config".into(), "true".into())])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(ROOT_CERT_KEY.into(), ca_pem.into())])),
        ..Default::default()
    }
}

/// Writes one namespace's ConfigMap; a conflict (someone wrote meanwhile) is retried by the
/// next reconcile.
async fn apply(
    client: &kube::Client,
    namespace: &str,
    action: &Action,
    ca_pem: &str,
) -> Result<(), kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let pp = PostParams::default();
    match action {
        Action::Create => match api.create(&pp, &desired(namespace, ca_pem)).await {
            Ok(_) => {
                tracing::info!(%namespace, "created {CONFIGMAP_NAME}");
                Ok(())
            }
            // The store had not seen it yet: correct it if needed on the next pass.
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        },
        Action::Correct(current) => {
            let mut next = (**current).clone();
            next.data
                .get_or_insert_with(BTreeMap::new)
                .insert(ROOT_CERT_KEY.into(), ca_pem.into());
            next.labels_mut()
                .insert("istio.io/config".into(), "true".into());
            api.replace(CONFIGMAP_NAME, &pp, &next).await?;
            tracing::info!(%namespace, "corrected {CONFIGMAP_NAME}");
            Ok(())
        }
    }
}

/// Publishes the root certificate until cancelled (runs while this replica leads).
pub async fn run(client: kube::Client, settings: Settings) {
    let (namespaces, ns_writer) = reflector::store::<Namespace>();
    let (configmaps, cm_writer) = reflector::store::<ConfigMap>();
    let ns_events = reflector::reflector(
        ns_writer,
        watcher(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    )
    .map(|_| ());
    let cm_events = reflector::reflector(
        cm_writer,
        watcher(
            Api::<ConfigMap>::all(client.clone()),
            watcher::Config::default().fields(&format!("metadata.name={CONFIGMAP_NAME}")),
        )
        .default_backoff(),
    )
    .map(|_| ());
    let mut events = Box::pin(ns_events.merge(cm_events));
    let ready = async {
        namespaces.wait_until_ready().await.is_ok() && configmaps.wait_until_ready().await.is_ok()
    };
    // The streams drive the stores: poll them while waiting for the first lists.
    tokio::pin!(ready);
    loop {
        tokio::select! {
            ok = &mut ready => { if !ok { return; } break; }
            e = events.next() => if e.is_none() { return; },
        }
    }
    tracing::info!("publishing {CONFIGMAP_NAME} into selected namespaces");
    loop {
        reconcile(&client, &settings, &namespaces, &configmaps).await;
        // Wait for an event or a tick, then take whatever else arrived at once.
        tokio::select! {
            e = events.next() => if e.is_none() { return; },
            () = tokio::time::sleep(TICK) => {}
        }
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(20), events.next()).await
        {
        }
    }
}

async fn reconcile(
    client: &kube::Client,
    settings: &Settings,
    namespaces: &Store<Namespace>,
    configmaps: &Store<ConfigMap>,
) {
    let selectors = (settings.discovery_selectors)();
    let work = plan(
        &namespaces.state(),
        |ns| configmaps.get(&ObjectRef::new(CONFIGMAP_NAME).within(ns)),
        &selectors,
        &settings.ca_pem,
    );
    for (namespace, action) in work {
        if let Err(e) = apply(client, &namespace, &action, &settings.ca_pem).await {
            tracing::warn!(%namespace, error = %e, "could not write {CONFIGMAP_NAME}; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ns(name: &str, labels: &[(&str, &str)], phase: &str) -> Arc<Namespace> {
        Arc::new(Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            status: Some(k8s_openapi::api::core::v1::NamespaceStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn creates_corrects_and_skips() {
        let namespaces = [
            ns("default", &[], "Active"),
            ns("kube-public", &[], "Active"),
            ns("kube-system", &[], "Active"),
            ns("going", &[], "Terminating"),
            ns("edited", &[], "Active"),
            ns("fine", &[], "Active"),
        ];
        let good = Arc::new(desired("fine", "CA"));
        let edited = Arc::new(desired("edited", "someone else's"));
        let existing = |n: &str| match n {
            "fine" => Some(good.clone()),
            "edited" => Some(edited.clone()),
            _ => None,
        };
        let work = plan(&namespaces, existing, &[], "CA");
        assert_eq!(
            work,
            [
                ("default".to_string(), Action::Create),
                ("edited".to_string(), Action::Correct(edited.clone())),
                ("kube-system".to_string(), Action::Create),
            ]
        );
    }

    #[test]
    fn only_selected_namespaces() {
        let namespaces = [
            ns("a", &[("istio-discovery", "enabled")], "Active"),
            ns("b", &[], "Active"),
        ];
        let selectors = [json!({"matchLabels": {"istio-discovery": "enabled"}})];
        let work = plan(&namespaces, |_| None, &selectors, "CA");
        assert_eq!(work, [("a".to_string(), Action::Create)]);
    }
}
