//! The one error type of the crate: every variant names where the problem is (file, flag, field
//! path) so the CLI can print it as is.

/// Everything that can go wrong while reading profiles and overlays or rendering manifests.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A profile name that Lateen does not ship.
    #[error("profile {name:?} is not supported{istio_note}; supported profiles: {supported}")]
    UnsupportedProfile {
        name: String,
        istio_note: &'static str,
        supported: String,
    },
    /// A document that is not YAML, or not a mapping.
    #[error("{source_name}: {message}")]
    Parse {
        source_name: String,
        message: String,
    },
    /// A field with an unknown name or a wrong type, with its path.
    #[error("{source_name}: {path}: {message}")]
    Field {
        source_name: String,
        path: String,
        message: String,
    },
    /// A `--set` flag that cannot be parsed or applied.
    #[error("--set {flag}: {message}")]
    SetFlag { flag: String, message: String },
    /// A `--config-path` that selects nothing.
    #[error("config path {path:?}: {message}")]
    ConfigPath { path: String, message: String },
    /// A setting that is valid IstioOperator but that Lateen cannot render.
    #[error("{0}")]
    Unsupported(String),
    /// A `k8s.overlays` entry that does not apply to the rendered objects.
    #[error("{component}: overlay {kind}/{name}: {message}")]
    Overlay {
        component: String,
        kind: String,
        name: String,
        message: String,
    },
    /// The API server refused or could not be reached.
    #[error("{object}: {message}")]
    Cluster { object: String, message: String },
    /// Writing YAML failed (should not happen for our own trees).
    #[error("serializing YAML: {0}")]
    Serialize(String),
}

/// Result alias of the crate.
pub type Result<T, E = InstallError> = std::result::Result<T, E>;
