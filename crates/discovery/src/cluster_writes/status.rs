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
//! The cluster source's refused objects ([`crate::kube::ClusterState::rejected`]) arrive as
//! whole sets over a watch channel (see [`super::ClusterWrites::rejected_objects`]); this writer merge-patches the `status`
//! subresource of what entered the set or changed generation, and clears `validationMessages`
//! on what left it. Status written by an earlier lateend process on an object that is valid
//! now is not cleared (the writer only knows what it saw rejected).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::kube::RejectedObject;
use crate::kube::istio::api_resource;

/// Istio's message for a resource that fails schema validation.
pub const SCHEMA_VALIDATION_ERROR: (&str, &str) = ("IST0106", "SchemaValidationError");

type Key = (String, String, String);

fn key(object: &RejectedObject) -> Key {
    (
        object.kind.clone(),
        object.namespace.clone(),
        object.name.clone(),
    )
}

/// The API of `object`'s kind (one of the Istio kinds the cluster source reads).
fn api(client: &kube::Client, object: &RejectedObject) -> Option<Api<DynamicObject>> {
    let kind = lateen_api::Kind::from_kind_str(&object.kind)?;
    Some(Api::namespaced_with(
        client.clone(),
        &object.namespace,
        &api_resource(kind),
    ))
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
        let key = key(object);
        let Some(api) = api(client, object) else {
            continue;
        };
        if written
            .get(&key)
            .is_some_and(|w| w.generation == object.generation)
        {
            continue;
        }
        match api
            .patch_status(
                &object.name,
                &params,
                &Patch::Merge(rejected_status(object)),
            )
            .await
        {
            Ok(_) => {
                tracing::info!(kind = %object.kind, namespace = %object.namespace, name = %object.name, reason = %object.messages().join("; "), "wrote status.validationMessages (IST0106)");
                written.insert(key, object.clone());
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                tracing::warn!(kind = %object.kind, namespace = %object.namespace, name = %object.name, error = %e, "could not write status");
                complete = false;
            }
        }
    }
    let still: std::collections::HashSet<Key> = current.iter().map(key).collect();
    let gone: Vec<RejectedObject> = written
        .iter()
        .filter(|(k, _)| !still.contains(*k))
        .map(|(_, o)| o.clone())
        .collect();
    for object in gone {
        let key = key(&object);
        let Some(api) = api(client, &object) else {
            written.remove(&key);
            continue;
        };
        match api
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
            kind: "VirtualService".into(),
            namespace: "default".into(),
            name: "reviews".into(),
            generation: Some(3),
            errors: vec![],
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
