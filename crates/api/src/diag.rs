//! `istioctl analyze`'s vocabulary: message types (code, name, level) from Istio's
//! `pkg/config/analysis/msg/messages.yaml`, and the sorting of lateen's problems into them, so
//! `lateen analyze` prints `Error [IST0101] (VirtualService default/reviews vs.yaml:11)
//! Referenced host+subset in destinationrule not found: "reviews+v1"` as istioctl does.
//!
//! Lateen-only notes (a field accepted but not acted on yet, a kind lateen does not model, a
//! resource defined twice in one file, a file replacing another's resource) have codes of
//! their own, `LTN....`, so they never pass for one of Istio's and can be suppressed the same
//! way.

use std::fmt;

use crate::error::{ConfigError, Severity};

/// Istio's message levels, worst first in its order (`Error` > `Warning` > `Info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    /// istioctl's `--failure-threshold`/`--output-threshold` values, any case.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "INFO" => Some(Level::Info),
            "WARNING" => Some(Level::Warning),
            "ERROR" => Some(Level::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "Info",
            Level::Warning => "Warning",
            Level::Error => "Error",
        })
    }
}

/// A kind of message: code, name and level.
#[derive(Debug, PartialEq, Eq)]
pub struct MessageType {
    pub code: &'static str,
    pub name: &'static str,
    pub level: Level,
}

impl MessageType {
    /// True for Istio's own codes (`IST....`), which have a page on istio.io.
    pub fn is_istio(&self) -> bool {
        self.code.starts_with("IST")
    }
}

const fn message_type(code: &'static str, name: &'static str, level: Level) -> MessageType {
    MessageType { code, name, level }
}

pub const REFERENCED_RESOURCE_NOT_FOUND: MessageType =
    message_type("IST0101", "ReferencedResourceNotFound", Level::Error);
pub const CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS: MessageType = message_type(
    "IST0109",
    "ConflictingMeshGatewayVirtualServiceHosts",
    Level::Error,
);
pub const SCHEMA_VALIDATION_ERROR: MessageType =
    message_type("IST0106", "SchemaValidationError", Level::Error);
pub const SCHEMA_WARNING: MessageType = message_type("IST0133", "SchemaWarning", Level::Warning);
pub const VIRTUAL_SERVICE_UNREACHABLE_RULE: MessageType =
    message_type("IST0130", "VirtualServiceUnreachableRule", Level::Warning);
pub const VIRTUAL_SERVICE_INEFFECTIVE_MATCH: MessageType =
    message_type("IST0131", "VirtualServiceIneffectiveMatch", Level::Info);
pub const NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL: MessageType = message_type(
    "IST0128",
    "NoServerCertificateVerificationDestinationLevel",
    Level::Warning,
);
pub const NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL: MessageType = message_type(
    "IST0129",
    "NoServerCertificateVerificationPortLevel",
    Level::Warning,
);
pub const VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY: MessageType = message_type(
    "IST0132",
    "VirtualServiceHostNotFoundInGateway",
    Level::Warning,
);
pub const GATEWAY_DUPLICATE_CERTIFICATE: MessageType =
    message_type("IST0138", "GatewayDuplicateCertificate", Level::Warning);
pub const CONFLICTING_SERVICE_ENTRY_PROTOCOL: MessageType =
    message_type("IST0177", "ConflictingServiceEntryProtocol", Level::Warning);
pub const REFERENCED_INTERNAL_GATEWAY: MessageType =
    message_type("IST0165", "ReferencedInternalGateway", Level::Warning);
pub const NOT_ACTED_ON: MessageType = message_type("LTN0001", "NotActedOnByLateen", Level::Info);
pub const UNSUPPORTED_KIND: MessageType =
    message_type("LTN0002", "KindNotSupportedByLateen", Level::Info);
pub const DUPLICATE_RESOURCE: MessageType =
    message_type("LTN0003", "ResourceDefinedTwice", Level::Error);
