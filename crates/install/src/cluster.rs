//! Putting rendered objects into a cluster and checking them: server-side apply with field
//! manager `lateen` (so a later apply owns and updates exactly the fields it wrote), removal, and
//! a readiness check of the install.
//!
//! Objects are applied in render order (namespaces and CRDs first, webhooks last) and removed in
//! the reverse order, so the injector stops matching pods before the control plane goes away.

use std::future::Future;
use std::path::PathBuf;

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use serde_json::Value;

use crate::error::{InstallError, Result};
use crate::inventory::ObjectRef;
use crate::render::RenderedObject;

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "lateen";

/// How to reach the cluster.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// A kubeconfig file; default: `$KUBECONFIG`, `~/.kube/config`, or the in-cluster account.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig; default: its current context.
    pub context: Option<String>,
    /// An API server URL to use directly, without credentials (tests, `kubectl proxy`).
    pub server: Option<String>,
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// Objects checked, as `Kind/namespace/name`.
    pub checked: Vec<String>,
    /// Objects that do not exist.
    pub missing: Vec<String>,
    /// Deployments with fewer ready replicas than wanted, with a reason.
    pub not_ready: Vec<String>,
    /// Fields that differ from the rendering, as `Kind/namespace/name: path: ...` (warnings:
    /// an install with the same flags puts them back).
    pub drifted: Vec<String>,
}

impl Verification {
    /// Everything exists and every Deployment is ready.
    pub fn is_healthy(&self) -> bool {
        self.missing.is_empty() && self.not_ready.is_empty()
    }
}

pub(crate) fn cluster_error(object: &str, err: impl std::fmt::Display) -> InstallError {
    InstallError::Cluster {
        object: object.to_owned(),
        message: err.to_string(),
    }
}

/// A client for `target`.
pub async fn client(target: &Target) -> Result<Client> {
    let config = config(target).await?;
    Client::try_from(config).map_err(|err| cluster_error("cluster", err))
}

/// The connection settings `target` names (server URL, credentials, default namespace).
pub async fn config(target: &Target) -> Result<Config> {
    let config = if let Some(server) = &target.server {
        let uri = server
            .parse()
            .map_err(|err| cluster_error("cluster", format!("API server URL {server:?}: {err}")))?;
        Config::new(uri)
    } else if let Some(path) = &target.kubeconfig {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|err| {
            cluster_error("cluster", format!("kubeconfig {}: {err}", path.display()))
        })?;
        let options = KubeConfigOptions {
            context: target.context.clone(),
            ..KubeConfigOptions::default()
        };
        Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|err| {
                cluster_error("cluster", format!("kubeconfig {}: {err}", path.display()))
            })?
    } else if target.context.is_some() {
        let options = KubeConfigOptions {
            context: target.context.clone(),
            ..KubeConfigOptions::default()
        };
        Config::from_kubeconfig(&options)
            .await
            .map_err(|err| cluster_error("cluster", err))?
    } else {
        Config::infer()
            .await
            .map_err(|err| cluster_error("cluster", err))?
    };
    Ok(config)
}

/// Resource name (plural) and scope of the kinds an install renders or records.
fn plural_and_scope(kind: &str) -> Option<(&'static str, bool)> {
    Some(match kind {
        "Namespace" => ("namespaces", false),
        "CustomResourceDefinition" => ("customresourcedefinitions", false),
        "ClusterRole" => ("clusterroles", false),
        "ClusterRoleBinding" => ("clusterrolebindings", false),
        "MutatingWebhookConfiguration" => ("mutatingwebhookconfigurations", false),
        "ValidatingWebhookConfiguration" => ("validatingwebhookconfigurations", false),
        "ServiceAccount" => ("serviceaccounts", true),
        "Role" => ("roles", true),
        "RoleBinding" => ("rolebindings", true),
        "ConfigMap" => ("configmaps", true),
        "Secret" => ("secrets", true),
        "Service" => ("services", true),
        "Deployment" => ("deployments", true),
        "PodDisruptionBudget" => ("poddisruptionbudgets", true),
        "HorizontalPodAutoscaler" => ("horizontalpodautoscalers", true),
        "IstioOperator" => ("istiooperators", true),
        _ => return None,
    })
}

