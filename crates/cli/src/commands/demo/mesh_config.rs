//! `lateen demo --set meshConfig.KEY=VALUE`: the mesh config the demo's lateend reads
//! (DIR/config/mesh.yaml), with the same paths as `istioctl install --set meshConfig.*`
//! (`meshConfig.accessLogFile=/dev/stdout`, `meshConfig.accessLogEncoding=JSON`). The result
//! is checked with lateen-api's MeshConfig rules before it is written, so a typo is refused
//! with the field named instead of leaving the demo's lateend without a config.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Map, Value};

/// The file lateend reads beside the resources of its config folder.
const MESH_FILE: &str = "mesh.yaml";
const PREFIX: &str = "meshConfig.";

/// Writes DIR/config/mesh.yaml from `sets`; with none, removes a mesh.yaml an earlier run's
/// `--set` wrote (marked by its first line) and leaves a user's own file alone.
pub fn write(config_dir: &Path, sets: &[String]) -> anyhow::Result<()> {
    let path = config_dir.join(MESH_FILE);
    if sets.is_empty() {
        let ours = std::fs::read_to_string(&path).is_ok_and(|t| t.starts_with(MARKER));
        if ours {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        return Ok(());
    }
    let mut root = Map::new();
    for set in sets {
        apply(&mut root, set)?;
    }
    let json = Value::Object(root);
    let text = format!(
        "{MARKER}\n{}\n",
        serde_json::to_string_pretty(&json).context("rendering the mesh config")?
    );
    if let Err(errors) = lateen_api::load_mesh_config(&text, "--set meshConfig") {
        bail!("{errors}");
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// First line of a mesh.yaml the demo wrote from `--set`.
const MARKER: &str = "# written by `lateen demo --set meshConfig.*`";

/// `meshConfig.a.b=value`: nested keys; the value as JSON when it parses (numbers, booleans,
/// lists), else as a string.
fn apply(root: &mut Map<String, Value>, set: &str) -> anyhow::Result<()> {
    let Some((path, raw)) = set.split_once('=') else {
        bail!("--set {set}: expected meshConfig.KEY=VALUE");
    };
    let Some(path) = path.strip_prefix(PREFIX) else {
        bail!("--set {set}: the demo takes meshConfig.* paths only");
    };
    let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
    let keys: Vec<&str> = path.split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        bail!("--set {set}: empty key in the path");
    }
    let mut node = root;
    for key in &keys[..keys.len() - 1] {
        let entry = node
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(map) = entry else {
            bail!("--set {set}: {key} is not an object");
        };
        node = map;
    }
    node.insert(keys[keys.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_nest_and_bad_fields_are_refused() {
        let dir = std::env::temp_dir().join(format!("lateen-demo-mesh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        write(
            &dir,
            &[
                "meshConfig.accessLogFile=/dev/stdout".to_string(),
                "meshConfig.accessLogEncoding=JSON".to_string(),
                "meshConfig.defaultConfig.concurrency=2".to_string(),
            ],
        )
        .expect("valid");
        let text = std::fs::read_to_string(dir.join(MESH_FILE)).expect("written");
        let (mesh, _) = lateen_api::load_mesh_config(&text, "mesh.yaml").expect("loads");
        assert_eq!(mesh.access_log_file.as_deref(), Some("/dev/stdout"));
        let err =
            write(&dir, &["meshConfig.accessLogFiel=/dev/stdout".to_string()]).expect_err("typo");
        assert!(err.to_string().contains("accessLogFiel"), "{err}");
        write(&dir, &[]).expect("removed");
        assert!(!dir.join(MESH_FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