pub const RESOURCE_REPLACED: MessageType = message_type("LTN0004", "ResourceReplaced", Level::Info);

/// Every message type lateen can report.
pub const ALL: &[&MessageType] = &[
    &REFERENCED_RESOURCE_NOT_FOUND,
    &CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
    &SCHEMA_VALIDATION_ERROR,
    &SCHEMA_WARNING,
    &VIRTUAL_SERVICE_UNREACHABLE_RULE,
    &VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
    &NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
    &NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
    &VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
    &GATEWAY_DUPLICATE_CERTIFICATE,
    &CONFLICTING_SERVICE_ENTRY_PROTOCOL,
    &REFERENCED_INTERNAL_GATEWAY,
    &NOT_ACTED_ON,
    &UNSUPPORTED_KIND,
    &DUPLICATE_RESOURCE,
    &RESOURCE_REPLACED,
];

/// One message: its type and the located problem (resource, file, line, text).
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub kind: &'static MessageType,
    pub problem: ConfigError,
}

impl Message {
    /// `Kind namespace/name`, istioctl's name of the resource (what `--suppress` matches).
    pub fn resource_name(&self) -> Option<String> {
        self.problem
            .resource
            .as_ref()
            .map(|r| format!("{} {}/{}", r.kind, r.namespace, r.name))
    }

    /// `file:line` (or just the file); empty for a resource read from a cluster, which
    /// istioctl names without a place (`(VirtualService default/reviews)`).
    pub fn reference(&self) -> String {
        match self.problem.line {
            Some(line) => format!("{}:{line}", self.problem.source_name),
            None => self.problem.source_name.clone(),
        }
    }

    /// The name of Istio's analyzer that reports this message (what `istioctl analyze
    /// --analyzer` selects), or `lateen.<name>` for lateen's own notes.
    pub fn analyzer(&self) -> String {
        let schema = [
            &SCHEMA_VALIDATION_ERROR,
            &SCHEMA_WARNING,
            &VIRTUAL_SERVICE_UNREACHABLE_RULE,
            &VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
        ];
        if schema.contains(&self.kind) {
            let kind = self
                .problem
                .resource
                .as_ref()
                .map_or("", |r| r.kind.as_str());
            format!("schema.ValidationAnalyzer.{kind}")
        } else if *self.kind == CONFLICTING_SERVICE_ENTRY_PROTOCOL {
            "serviceentry.ConflictingServiceEntryProtocolAnalyzer".to_string()
        } else if *self.kind == GATEWAY_DUPLICATE_CERTIFICATE {
            "gateway.CertificateAnalyzer".to_string()
        } else if *self.kind == CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS {
            "virtualservice.ConflictingMeshGatewayHostsAnalyzer".to_string()
        } else if *self.kind == REFERENCED_INTERNAL_GATEWAY
            || *self.kind == VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY
        {
            "virtualservice.GatewayAnalyzer".to_string()
        } else if *self.kind == REFERENCED_RESOURCE_NOT_FOUND {
            if self.problem.message.contains("destinationrule") {
                "virtualservice.DestinationRuleAnalyzer".to_string()
            } else {
                "virtualservice.GatewayAnalyzer".to_string()
            }
        } else if *self.kind == NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL
            || *self.kind == NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL
        {
            "destinationrule.CaCertificateAnalyzer".to_string()
        } else {
            format!("lateen.{}", self.kind.name)
        }
    }

    /// The text after the origin, as istioctl words it.
    pub fn text(&self) -> String {
        let p = &self.problem;
        let detail = if p.path.is_root() {
            p.message.clone()
        } else {
            format!("{}: {}", p.path, p.message)
        };
        if *self.kind == SCHEMA_VALIDATION_ERROR {
            format!("Schema validation error: {detail}")
        } else if *self.kind == SCHEMA_WARNING {
            format!("Schema validation warning: {detail}")
        } else if self.kind.is_istio() {
            p.message.clone()
        } else {
            detail
        }
    }
}

