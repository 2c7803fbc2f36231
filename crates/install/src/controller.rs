//! The in-cluster operator (`lateen operator run`): it keeps each IstioOperator resource
//! installed, as Istio's operator does. Every pass lists the IstioOperators; one whose
//! `metadata.generation` changed since it was last applied (or that was applied longer ago than
//! the resync period, which repairs drift) is rendered, applied and pruned through
//! [`crate::lifecycle::install`]; then its components' readiness is checked. The outcome goes to
//! the status subresource: `status.status` is RECONCILING while applying or waiting, HEALTHY once
//! every component is ready, ERROR with the reason in `status.message` when the resource is
//! invalid or the cluster refuses it; `status.componentStatus` has one entry per component.
//!
//! The operator puts its finalizer (Istio's, `istio-finalizer.install.istio.io`) on each
//! resource; deleting the resource then uninstalls what its record lists (CRDs and namespaces
//! stay, as with `lateen uninstall`) before the API server lets it go.
//!
//! Polling rather than a watch: one list per pass keeps the loop simple and bounded, and the
//! pass interval is short next to how long an install takes to become ready. The status is
//! written only when it changes, so an idle pass sends no writes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Map, Value, json};

use crate::cluster::cluster_error;
use crate::error::Result;
use crate::readiness::{self, ComponentReadiness};
use crate::render::RenderedObject;
use crate::{InputFile, Inputs, lifecycle};

/// `status.status` while applying or waiting for readiness.
pub const RECONCILING: &str = "RECONCILING";
/// `status.status` once every component is ready.
pub const HEALTHY: &str = "HEALTHY";
/// `status.status` when the resource cannot be installed; `status.message` says why.
pub const ERROR: &str = "ERROR";
/// Reported (not written: the resource is gone) when a deleted resource's install was removed.
pub const REMOVED: &str = "REMOVED";

/// The finalizer that makes deleting an IstioOperator uninstall what it installed (Istio's
/// name, so resources Istio's operator managed are handled the same way).
pub const FINALIZER: &str = "istio-finalizer.install.istio.io";

/// The IstioOperator API.
pub fn istio_operator_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("install.istio.io", "v1alpha1", "IstioOperator"),
        "istiooperators",
    )
}

/// A status written to one IstioOperator, or [`REMOVED`] for one deleted and uninstalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// `namespace/name` of the IstioOperator.
    pub resource: String,
    pub status: String,
    pub message: String,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassOutcome {
    /// Statuses written (and resources removed).
    pub changes: Vec<StatusChange>,
    /// Resources that could not be reconciled this pass, with why; tried again next pass.
    pub failures: Vec<String>,
}

/// What the operator remembers of one IstioOperator between passes.
struct Applied {
    generation: i64,
    at: Instant,
    /// The rendered objects, when the generation was valid and applied.
    objects: Option<Vec<RenderedObject>>,
    /// The cluster refused the apply: try again after [`RETRY_AFTER`] (an invalid resource
    /// waits for its next generation instead).
    retry: bool,
}

/// How long after a failed apply the operator tries again.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// The reconcile loop's state.
pub struct Controller {
    client: Client,
    /// Only IstioOperators of this namespace; all when `None`.
    namespace: Option<String>,
    /// Re-apply an unchanged resource this often, undoing manual changes and deletions.
    resync: Duration,
    applied: HashMap<String, Applied>,
}

impl Controller {
    pub fn new(client: Client, namespace: Option<String>, resync: Duration) -> Self {
        Controller {
            client,
            namespace,
            resync,
            applied: HashMap::new(),
        }
    }

    fn api(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        let resource = istio_operator_resource();
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }

    /// One pass over every IstioOperator; fails only when they cannot be listed.
    pub async fn pass(&mut self) -> Result<PassOutcome> {
        let list = self
            .api(self.namespace.as_deref())
            .list(&ListParams::default())
            .await
            .map_err(|err| cluster_error("IstioOperator list", err))?;
        let mut outcome = PassOutcome::default();
        let mut present = Vec::new();
        for resource in list.items {
            let key = format!(
                "{}/{}",
                resource.metadata.namespace.as_deref().unwrap_or_default(),
                resource.metadata.name.as_deref().unwrap_or_default()
            );
            present.push(key.clone());
            // One resource the cluster refuses to update must not stall the others.
            match self.reconcile(&key, &resource).await {
                Ok(changes) => outcome.changes.extend(changes),
                Err(err) => outcome.failures.push(format!("IstioOperator {key}: {err}")),
            }
        }
        // Resources that are gone (finalized, or deleted without our finalizer): forget them.
        self.applied.retain(|key, _| present.contains(key));
        Ok(outcome)
    }

    /// Runs `passes` passes `interval` apart, handing each pass's outcome to `report`. A failed
    /// pass (the API server briefly away during an upgrade) does not end the loop.
    pub async fn run(
        &mut self,
        interval: Duration,
        passes: u64,
        mut report: impl FnMut(u64, Result<PassOutcome>),
    ) {
        for pass in 0..passes {
            let outcome = self.pass().await;
            report(pass, outcome);
            if pass + 1 < passes {
                tokio::time::sleep(interval).await;
            }
        }
    }

