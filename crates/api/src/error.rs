//! Errors and warnings: every problem names the source (file name as the caller gave it), the
//! document, the line when known, the resource (kind namespace/name) and the field path.

use std::fmt;

/// One step of a field path: a struct field or map key, or a list index.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// A field name or a map key (`spec`, `http`, `end-user`).
    Field(String),
    /// A list index (`[0]`).
    Index(usize),
}

/// A field path such as `spec.http[0].route[1].weight`, in Istio's camelCase field names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FieldPath {
    segments: Vec<PathSegment>,
}

impl FieldPath {
    /// The empty path (the document itself).
    pub fn root() -> Self {
        Self::default()
    }

    /// Builds a path from dotted text with `[n]` indexes, e.g. `spec.http[0].route`.
    /// Meant for tests and callers that write paths by hand; keys containing dots cannot be
    /// expressed this way.
    pub fn parse(text: &str) -> Self {
        let mut path = Self::root();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !name.is_empty() {
                path.segments.push(PathSegment::Field(name.to_string()));
            }
            while let Some(close) = rest.find(']') {
                if let Ok(index) = rest[1..close].parse() {
                    path.segments.push(PathSegment::Index(index));
                }
                rest = &rest[close + 1..];
            }
        }
        path
    }

    /// This path extended by a field name or map key.
    pub fn field(&self, name: &str) -> Self {
        let mut next = self.clone();
        next.segments.push(PathSegment::Field(name.to_string()));
        next
    }

    /// This path extended by a list index.
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.segments.push(PathSegment::Index(index));
        next
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[PathSegment] {
        &self.segments
    }

    /// True for the root path.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    pub(crate) fn from_segments(segments: Vec<PathSegment>) -> Self {
        Self { segments }
    }
}

/// Map keys that would read ambiguously after a dot are quoted: `labels["app.kubernetes.io/name"]`.
fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for segment in &self.segments {
            match segment {
                PathSegment::Field(name) if plain_key(name) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(name)?;
                }
                PathSegment::Field(name) => write!(f, "[{name:?}]")?,
                PathSegment::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

/// How bad a problem is. Errors make the config invalid; warnings are reported and the config
/// is still used (Istio's `istioctl validate` prints warnings the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A problem found by validation, relative to one resource: a field path and a reason.
/// [`crate::parse::Document::locate`] / [`crate::load`] attach the source, document and line.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldIssue {
    pub severity: Severity,
    pub path: FieldPath,
    pub message: String,
}

impl FieldIssue {
    pub fn error(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            path,
            message: message.into(),
        }
    }

    pub fn warning(path: FieldPath, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            path,
            message: message.into(),
        }
    }
}

/// Which resource a problem belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "{} (unnamed)", self.kind)
        } else if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// A located problem: source, document, line, resource, field path and reason.
///
/// Display form: `bookinfo.yaml:14: document 2: VirtualService default/reviews:
/// spec.http[0].route[1].weight: weight -5 must not be negative`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct ConfigError {
    pub severity: Severity,
    /// The source name the caller passed (usually a file name).
    pub source_name: String,
    /// Index of the document in the source among its non-empty documents, from 0.
    /// `None` for problems that concern the whole text (e.g. YAML syntax).
    pub document: Option<usize>,
    /// 1-based line, when the YAML parser could tell where the field is.
    pub line: Option<u64>,
    pub resource: Option<ResourceRef>,
    pub path: FieldPath,
    pub message: String,
}

impl ConfigError {
    /// The problem without its place in a source: `VirtualService default/reviews:
    /// spec.http[0].route[1].weight: weight -5 must not be negative`. What an API server's
    /// admission webhook reports, where there is no file, line or document.
    pub fn object_message(&self) -> String {
        ObjectMessage(self).to_string()
    }
}

/// Resource, field path and reason of a [`ConfigError`].
struct ObjectMessage<'a>(&'a ConfigError);

impl fmt::Display for ObjectMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(resource) = &self.0.resource {
            write!(f, "{resource}: ")?;
        }
        if !self.0.path.is_root() {
            write!(f, "{}: ", self.0.path)?;
        }
        f.write_str(&self.0.message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source_name)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if let Some(doc) = self.document {
            write!(f, "document {}: ", doc + 1)?;
        }
        write!(f, "{}", ObjectMessage(self))
    }
}

/// All problems found in one source. Returned as the error of [`crate::load`] and friends.
#[derive(Clone, Debug, Default, PartialEq, thiserror::Error)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_display_and_parse_round_trip() {
        let p = FieldPath::root()
            .field("spec")
            .field("http")
            .index(0)
            .field("route")
            .index(1)
            .field("weight");
        assert_eq!(p.to_string(), "spec.http[0].route[1].weight");
        assert_eq!(FieldPath::parse("spec.http[0].route[1].weight"), p);
        let labels = FieldPath::root()
            .field("labels")
            .field("app.kubernetes.io/name");
        assert_eq!(labels.to_string(), "labels[\"app.kubernetes.io/name\"]");
    }
}