impl fmt::Display for Message {
    /// `Error [IST0101] (VirtualService default/reviews vs.yaml:11) Referenced ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}] (", self.kind.level, self.kind.code)?;
        let place = [self.resource_name().unwrap_or_default(), self.reference()];
        let place: Vec<&str> = place
            .iter()
            .map(String::as_str)
            .filter(|p| !p.is_empty())
            .collect();
        write!(f, "{}) {}", place.join(" "), self.text())
    }
}

/// Messages of the YAML reader or the decoder that istioctl reports as a file it could not
/// parse (exit 65) rather than as a schema error: text that is not a Kubernetes object, an
/// enum value the API does not have, a malformed duration, a map key that is not a number.
const PARSE_FAILURES: &[&str] = &[
    "document is not a mapping",
    "missing or non-string ",
    "List items must be a sequence",
    "unknown variant ",
    "invalid duration ",
    "invalid value: expected key to be a number",
];

/// What a problem is to `istioctl analyze`.
#[derive(Clone, Debug, PartialEq)]
pub enum Classified {
    /// A message to report.
    Message(Message),
    /// The file could not be parsed (istioctl's exit 65).
    Unparsable(ConfigError),
    /// Nothing istioctl would say: a Kubernetes object that is not Istio configuration.
    Silent,
}

/// Sorts a problem of [`crate::parse()`] or [`crate::validate_documents`].
pub fn classify(problem: ConfigError) -> Classified {
    let parse_failure = problem.document.is_none()
        || (problem.severity == Severity::Error
            && PARSE_FAILURES
                .iter()
                .any(|m| problem.message.starts_with(m)));
    if parse_failure {
        return Classified::Unparsable(problem);
    }
    if problem.severity == Severity::Warning && problem.message.ends_with(crate::parse::NOT_ISTIO) {
        return Classified::Silent;
    }
    let mut problem = problem;
    // Istio's validation gives these two warnings their own message types (its
    // `AnalysisAwareError`), worded `VirtualService rule ... .`.
    if problem.severity == Severity::Warning
        && let Some(rest) = problem
            .message
            .strip_prefix(crate::validate::UNUSED_RULE_PREFIX)
    {
        let kind = if rest.contains(" match ") {
            &VIRTUAL_SERVICE_INEFFECTIVE_MATCH
        } else {
            &VIRTUAL_SERVICE_UNREACHABLE_RULE
        };
        problem.message = format!("VirtualService rule {rest}.");
        return Classified::Message(Message { kind, problem });
    }
    let kind = match problem.severity {
        Severity::Warning if problem.message == crate::validate::NOT_ACTED_ON => &NOT_ACTED_ON,
        Severity::Warning if problem.message.starts_with(crate::parse::SKIPPED_PREFIX) => {
            &UNSUPPORTED_KIND
        }
        Severity::Warning => &SCHEMA_WARNING,
        Severity::Error => &SCHEMA_VALIDATION_ERROR,
    };
    Classified::Message(Message { kind, problem })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{FieldPath, ResourceRef};

    #[test]
    fn prints_like_istioctl() {
        let message = Message {
            kind: &REFERENCED_RESOURCE_NOT_FOUND,
            problem: ConfigError {
                severity: Severity::Error,
                source_name: "vs.yaml".into(),
                document: Some(0),
                line: Some(11),
                resource: Some(ResourceRef {
                    kind: "VirtualService".into(),
                    namespace: "default".into(),
                    name: "reviews".into(),
                }),
                path: FieldPath::parse("spec.http[0].route[0].destination.host"),
                message: "Referenced host+subset in destinationrule not found: \"reviews+v1\""
                    .into(),
            },
        };
        assert_eq!(
            message.to_string(),
            "Error [IST0101] (VirtualService default/reviews vs.yaml:11) \
             Referenced host+subset in destinationrule not found: \"reviews+v1\""
        );
        assert!(Level::Error > Level::Warning && Level::Warning > Level::Info);
        assert_eq!(Level::parse("error"), Some(Level::Error));
    }
}
