//! Istio-compatible configuration types (`networking.istio.io`, `security.istio.io`, MeshConfig):
//! parsing of multi-document YAML/JSON, dispatch on apiVersion/kind, and validation with errors
//! that name the file, the resource and the field path.
//!
//! Owns: the typed model of Istio's resources. Must not touch: I/O of any kind (files, sockets,
//! clocks); callers hand it text and a source name.
//!
//! Map:
//! - [`parse()`], [`load()`], [`parse_mesh_config()`], [`load_mesh_config()`]: text in, typed
//!   resources (in [`Document`]s that remember source, document index and lines) out.
//! - [`Resource`]: one variant per kind, each an [`Object`]`<Spec>` (metadata + typed spec).
//! - [`networking`], [`security`], [`mesh`]: the spec types, with Istio's camelCase names.
//! - [`validate()`](validate::validate): `istioctl validate`-style checks returning every
//!   problem with its field path; [`ConfigError`] adds file, document, line and resource.
//! - [`analyze()`]: checks across resources (duplicates, undefined subsets and gateways).
//! - [`host`]: short-name resolution and wildcard host matching; [`scope`]: `exportTo`,
//!   gateway references, `namespace/host` entries; [`duration`]: Istio durations.
#![forbid(unsafe_code)]

pub mod analyze;
pub mod duration;
pub mod error;
pub mod host;
pub mod mesh;
pub mod mesh_load;
pub mod meta;
pub mod networking;
mod node;
pub mod parse;
pub mod resource;
pub mod scope;
pub mod security;
pub mod validate;

pub use analyze::analyze;
pub use error::{
    ConfigError, ConfigErrors, FieldIssue, FieldPath, PathSegment, ResourceRef, Severity,
};
pub use mesh::MeshConfig;
pub use mesh_load::{load_mesh_config, parse_mesh_config, parse_proxy_config};
pub use meta::{ConfigKey, DEFAULT_NAMESPACE, Kind, Object, ObjectMeta};
pub use parse::{Document, Loaded, Parsed, load, parse, validate_documents};
pub use resource::Resource;
