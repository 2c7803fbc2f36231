//! Istio resources as users write them: multi-document YAML through lateen-api's loader,
//! validation and the file analyzers (`lateend --config-dir`, `lateen analyze`), and the same
//! text read as MeshConfig and ProxyConfig.

/// YAML/JSON text → parse, validate, analyze; MeshConfig and ProxyConfig parsing.
pub fn api_yaml(data: &[u8]) {
    let text = crate::text(data);
    let parsed = lateen_api::parse(&text, "fuzz.yaml");
    let _ = lateen_api::validate_documents(&parsed.documents);
    let _ = lateen_api::analyze(&parsed.documents, "cluster.local");
    for problem in &parsed.problems {
        let _ = problem.to_string();
    }
    let _ = lateen_api::parse_mesh_config(&text, "mesh.yaml");
    let _ = lateen_api::parse_proxy_config(&text, "proxyconfig.yaml");
}