    async fn reconcile(
        &mut self,
        key: &str,
        resource: &DynamicObject,
    ) -> Result<Vec<StatusChange>> {
        if resource.metadata.deletion_timestamp.is_some() {
            return self.finalize(key, resource).await;
        }
        if !has_finalizer(resource) {
            let mut finalizers = resource.metadata.finalizers.clone().unwrap_or_default();
            finalizers.push(FINALIZER.to_owned());
            self.set_finalizers(resource, finalizers).await?;
        }
        let generation = resource.metadata.generation.unwrap_or(0);
        let mut current = Status::of(resource);
        let mut changes = Vec::new();
        let due = match self.applied.get(key) {
            None => true,
            Some(applied) => {
                applied.generation != generation
                    || (applied.objects.is_some() && applied.at.elapsed() >= self.resync)
                    || (applied.retry && applied.at.elapsed() >= RETRY_AFTER)
            }
        };
        if due {
            // A resync of an unchanged resource re-applies quietly: no RECONCILING flicker.
            let resync = self
                .applied
                .get(key)
                .is_some_and(|applied| applied.generation == generation);
            if !resync {
                let applying =
                    Status::new(RECONCILING, format!("applying generation {generation}"));
                changes.extend(self.write(resource, &mut current, applying).await?);
            }
            let (objects, retry) = match self.apply(key, resource).await {
                Ok(objects) => (Some(objects), false),
                Err(failure) => {
                    let error = Status::new(ERROR, failure.message);
                    changes.extend(self.write(resource, &mut current, error).await?);
                    (None, failure.retry)
                }
            };
            self.applied.insert(
                key.to_owned(),
                Applied {
                    generation,
                    at: Instant::now(),
                    objects,
                    retry,
                },
            );
        }
        let Some(objects) = self.applied.get(key).and_then(|a| a.objects.clone()) else {
            return Ok(changes);
        };
        let next = match readiness::check(&self.client, &objects).await {
            Ok(report) => Status::from_readiness(&report),
            Err(err) => Status::new(ERROR, format!("checking readiness: {err}")),
        };
        changes.extend(self.write(resource, &mut current, next).await?);
        Ok(changes)
    }

    /// A deleted resource: uninstall what its record lists (CRDs and namespaces stay, as with
    /// `lateen uninstall`), then let the API server remove it.
    async fn finalize(&mut self, key: &str, resource: &DynamicObject) -> Result<Vec<StatusChange>> {
        self.applied.remove(key);
        if !has_finalizer(resource) {
            return Ok(Vec::new());
        }
        let scope = scope_of(resource);
        let deleted = lifecycle::uninstall(&self.client, &scope, &[], false).await?;
        let remaining = without_finalizer(resource);
        self.set_finalizers(resource, remaining).await?;
        Ok(vec![StatusChange {
            resource: key.to_owned(),
            status: REMOVED.to_owned(),
            message: format!(
                "deleted; its install was removed ({} objects)",
                deleted.len()
            ),
        }])
    }

    /// Replaces `metadata.finalizers`; the resourceVersion makes a concurrent change a conflict
    /// (retried next pass) rather than a lost update.
    async fn set_finalizers(
        &self,
        resource: &DynamicObject,
        finalizers: Vec<String>,
    ) -> Result<()> {
        let name = resource.metadata.name.as_deref().unwrap_or_default();
        let body = json!({"metadata": {
            "finalizers": finalizers,
            "resourceVersion": resource.metadata.resource_version,
        }});
        self.api(resource.metadata.namespace.as_deref())
            .patch(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|err| cluster_error(&format!("IstioOperator {name} finalizers"), err))?;
        Ok(())
    }

    /// Renders, applies and prunes.
    async fn apply(
        &self,
        key: &str,
        resource: &DynamicObject,
    ) -> std::result::Result<Vec<RenderedObject>, Failure> {
        let source = format!("IstioOperator {key}");
        let tree = user_document(resource);
        let inputs = Inputs {
            profile: None,
            files: vec![InputFile {
                name: source.clone(),
                text: tree.to_string(),
            }],
            sets: Vec::new(),
        };
        let invalid = |err: crate::InstallError| Failure {
            message: err.to_string(),
            retry: false,
        };
        let merged = crate::merge_inputs(&inputs).map_err(invalid)?;
        let objects = crate::render(&merged.operator).map_err(invalid)?;
        let scope = crate::install_scope(&merged.operator);
        lifecycle::install(&self.client, &scope, &source, &objects)
            .await
            .map_err(|err| Failure {
                message: format!("applying: {err}"),
                retry: true,
            })?;
        Ok(objects)
    }

