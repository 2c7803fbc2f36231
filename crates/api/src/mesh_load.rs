//! Reading the MeshConfig file and ProxyConfig documents (no apiVersion/kind: the document is
//! the config itself), with the same located errors as resources.

use serde::de::DeserializeOwned;

use crate::error::{ConfigError, ConfigErrors, FieldPath, ResourceRef, Severity};
use crate::mesh::{MeshConfig, ProxyConfig};
use crate::node::Node;
use crate::parse::{decode_typed, read_nodes};

/// Reads a MeshConfig file (the `mesh` document: no apiVersion/kind). Empty text gives the
/// defaults. Fails on YAML errors, several documents, or unknown/mistyped fields.
pub fn parse_mesh_config(text: &str, source_name: &str) -> Result<MeshConfig, ConfigErrors> {
    let (mesh, _node) = parse_mesh_with_node(text, source_name)?;
    Ok(mesh)
}

/// [`parse_mesh_config`] plus validation: `Ok` with the warnings when there is no error.
pub fn load_mesh_config(
    text: &str,
    source_name: &str,
) -> Result<(MeshConfig, Vec<ConfigError>), ConfigErrors> {
    let (mesh, node) = parse_mesh_with_node(text, source_name)?;
    let problems: Vec<ConfigError> = crate::validate::validate_mesh_config(&mesh)
        .into_iter()
        .map(|issue| ConfigError {
            severity: issue.severity,
            source_name: source_name.to_string(),
            document: None,
            line: node.as_ref().and_then(|n| n.line_of(&issue.path)),
            resource: Some(mesh_ref()),
            path: issue.path,
            message: issue.message,
        })
        .collect();
    if problems.iter().any(|p| p.severity == Severity::Error) {
        return Err(ConfigErrors { errors: problems });
    }
    Ok((mesh, problems))
}

fn mesh_ref() -> ResourceRef {
    ResourceRef {
        kind: "MeshConfig".to_string(),
        namespace: String::new(),
        name: "mesh".to_string(),
    }
}

fn proxy_config_ref() -> ResourceRef {
    ResourceRef {
        kind: "ProxyConfig".to_string(),
        namespace: String::new(),
        name: "proxy".to_string(),
    }
}

/// Reads a ProxyConfig document, e.g. the value of the `proxy.istio.io/config` pod annotation
/// or a `defaultConfig` block. Empty text gives the defaults.
pub fn parse_proxy_config(text: &str, source_name: &str) -> Result<ProxyConfig, ConfigErrors> {
    let (config, _node) = parse_single(text, source_name, proxy_config_ref)?;
    Ok(config)
}

fn parse_mesh_with_node(
    text: &str,
    source_name: &str,
) -> Result<(MeshConfig, Option<Node>), ConfigErrors> {
    parse_single(text, source_name, mesh_ref)
}

/// One document decoded into `T` (defaults when the text is empty).
fn parse_single<T: DeserializeOwned + Default>(
    text: &str,
    source_name: &str,
    what: fn() -> ResourceRef,
) -> Result<(T, Option<Node>), ConfigErrors> {
    let one = |e: ConfigError| ConfigErrors { errors: vec![e] };
    let mut nodes = read_nodes(text, source_name).map_err(one)?;
    if nodes.len() > 1 {
        return Err(one(ConfigError {
            severity: Severity::Error,
            source_name: source_name.to_string(),
            document: Some(1),
            line: (nodes[1].line > 0).then_some(nodes[1].line),
            resource: Some(what()),
            path: FieldPath::root(),
            message: "expected a single YAML document".to_string(),
        }));
    }
    let Some(node) = nodes.pop() else {
        return Ok((T::default(), None));
    };
    let mesh = decode_typed(&node.to_json()).map_err(|(path, message)| {
        one(ConfigError {
            severity: Severity::Error,
            source_name: source_name.to_string(),
            document: None,
            line: node.line_of(&path),
            resource: Some(what()),
            path,
            message,
        })
    })?;
    Ok((mesh, Some(node)))
}
