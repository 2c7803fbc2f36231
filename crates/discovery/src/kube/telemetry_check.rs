//! The cluster's side of the folder source's one MeshConfig-dependent check
//! (`store/telemetry_check.rs`): a Telemetry naming a provider that `extensionProviders` does
//! not declare is refused when its watch event arrives, with the field and the name, so the
//! last accepted version stays, the refusal is logged and written to
//! `status.validationMessages` (IST0106) like any other refused object. The mesh is the one in
//! force at that moment (the `istio` ConfigMap, else lateend's own); a Telemetry refused
//! before its provider was declared is accepted again on its next change or relist.

use lateen_api::{ConfigError, MeshConfig, Resource, ResourceRef, Severity};

use super::istio::{RejectedObject, SOURCE_NAME};

/// `resource`, or its unknown-provider errors as a refusal of the object.
pub fn against_mesh(
    resource: Resource,
    generation: Option<i64>,
    mesh: &MeshConfig,
) -> Result<Resource, RejectedObject> {
    let errors: Vec<ConfigError> = lateen_api::validate::telemetry_provider_issues(&resource, mesh)
        .into_iter()
        .filter(|issue| issue.severity == Severity::Error)
        .map(|issue| ConfigError {
            severity: issue.severity,
            source_name: SOURCE_NAME.to_string(),
            document: None,
            line: None,
            resource: Some(ResourceRef {
                kind: resource.kind().to_string(),
                namespace: resource.namespace().to_string(),
                name: resource.name().to_string(),
            }),
            path: issue.path,
            message: issue.message,
        })
        .collect();
    if errors.is_empty() {
        return Ok(resource);
    }
    Err(RejectedObject {
        kind: resource.kind().to_string(),
        namespace: resource.namespace().to_string(),
        name: resource.name().to_string(),
        generation,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn telemetry(provider: &str) -> Resource {
        let text = format!(
            "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: t, namespace: default}}\nspec:\n  accessLogging:\n  - providers: [{{name: {provider}}}]\n"
        );
        let loaded = lateen_api::load(&text, "t.yaml").expect("valid Telemetry");
        loaded.resources().next().cloned().expect("one resource")
    }

    #[test]
    fn unknown_providers_are_refused_by_field_and_known_ones_pass() {
        let (mesh, _) = lateen_api::load_mesh_config(
            "extensionProviders:\n- name: logs\n  envoyFileAccessLog: {path: /dev/stdout}\n",
            "mesh.yaml",
        )
        .expect("mesh");
        assert!(against_mesh(telemetry("logs"), Some(1), &mesh).is_ok());
        assert!(against_mesh(telemetry("envoy"), Some(1), &mesh).is_ok());
        let refused = against_mesh(telemetry("no-such"), Some(4), &mesh).expect_err("refused");
        assert_eq!(refused.generation, Some(4));
        assert_eq!(
            refused.messages(),
            [
                "spec.accessLogging[0].providers[0].name: unknown provider \"no-such\": not in MeshConfig extensionProviders"
            ]
        );
    }
}