    /// Writes `next` unless the resource already has it.
    async fn write(
        &self,
        resource: &DynamicObject,
        current: &mut Status,
        next: Status,
    ) -> Result<Option<StatusChange>> {
        if *current == next {
            return Ok(None);
        }
        let namespace = resource.metadata.namespace.as_deref();
        let name = resource.metadata.name.as_deref().unwrap_or_default();
        let resource_label = format!("{}/{name}", namespace.unwrap_or_default());
        let mut components = Map::new();
        for stale in current.components.keys() {
            components.insert(stale.clone(), Value::Null);
        }
        for (component, entry) in &next.components {
            components.insert(component.clone(), entry.clone());
        }
        let body = json!({"status": {
            "status": next.status,
            "message": next.message,
            "componentStatus": components,
        }});
        self.api(namespace)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|err| cluster_error(&format!("IstioOperator {resource_label} status"), err))?;
        let change = StatusChange {
            resource: resource_label,
            status: next.status.clone(),
            message: next.message.clone(),
        };
        *current = next;
        Ok(Some(change))
    }
}

/// The resource's finalizers but ours.
fn without_finalizer(resource: &DynamicObject) -> Vec<String> {
    resource
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| f.as_str() != FINALIZER)
        .cloned()
        .collect()
}

fn has_finalizer(resource: &DynamicObject) -> bool {
    resource
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FINALIZER)
}

/// Where a resource's install lives, read leniently: a resource deleted while invalid must
/// still be uninstallable.
fn scope_of(resource: &DynamicObject) -> crate::InstallScope {
    let tree = user_document(resource);
    let inputs = Inputs {
        profile: None,
        files: vec![InputFile {
            name: "IstioOperator".into(),
            text: tree.to_string(),
        }],
        sets: Vec::new(),
    };
    if let Ok(merged) = crate::merge_inputs(&inputs) {
        return crate::install_scope(&merged.operator);
    }
    let text = |pointer: &str| {
        tree.pointer(pointer)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    crate::InstallScope {
        namespace: text("/spec/namespace")
            .or_else(|| text("/spec/values/global/istioNamespace"))
            .unwrap_or_else(|| "istio-system".to_owned()),
        revision: text("/spec/revision").unwrap_or_default(),
    }
}

/// Takes the operator's finalizer off every IstioOperator, so that they can be deleted once
/// the operator is gone (`operator remove --purge` deletes the CRD). Returns how many.
pub async fn release_finalizers(client: &Client) -> Result<usize> {
    let controller = Controller::new(client.clone(), None, Duration::MAX);
    let list = match controller.api(None).list(&ListParams::default()).await {
        Ok(list) => list,
        // No CRD, no IstioOperators to release.
        Err(kube::Error::Api(status)) if status.is_not_found() => return Ok(0),
        Err(err) => return Err(cluster_error("IstioOperator list", err)),
    };
    let mut released = 0;
    for resource in list.items.iter().filter(|r| has_finalizer(r)) {
        let remaining = without_finalizer(resource);
        controller.set_finalizers(resource, remaining).await?;
        released += 1;
    }
    Ok(released)
}

/// Why an apply failed: the message for `status.message`, and whether trying again may help.
struct Failure {
    message: String,
    retry: bool,
}

/// The user's part of a resource read from the cluster: what the API server adds (uid,
/// resourceVersion, managedFields, status, ...) is not IstioOperator configuration.
fn user_document(resource: &DynamicObject) -> Value {
    let mut metadata = Map::new();
    if let Some(name) = &resource.metadata.name {
        metadata.insert("name".into(), json!(name));
    }
    if let Some(namespace) = &resource.metadata.namespace {
        metadata.insert("namespace".into(), json!(namespace));
    }
    json!({
        "apiVersion": crate::operator::API_VERSION,
        "kind": crate::operator::KIND,
        "metadata": metadata,
        "spec": resource.data.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

/// The parts of `status` the operator writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Status {
    status: String,
    message: String,
    components: Map<String, Value>,
}

impl Status {
    fn new(status: &str, message: String) -> Self {
        Status {
            status: status.to_owned(),
            message,
            components: Map::new(),
        }
    }

    fn of(resource: &DynamicObject) -> Self {
        let status = &resource.data["status"];
        Status {
            status: status["status"].as_str().unwrap_or_default().to_owned(),
            message: status["message"].as_str().unwrap_or_default().to_owned(),
            components: status["componentStatus"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn from_readiness(report: &[ComponentReadiness]) -> Self {
        let mut components = Map::new();
        let mut waiting = Vec::new();
        for component in report {
            let entry = if component.is_ready() {
                json!({"status": HEALTHY})
            } else {
                waiting.extend(component.waiting.iter().cloned());
                json!({"status": RECONCILING, "error": component.waiting.join("; ")})
            };
            components.insert(component.component.to_owned(), entry);
        }
        let (status, message) = if waiting.is_empty() {
            (HEALTHY, String::new())
        } else {
            (RECONCILING, format!("waiting for {}", waiting.join("; ")))
        };
        Status {
            status: status.to_owned(),
            message,
            components,
        }
    }
}
