//! Installing the mesh: built-in profiles, IstioOperator (`install.istio.io/v1alpha1`) overlays
//! and `--set` paths, and rendering of every Kubernetes object an install creates.
//!
//! Owns: profiles, overlay merging, manifest rendering, and applying/removing/verifying the
//! rendered objects in a cluster. Must not touch: data-plane code.
//!
//! Map:
//! - [`profiles`]: the shipped profiles (YAML under `profiles/`, laid over `default`).
//! - [`operator`]: the typed IstioOperator; validating a tree names the bad field's path.
//! - [`overlay`]: how one tree is merged over another (maps recursively, gateways by name).
//! - [`setflag`]: `--set path=value` and the path syntax shared with overlays patches.
//! - [`render`]: the Kubernetes objects of an install, sorted for a one-pass `kubectl apply`.
//! - [`diff`]: a line diff for `profile diff`.
//! - [`drift`]: which fields of a live object differ from the rendering (`verify-install`).
//! - [`cluster`]: server-side apply (field manager `lateen`), uninstall and verify with `kube`.
//! - [`inventory`]: the record of an install (ConfigMap `lateen-installed-manifest`).
//! - [`lifecycle`]: install with pruning of what the record lists but is no longer rendered,
//!   and uninstall of what the record lists.
//! - [`controller`]: the operator's reconcile loop over IstioOperator resources, with status.
//! - [`operator_manifests`]: what `lateen operator init` installs.
//! - [`readiness`]: whether each component is ready, and why not; waiting with a time limit.
//!
//! The layering is Istio's: profile, then each `-f` file in order, then each `--set` in order.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod controller;
pub mod diff;
pub mod drift;
mod error;
pub mod inventory;
pub mod lifecycle;
pub mod operator;
pub mod operator_manifests;
pub mod overlay;
pub mod profiles;
pub mod readiness;
pub mod render;
mod scalar;
pub mod setflag;
mod yaml;

use serde_json::Value;

pub use error::{InstallError, Result};
pub use operator::IstioOperator;
pub use render::{InstallScope, RenderedObject, install_scope, render, to_manifest};
pub use scalar::{Bool, Int, IntOrString, Num, Str};
pub use yaml::{to_yaml, to_yaml_stream};

/// One `-f` input: its name for messages and its text.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub name: String,
    pub text: String,
}

/// What the user asked for: an optional profile name (as `profile dump NAME` gives), `-f` files
/// and `--set` flags, in command-line order.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub profile: Option<String>,
    pub files: Vec<InputFile>,
    pub sets: Vec<String>,
}

/// The merged configuration, checked against the schema.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The profile the layers were laid over.
    pub profile: String,
    /// The typed document.
    pub operator: IstioOperator,
    /// The document as a tree, in schema types (what `profile dump` prints).
    pub tree: Value,
}

/// Layers profile, files and `--set` flags and validates each layer and the result.
///
/// The profile is the last `--set profile=...`, else the NAME given, else the last file's
/// `spec.profile`, else `default`.
pub fn merge_inputs(inputs: &Inputs) -> Result<Merged> {
    let mut user_layers = Vec::with_capacity(inputs.files.len());
    for file in &inputs.files {
        let tree = yaml::parse_document(&file.text, &file.name)?;
        IstioOperator::from_tree(&tree, &file.name)?;
        user_layers.push(tree);
    }
    let mut sets = Vec::with_capacity(inputs.sets.len());
    for text in &inputs.sets {
        let flag = setflag::parse_set(text).map_err(|message| InstallError::SetFlag {
            flag: text.clone(),
            message,
        })?;
        sets.push(flag);
    }
    let profile_path = [
        setflag::Segment::Key("spec".into()),
        setflag::Segment::Key("profile".into()),
    ];
    let profile = sets
        .iter()
        .rev()
        .find(|flag| flag.path == profile_path)
        .map(|flag| scalar_text(&flag.value))
        .or_else(|| inputs.profile.clone())
        .or_else(|| {
            user_layers
                .iter()
                .rev()
                .find_map(|tree| setflag::get_at(tree, &profile_path).map(scalar_text))
        })
        .unwrap_or_else(|| "default".to_owned());

    let mut tree = profiles::tree(&profile)?;
    for layer in user_layers {
        overlay::merge(&mut tree, layer);
    }
    for flag in &sets {
        setflag::set_at(
            &mut tree,
            &flag.path,
            flag.value.clone(),
            setflag::Create::Missing,
        )
        .map_err(|message| InstallError::SetFlag {
            flag: flag.text.clone(),
            message,
        })?;
        IstioOperator::from_tree(&tree, &format!("--set {}", flag.text))?;
    }
    setflag::set_at(
        &mut tree,
        &profile_path,
        Value::String(profile.clone()),
        setflag::Create::Missing,
    )
    .map_err(InstallError::Unsupported)?;
    let operator = IstioOperator::from_tree(&tree, "merged configuration")?;
    let tree = operator.to_tree()?;
    Ok(Merged {
        profile,
        operator,
        tree,
    })
}

/// The subtree of a merged document at `path` (`components.pilot`; `spec.` may be omitted).
pub fn config_path<'a>(tree: &'a Value, path: &str) -> Result<&'a Value> {
    let path_error = |message: String| InstallError::ConfigPath {
        path: path.to_owned(),
        message,
    };
    let trimmed = path.strip_prefix("spec.").unwrap_or(path);
    let mut segments = vec![setflag::Segment::Key("spec".into())];
    if !(trimmed.is_empty() || trimmed == "spec") {
        segments.extend(setflag::parse_path(trimmed).map_err(path_error)?);
    }
    setflag::get_at(tree, &segments)
        .ok_or_else(|| path_error("selects nothing in the merged configuration".into()))
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
