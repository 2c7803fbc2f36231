//! The one check of a file that needs MeshConfig: a Telemetry naming a provider that
//! `extensionProviders` does not declare is refused (the file's last good version stays), with
//! the field and the name, so a typo is seen instead of silently logging nothing.

use lateen_api::{ConfigErrors, Loaded, Severity};

/// `loaded`, or every unknown-provider error of its Telemetry resources.
pub fn against_mesh(loaded: Loaded, mesh: &lateen_api::MeshConfig) -> Result<Loaded, ConfigErrors> {
    let errors: Vec<_> = loaded
        .documents
        .iter()
        .flat_map(|doc| {
            lateen_api::validate::telemetry_provider_issues(&doc.resource, mesh)
                .into_iter()
                .map(|issue| doc.locate(issue))
        })
        .filter(|e| e.severity == Severity::Error)
        .collect();
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(ConfigErrors { errors })
    }
}
