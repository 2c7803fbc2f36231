//! Istio-compatible configuration types (`networking.istio.io`, `security.istio.io`,
//! `telemetry.istio.io`, MeshConfig):
//! parsing of multi-document YAML/JSON, dispatch on apiVersion/kind, and validation with errors
//! that name the file, the resource and the field path.
//!
//! Owns: the typed model of Istio's resources. Must not touch: I/O of any kind (files, sockets,
//! clocks); callers hand it text and a source name.
//!
//! Map:
//! - [`parse()`], [`load()`], [`parse_mesh_config()`], [`load_mesh_config()`],
//!   [`parse_proxy_config()`]: text in, typed resources (in [`Document`]s that remember source,
//!   document index and lines) out.
//! - [`Resource`]: one variant per kind, each an [`Object`]`<Spec>` (metadata + typed spec).
//! - [`networking`], [`security`], [`telemetry`], [`mesh`]: the spec types, with Istio's
//!   camelCase names.
//! - [`validate()`](validate::validate): `istioctl validate`-style checks returning every
//!   problem with its field path; [`ConfigError`] adds file, document, line and resource.
//! - [`analyze()`]: checks across resources (duplicates, undefined subsets and gateways);
//!   [`diag`]: istioctl's message codes and levels for every problem ([`analyze_messages`]).
//! - [`host`]: short-name resolution and wildcard host matching; [`scope`]: `exportTo`,
//!   gateway references, `namespace/host` entries; [`duration`]: Istio durations;
//!   [`tag_value`]: the Telemetry `tagOverrides` value expressions lateen computes.
//!
//! Decisions worth knowing:
//! - Unknown fields are errors (like `istioctl validate`); `status` is ignored.
//! - Kinds: a typo or wrong version under `networking.istio.io`/`security.istio.io` is an error;
//!   Istio kinds not modelled here (EnvoyFilter, WasmPlugin, ...) and non-Istio
//!   objects (Deployments, Services, ...) are skipped with a [`Severity::Warning`].
//! - `networking.istio.io` v1, v1beta1 and v1alpha3 (`security.istio.io` v1, v1beta1;
//!   `telemetry.istio.io` v1, v1alpha1) read into the same types; [`Resource::api_version`]
//!   keeps what was written.
//! - YAML scalars follow Kubernetes (YAML 1.1 booleans such as `yes`/`on` are booleans); nesting
//!   deeper than [`parse::MAX_NESTING_DEPTH`] is refused, as is a file of more than
//!   [`parse::MAX_DOCUMENTS`] documents.
//! - Durations accept protobuf (`"1.5s"`) and Go (`"1m30s"`, `"100ms"`) forms, see [`duration`];
//!   validation then requires >= 1ms with millisecond precision, as Istio does.
//! - Route weights are relative (Istio): each >= 0, and not all 0 when there are several.
//! - Telemetry `filter.expression` is checked with lateen-cel's parser (the grammar lateen-proxy
//!   evaluates with), the one Lateen crate this one depends on.
//!
//! ```
//! let yaml = "apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: reviews}
//! spec:
//!   hosts: [reviews]
//!   http:
//!   - route:
//!     - destination: {host: reviews, subset: v1}
//!       weight: 90
//!     - destination: {host: reviews, subset: v2}
//!       weight: -10
//! ";
//! let errors = lateen_api::load(yaml, "reviews.yaml").unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "reviews.yaml:11: document 1: VirtualService default/reviews: \
//!      spec.http[0].route[1].weight: weight -10 must not be negative"
//! );
//! let fixed = yaml.replace("-10", "10");
//! let loaded = lateen_api::load(&fixed, "reviews.yaml").unwrap();
//! let vs = loaded.documents[0].resource.as_virtual_service().unwrap();
//! assert_eq!(vs.spec.http[0].route[1].weight, 10);
//! ```
#![forbid(unsafe_code)]

pub mod analyze;
pub mod diag;
pub mod duration;
pub mod error;
pub mod host;
pub mod mesh;
pub mod mesh_load;
pub mod mesh_providers;
pub mod meta;
pub mod networking;
mod node;
pub mod parse;
pub mod resource;
pub mod scope;
pub mod security;
pub mod tag_value;
pub mod telemetry;
pub mod validate;

pub use analyze::{analyze, analyze_messages};
pub use error::{
    ConfigError, ConfigErrors, FieldIssue, FieldPath, PathSegment, ResourceRef, Severity,
};
pub use mesh::MeshConfig;
pub use mesh_load::{load_mesh_config, parse_mesh_config, parse_proxy_config};
pub use meta::{ConfigKey, DEFAULT_NAMESPACE, Kind, Object, ObjectMeta};
pub use parse::{Document, Loaded, Parsed, load, parse, parse_in_namespace, validate_documents};
pub use resource::Resource;
