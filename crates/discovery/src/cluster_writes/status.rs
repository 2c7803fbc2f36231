//! Istio's `status` on the Istio resources lateend rejects, as istiod's analysis writes it:
//!
//! ```yaml
//! status:
//!   observedGeneration: "3"
//!   validationMessages:
//!   - type: {code: IST0106, name: SchemaValidationError}
//!     level: ERROR
//!     documentationUrl: https://istio.io/latest/docs/reference/config/analysis/ist0106/
//! ```
//!
//! (`istio.meta.v1alpha1.IstioStatus` with `analysis.v1alpha1.AnalysisMessageBase` entries, as
//! protobuf JSON writes them: enum names, int64 as a string.) The message itself is not part
//! of Istio's status; lateend logs it, and `/validate` and the folder source report it.
//! The configuration source hands the whole set of rejected objects over a watch channel
//! (see [`super::ClusterWrites::rejected_objects`]); this writer merge-patches the `status`
//! subresource of what entered the set or changed generation, and clears `validationMessages`
//! on what left it. Status written by an earlier lateend process on an object that is valid
//! now is not cleared (the writer only knows what it saw rejected).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use tokio::sync::watch;

/// Istio's message for a resource that fails schema validation.
pub const SCHEMA_VALIDATION_ERROR: (&str, &str) = ("IST0106", "SchemaValidationError");

/// An Istio object the configuration source rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedObject {
    /// API group and version, e.g. `networking.istio.io`, `v1`.
    pub group: String,
    pub version: String,
    /// Kind and plural resource name, e.g. `VirtualService`, `virtualservices`.
    pub kind: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
    /// `metadata.generation` of the rejected version.
    pub generation: Option<i64>,
    /// Why it was rejected (the same text the folder source and `/validate` give).
    pub message: String,
}

type Key = (String, String, String, String);

impl RejectedObject {
    fn key(&self) -> Key {
        (
            self.group.clone(),
            self.plural.clone(),
            self.namespace.clone(),
            self.name.clone(),
        )
    }

    fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk(&self.group, &self.version, &self.kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, &self.plural);
        Api::namespaced_with(client.clone(), &self.namespace, &resource)
    }
}

/// The merge patch that marks `object` rejected.
pub fn rejected_status(object: &RejectedObject) -> Value {
    let (code, name) = SCHEMA_VALIDATION_ERROR;
    let mut status = json!({
        "validationMessages": [{
            "type": {"code": code, "name": name},
            "level": "ERROR",
            "documentationUrl": format!(
                "https://istio.io/latest/docs/reference/config/analysis/{}/",
                code.to_ascii_lowercase()
            ),
        }],
    });
    if let Some(generation) = object.generation {
        status["observedGeneration"] = json!(generation.to_string());
    }
    json!({"status": status})
}

/// The merge patch that removes the validation messages again.
pub fn cleared_status() -> Value {
    json!({"status": {"validationMessages": null}})
}

/// Writes status for the rejected set until cancelled (runs while this replica leads).
pub async fn run(client: kube::Client, mut rejected: watch::Receiver<Arc<Vec<RejectedObject>>>) {
    // What this writer has marked, by object, as it marked it.
    let mut written: HashMap<Key, RejectedObject> = HashMap::new();
    loop {
        let current = rejected.borrow_and_update().clone();
        let complete = sync(&client, &current, &mut written).await;
        let retry = if complete {
            Duration::MAX
        } else {
            Duration::from_secs(2)
        };
        tokio::select! {
            changed = rejected.changed() => if changed.is_err() { return; },
            () = tokio::time::sleep(retry) => {}
        }
    }
}

/// One pass; false when a write failed (the pass is repeated).
async fn sync(
    client: &kube::Client,
    current: &[RejectedObject],
    written: &mut HashMap<Key, RejectedObject>,
) -> bool {
    let mut complete = true;
    let params = PatchParams::default();
    for object in current {
        let key = object.key();
        if written
            .get(&key)
            .is_some_and(|w| w.generation == object.generation)
        {
            continue;
        }
        match object
            .api(client)
            .patch_status(
                &object.name,
                &params,
                &Patch::Merge(rejected_status(object)),
            )
            .await
        {
            Ok(_) => {
                tracing::info!(kind = %object.kind, namespace = %object.namespace, name = %object.name, reason = %object.message, "wrote status.validationMessages (IST0106)");
                written.insert(key, object.clone());
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::warn!(kind = %object.kind, namespace = %object.namespace, name = %object.name, error = %e, "could not write status");
                complete = false;
            }
        }
    }
    let still: std::collections::HashSet<Key> = current.iter().map(RejectedObject::key).collect();
    let gone: Vec<RejectedObject> = written
        .iter()
        .filter(|(k, _)| !still.contains(*k))
        .map(|(_, o)| o.clone())
        .collect();
    for object in gone {
        let key = object.key();
        match object
            .api(client)
            .patch_status(&object.name, &params, &Patch::Merge(cleared_status()))
            .await
        {
            Ok(_) => {
                written.remove(&key);
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                written.remove(&key);
            }
            Err(e) => {
                tracing::warn!(namespace = %object.namespace, name = %object.name, error = %e, "could not clear status");
                complete = false;
            }
        }
    }
    complete
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istios_status_shape() {
        let object = RejectedObject {
            group: "networking.istio.io".into(),
            version: "v1".into(),
            kind: "VirtualService".into(),
            plural: "virtualservices".into(),
            namespace: "default".into(),
            name: "reviews".into(),
            generation: Some(3),
            message: "spec.http[0].route: required".into(),
        };
        assert_eq!(
            rejected_status(&object),
            json!({"status": {
                "observedGeneration": "3",
                "validationMessages": [{
                    "type": {"code": "IST0106", "name": "SchemaValidationError"},
                    "level": "ERROR",
                    "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0106/",
                }],
            }})
        );
        assert_eq!(
            cleared_status(),
            json!({"status": {"validationMessages": null}})
        );
    }
}
