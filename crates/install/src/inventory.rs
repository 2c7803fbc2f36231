//! The record of what an install put into the cluster: a ConfigMap
//! `lateen-installed-manifest[-<revision>]` in the control-plane namespace listing every object
//! applied. A later install compares it with what it renders now and deletes what is no longer
//! wanted (pruning); uninstall deletes what it lists, even objects today's flags would not render.
//!
//! A list of references rather than the manifest itself: CRDs alone would bring a manifest near
//! the 1 MiB limit of a ConfigMap, and the references are all pruning needs.

use std::fmt;

use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cluster::{self, cluster_error};
use crate::error::Result;
use crate::render::InstallScope;

/// Name of the record of a default-revision install.
pub const INVENTORY_NAME: &str = "lateen-installed-manifest";
/// Key of the object list in the record's `data`.
const OBJECTS_KEY: &str = "objects";

/// Which object: enough to find it in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// The reference of a Kubernetes object tree.
    pub fn of(object: &Value) -> Self {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        ObjectRef {
            api_version: text("/apiVersion"),
            kind: text("/kind"),
            namespace: object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned),
            name: text("/metadata/name"),
        }
    }
}

/// `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects.
impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// Name of the record of an install in `scope`.
pub fn inventory_name(scope: &InstallScope) -> String {
    if scope.revision.is_empty() {
        INVENTORY_NAME.to_owned()
    } else {
        format!("{INVENTORY_NAME}-{}", scope.revision)
    }
}

fn inventory_ref(scope: &InstallScope) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some(scope.namespace.clone()),
        name: inventory_name(scope),
    }
}

/// Annotation of the record naming who installed (`lateen install`, `IstioOperator ns/name`).
pub const INSTALLED_BY: &str = "lateen.io/installed-by";

/// The record of an install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub objects: Vec<ObjectRef>,
    /// Who wrote it (the [`INSTALLED_BY`] annotation).
    pub installed_by: String,
}

/// The record of the install in `scope`, or `None` when there is none.
pub async fn read_record(client: &Client, scope: &InstallScope) -> Result<Option<Record>> {
    let reference = inventory_ref(scope);
    let Some(found) = cluster::get(client, &reference).await? else {
        return Ok(None);
    };
    let text = found
        .data
        .pointer(&format!("/data/{OBJECTS_KEY}"))
        .and_then(Value::as_str)
        .unwrap_or("[]");
    let objects = serde_json::from_str(text).map_err(|err| {
        cluster_error(
            &reference.to_string(),
            format!("data.{OBJECTS_KEY} is not a list of object references: {err}"),
        )
    })?;
    let installed_by = found
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INSTALLED_BY))
        .cloned()
        .unwrap_or_default();
    Ok(Some(Record {
        objects,
        installed_by,
    }))
}

/// The objects the last install in `scope` recorded, or `None` when there is no record.
pub async fn read(client: &Client, scope: &InstallScope) -> Result<Option<Vec<ObjectRef>>> {
    Ok(read_record(client, scope)
        .await?
        .map(|record| record.objects))
}

/// The objects recorded by the other installs (other revisions) in `scope`'s namespace: an
/// object one of them lists is shared (CRDs, the reader ServiceAccount) and must outlive the
/// removal of this one.
pub async fn read_others(client: &Client, scope: &InstallScope) -> Result<Vec<ObjectRef>> {
    let own = inventory_name(scope);
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &scope.namespace,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "ConfigMap"),
            "configmaps",
        ),
    );
    let listed = api
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=lateen"))
        .await
        .map_err(|err| cluster_error(&format!("ConfigMaps in {}", scope.namespace), err))?;
    let mut others = Vec::new();
    for record in listed.items {
        let name = record.metadata.name.as_deref().unwrap_or_default();
        let is_record = name == INVENTORY_NAME || name.starts_with(&format!("{INVENTORY_NAME}-"));
        if !is_record || name == own {
            continue;
        }
        let text = record
            .data
            .pointer(&format!("/data/{OBJECTS_KEY}"))
            .and_then(Value::as_str)
            .unwrap_or("[]");
        // A record we cannot read protects nothing; it is someone else's problem to fix.
        others.extend(serde_json::from_str::<Vec<ObjectRef>>(text).unwrap_or_default());
    }
    Ok(others)
}

/// Records `objects` as what is installed in `scope` (server-side apply of the ConfigMap).
pub async fn write(
    client: &Client,
    scope: &InstallScope,
    owner: &str,
    objects: &[ObjectRef],
) -> Result<()> {
    let reference = inventory_ref(scope);
    // One reference per line keeps `kubectl get cm -o yaml` readable.
    let lines: Vec<String> = objects
        .iter()
        .map(|object| serde_json::to_string(object).unwrap_or_default())
        .collect();
    let list = format!("[\n{}\n]\n", lines.join(",\n"));
    let rev = if scope.revision.is_empty() {
        "default"
    } else {
        scope.revision.as_str()
    };
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": reference.name,
            "namespace": scope.namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "lateen",
                "app.kubernetes.io/part-of": "lateen",
                "istio.io/rev": rev,
            },
            "annotations": {INSTALLED_BY: owner},
        },
        "data": {OBJECTS_KEY: list},
    });
    cluster::apply_one(client, &config_map).await?;
    Ok(())
}

/// Deletes the record of `scope`.
pub async fn remove(client: &Client, scope: &InstallScope) -> Result<()> {
    cluster::delete_all(client, &[inventory_ref(scope)]).await?;
    Ok(())
}
