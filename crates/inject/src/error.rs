//! The crate's error type: every variant names the field or annotation at fault.

/// Why an object could not be injected or a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// An annotation (or the value it overrides) has a value Istio would refuse.
    #[error("invalid value {value:?} for annotation {name}: {reason}")]
    Annotation {
        name: String,
        value: String,
        reason: String,
    },
    /// A field of the object has the wrong shape; `path` is like `spec.template.spec.containers[0]`.
    #[error("{path}: {reason}")]
    Field { path: String, reason: String },
    /// The input is not YAML (or JSON) at all.
    #[error("cannot parse YAML: {0}")]
    Yaml(String),
    /// One document of a multi-document input failed; names it by index, kind and name.
    #[error("document {index} ({kind} {name:?}): {message}")]
    Document {
        index: usize,
        kind: String,
        name: String,
        message: String,
    },
    /// A configuration file is unreadable or malformed.
    #[error("{file}: {reason}")]
    Config { file: String, reason: String },
}

impl InjectError {
    pub(crate) fn field(path: impl Into<String>, reason: impl Into<String>) -> Self {
        InjectError::Field {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn annotation(name: &str, value: &str, reason: impl Into<String>) -> Self {
        InjectError::Annotation {
            name: name.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