/// The API serving objects like `object` (namespaced to its namespace when the kind is).
pub(crate) fn api_for(client: &Client, object: &ObjectRef) -> Result<Api<DynamicObject>> {
    let label = object.to_string();
    let (plural, namespaced) = plural_and_scope(&object.kind)
        .ok_or_else(|| cluster_error(&label, "kind not known to the installer"))?;
    let (group, version) = object
        .api_version
        .rsplit_once('/')
        .unwrap_or(("", &object.api_version));
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, &object.kind),
        plural,
    );
    match (namespaced, &object.namespace) {
        (true, Some(ns)) => Ok(Api::namespaced_with(client.clone(), ns, &resource)),
        (true, None) => Err(cluster_error(
            &label,
            "namespaced object without a namespace",
        )),
        (false, _) => Ok(Api::all_with(client.clone(), &resource)),
    }
}

/// Server-side applies one object (forced: we own the fields we write).
pub(crate) async fn apply_one(client: &Client, object: &Value) -> Result<DynamicObject> {
    let reference = ObjectRef::of(object);
    let label = reference.to_string();
    let api = api_for(client, &reference)?;
    let body: DynamicObject =
        serde_json::from_value(object.clone()).map_err(|err| cluster_error(&label, err))?;
    api.patch(
        &reference.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|err| cluster_error(&label, err))
}

/// Server-side applies every object in order; returns what was applied.
pub async fn apply(client: &Client, objects: &[RenderedObject]) -> Result<Vec<String>> {
    let mut applied = Vec::with_capacity(objects.len());
    for object in objects {
        apply_one(client, &object.object).await?;
        applied.push(ObjectRef::of(&object.object).to_string());
    }
    Ok(applied)
}

/// The live object, or `None` when it does not exist.
pub(crate) async fn get(client: &Client, object: &ObjectRef) -> Result<Option<DynamicObject>> {
    api_for(client, object)?
        .get_opt(&object.name)
        .await
        .map_err(|err| cluster_error(&object.to_string(), err))
}

/// Deletes the objects in the given order; ones already gone are skipped. Returns the deleted.
pub async fn delete_all(client: &Client, objects: &[ObjectRef]) -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    for object in objects {
        let label = object.to_string();
        match api_for(client, object)?
            .delete(&object.name, &DeleteParams::background())
            .await
        {
            Ok(_) => deleted.push(label),
            Err(kube::Error::Api(status)) if status.is_not_found() => {}
            Err(err) => return Err(cluster_error(&label, err)),
        }
    }
    Ok(deleted)
}

/// Kinds that outlive an uninstall unless purged: deleting a CRD deletes every config of its
/// kind, and deleting a namespace deletes whatever users put there.
pub fn is_kept_unless_purged(kind: &str) -> bool {
    matches!(kind, "CustomResourceDefinition" | "Namespace")
}

/// Deletes the objects in reverse order; ones already gone are skipped. CRDs and namespaces
/// stay unless `purge`.
pub async fn uninstall(
    client: &Client,
    objects: &[RenderedObject],
    purge: bool,
) -> Result<Vec<String>> {
    let refs: Vec<ObjectRef> = objects
        .iter()
        .rev()
        .filter(|object| purge || !is_kept_unless_purged(object.kind()))
        .map(|object| ObjectRef::of(&object.object))
        .collect();
    delete_all(client, &refs).await
}

/// Checks that every object exists and every Deployment is ready.
pub async fn verify(client: &Client, objects: &[RenderedObject]) -> Result<Verification> {
    let mut report = Verification::default();
    for object in objects {
        let reference = ObjectRef::of(&object.object);
        let label = reference.to_string();
        report.checked.push(label.clone());
        let Some(found) = get(client, &reference).await? else {
            report.missing.push(label);
            continue;
        };
        let live = serde_json::to_value(&found).map_err(|err| cluster_error(&label, err))?;
        for difference in crate::drift::differences(&object.object, &live) {
            report.drifted.push(format!("{label}: {difference}"));
        }
        if let Some(reason) = crate::readiness::not_ready_reason(&object.object, &found.data) {
            report.not_ready.push(format!("{label}: {reason}"));
        }
    }
    Ok(report)
}

/// Runs one of the functions above to completion for a caller without an async runtime.
pub fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| cluster_error("runtime", err))?
        .block_on(future)
}
