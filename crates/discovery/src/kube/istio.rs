//! Istio's custom resources from the cluster, read exactly as the folder source reads a file:
//! the object (as JSON, which is YAML) goes through `lateen_api::load`, so the parser, the
//! validation and the error text are the same; only the source name differs
//! ([`SOURCE_NAME`]) and lines (of a JSON rendering nobody wrote) are left out.

use kube::api::{ApiResource, DynamicObject};
use lateen_api::{ConfigError, Kind, Resource, Severity};

/// The source name in the error messages of cluster objects.
pub const SOURCE_NAME: &str = "kubernetes";

/// The API resource lateend watches for `kind`: every Istio kind lateen-api parses
/// ([`Kind::ALL`]), at `v1` (served by Istio's CRDs since 1.22).
pub fn api_resource(kind: Kind) -> ApiResource {
    let group = kind.group();
    ApiResource {
        group: group.to_string(),
        version: "v1".to_string(),
        api_version: format!("{group}/v1"),
        kind: kind.as_str().to_string(),
        plural: kind.plural().to_string(),
    }
}

/// An object the cluster holds but lateend refused, with why (what Istio writes into
/// `status.validationMessages`).
#[derive(Clone, Debug, PartialEq)]
pub struct RejectedObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `metadata.generation` of the refused version (`status.observedGeneration`).
    pub generation: Option<i64>,
    /// Every error, as the folder source would print it (`kubernetes: VirtualService ns/name:
    /// spec.http[0]...: reason`).
    pub errors: Vec<ConfigError>,
}

impl RejectedObject {
    /// One line per error without the source and resource: `field.path: reason`.
    pub fn messages(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|e| {
                if e.path.is_root() {
                    e.message.clone()
                } else {
                    format!("{}: {}", e.path, e.message)
                }
            })
            .collect()
    }
}

/// Parses and validates one object; `Ok(None)` when `lateen-api` skips it (a kind it does
/// not model).
pub fn convert(obj: &DynamicObject, kind: &str) -> Result<Option<Resource>, RejectedObject> {
    let mut obj = obj.clone();
    // Server bookkeeping nobody validates; it is the largest part of most objects.
    obj.metadata.managed_fields = None;
    let namespace = obj.metadata.namespace.clone().unwrap_or_default();
    let name = obj.metadata.name.clone().unwrap_or_default();
    let rejected = |errors: Vec<ConfigError>| RejectedObject {
        kind: kind.to_string(),
        namespace: namespace.clone(),
        name: name.clone(),
        generation: obj.metadata.generation,
        errors,
    };
    let text = match serde_json::to_string(&obj) {
        Ok(t) => t,
        Err(e) => {
            return Err(rejected(vec![ConfigError {
                severity: Severity::Error,
                source_name: SOURCE_NAME.to_string(),
                document: None,
                line: None,
                resource: None,
                path: lateen_api::FieldPath::root(),
                message: format!("cannot encode the object: {e}"),
            }]));
        }
    };
    match lateen_api::load(&text, SOURCE_NAME) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                tracing::warn!("{}", unlocated(w.clone()));
            }
            let found = loaded
                .resources()
                .find(|r| Kind::from_kind_str(kind) == Some(r.kind()))
                .cloned();
            Ok(found)
        }
        Err(errors) => Err(rejected(
            errors
                .errors
                .into_iter()
                .filter(|e| e.severity == Severity::Error)
                .map(unlocated)
                .collect(),
        )),
    }
}

/// The error without document index and line: a cluster object is one document, and the
/// lines would be those of lateend's own JSON rendering.
fn unlocated(mut e: ConfigError) -> ConfigError {
    e.document = None;
    e.line = None;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(spec: serde_json::Value) -> DynamicObject {
        let ar = api_resource(Kind::VirtualService);
        let mut obj = DynamicObject::new("reviews", &ar)
            .within("default")
            .data(serde_json::json!({ "spec": spec, "status": {"validationMessages": []} }));
        obj.metadata.resource_version = Some("42".into());
        obj.metadata.generation = Some(3);
        obj.metadata.uid = Some("0a1b".into());
        obj
    }

    #[test]
    fn valid_object_becomes_a_resource() {
        let obj = object(serde_json::json!({
            "hosts": ["reviews"],
            "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]
        }));
        let resource = convert(&obj, "VirtualService")
            .unwrap_or_else(|e| panic!("{:?}", e.errors))
            .unwrap_or_else(|| panic!("skipped"));
        let vs = resource
            .as_virtual_service()
            .unwrap_or_else(|| panic!("not a VirtualService"));
        assert_eq!(vs.namespace(), "default");
        assert_eq!(vs.spec.hosts, ["reviews"]);
    }

    #[test]
    fn invalid_object_is_rejected_with_the_folder_message() {
        let spec = serde_json::json!({
            "hosts": ["reviews"],
            "http": [{"route": [{"destination": {"host": "reviews"}, "weight": -5}]}]
        });
        let err = convert(&object(spec), "VirtualService").err();
        let err = err.unwrap_or_else(|| panic!("accepted"));
        assert_eq!(err.generation, Some(3));
        assert_eq!(
            err.errors[0].to_string(),
            "kubernetes: VirtualService default/reviews: spec.http[0].route[0].weight: weight -5 must not be negative"
        );
        assert_eq!(
            err.messages(),
            ["spec.http[0].route[0].weight: weight -5 must not be negative"]
        );
    }
}
