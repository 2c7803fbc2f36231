//! The built-in installation profiles, shipped inside the binary.
//!
//! As in Istio, every profile is laid over `default`; the profile files say only what differs.

use serde_json::Value;

use crate::error::{InstallError, Result};
use crate::overlay;

/// Profiles Lateen ships, in the order `profile list` shows them.
pub const SUPPORTED: &[&str] = &["default", "demo", "empty", "minimal", "preview", "remote"];

/// Istio profiles Lateen knows of but does not ship (ambient and platform variants).
const ISTIO_ONLY: &[&str] = &["ambient", "openshift", "openshift-ambient", "stable"];

/// Placeholder in the profile files for the image tag of this build.
const VERSION_PLACEHOLDER: &str = "__LATEEN_VERSION__";

/// The YAML text of a built-in profile as shipped (before laying it over `default`).
pub fn source(name: &str) -> Result<&'static str> {
    match name {
        "default" => Ok(include_str!("../profiles/default.yaml")),
        "demo" => Ok(include_str!("../profiles/demo.yaml")),
        "empty" => Ok(include_str!("../profiles/empty.yaml")),
        "minimal" => Ok(include_str!("../profiles/minimal.yaml")),
        "preview" => Ok(include_str!("../profiles/preview.yaml")),
        "remote" => Ok(include_str!("../profiles/remote.yaml")),
        _ => Err(InstallError::UnsupportedProfile {
            name: name.to_owned(),
            istio_note: if ISTIO_ONLY.contains(&name) {
                " (it is an Istio profile Lateen does not provide)"
            } else {
                ""
            },
            supported: SUPPORTED.join(", "),
        }),
    }
}

/// The full tree of a profile: `default` with the named profile laid over it.
pub fn tree(name: &str) -> Result<Value> {
    let named = source(name)?;
    let mut base = parse(name, source("default")?)?;
    if name != "default" {
        overlay::merge(&mut base, parse(name, named)?);
    }
    Ok(base)
}

fn parse(name: &str, text: &str) -> Result<Value> {
    let text = text.replace(VERSION_PLACEHOLDER, env!("CARGO_PKG_VERSION"));
    crate::yaml::parse_document(&text, &format!("built-in profile {name:?}"))
}
