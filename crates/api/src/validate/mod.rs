//! Semantic validation in the spirit of `istioctl validate`: every problem is returned (not only
//! the first), each with the field path it concerns and the reason.
//!
//! Rules follow Istio's where Istio has one (noted where we differ on purpose). Paths start at
//! the object root (`spec.http[0].route[1].weight`, `metadata.name`).

mod cel;
mod destination_rule;
mod gateway;
mod http_route;
mod mesh;
mod overlap;
mod proxy_config;
mod security;
mod service_entry;
mod sidecar;
mod telemetry;
mod telemetry_metrics;
mod unreachable;
mod virtual_service;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::error::{FieldIssue, FieldPath};
use crate::host;
use crate::networking::{Percent, Port, StringMatch, StringMatchKind};
use crate::resource::Resource;

pub use mesh::validate_mesh_config;
pub use proxy_config::validate_proxy_config;
pub use telemetry::telemetry_provider_issues;
pub use unreachable::UNUSED_RULE_PREFIX;

/// Port protocols Istio recognises (compared case-insensitively).
pub const PROTOCOLS: &[&str] = &[
    "HTTP",
    "HTTPS",
    "GRPC",
    "GRPC-Web",
    "HTTP2",
    "HTTP_PROXY",
    "TCP",
    "TLS",
    "UDP",
    "Mongo",
    "Redis",
    "MySQL",
];

/// Regular expressions longer than this are refused (Istio's limit for Envoy's RE2).
pub const MAX_REGEX_LEN: usize = 1024;

/// Message of the warning for a field lateen accepts but does not act on yet.
pub const NOT_ACTED_ON: &str = "accepted, but not yet acted on by lateen";

/// Validates one resource: metadata and spec. Returns errors and warnings.
pub fn validate(resource: &Resource) -> Vec<FieldIssue> {
    let mut issues = Issues::default();
    check_metadata(&mut issues, resource);
    let spec = FieldPath::root().field("spec");
    match resource {
        Resource::VirtualService(o) => virtual_service::check(&mut issues, &spec, &o.spec),
        Resource::DestinationRule(o) => destination_rule::check(&mut issues, &spec, &o.spec),
        Resource::Gateway(o) => gateway::check(&mut issues, &spec, o.name(), &o.spec),
        Resource::ServiceEntry(o) => service_entry::check(&mut issues, &spec, &o.spec),
        Resource::WorkloadEntry(o) => {
            service_entry::check_workload_entry(&mut issues, &spec, &o.spec, None)
        }
        Resource::WorkloadGroup(o) => {
            service_entry::check_workload_group(&mut issues, &spec, &o.spec)
        }
        Resource::Sidecar(o) => sidecar::check(&mut issues, &spec, &o.spec),
        Resource::PeerAuthentication(o) => security::check_peer(&mut issues, &spec, &o.spec),
        Resource::AuthorizationPolicy(o) => security::check_authz(&mut issues, &spec, &o.spec),
        Resource::RequestAuthentication(o) => {
            security::check_request_authn(&mut issues, &spec, &o.spec)
        }
        Resource::Telemetry(o) => telemetry::check(&mut issues, &spec, &o.spec),
    }
    issues.0
}

fn check_metadata(issues: &mut Issues, resource: &Resource) {
    let meta = resource.metadata();
    let path = FieldPath::root().field("metadata");
    if meta.name.is_empty() {
        issues.error(&path.field("name"), "name is required");
    } else if !host::is_dns1123_subdomain(&meta.name) {
        issues.error(
            &path.field("name"),
            format!(
                "invalid name {:?}: must be a lower-case DNS-1123 subdomain",
                meta.name
            ),
        );
    }
    if let Some(ns) = &meta.namespace
        && !ns.is_empty()
        && !host::is_dns1123_label(ns)
    {
        issues.error(
            &path.field("namespace"),
            format!("invalid namespace {ns:?}: must be a lower-case DNS-1123 label"),
        );
    }
    check_labels(issues, &path.field("labels"), &meta.labels);
    check_annotations(issues, &path.field("annotations"), resource);
}

/// Istio's `istio.io/dry-run` annotation.
pub const DRY_RUN_ANNOTATION: &str = "istio.io/dry-run";

/// Annotations Istio reserves for resources it generates itself; users may not set them.
const RESERVED_ANNOTATIONS: &[&str] = &[
    "internal.istio.io/webhook-always-reject",
    "internal.istio.io/parent-namespace",
    "internal.istio.io/parents",
];

/// Istio's metadata checks: `istio.io/dry-run` only on an ALLOW or DENY AuthorizationPolicy,
/// with a boolean value (Go's `strconv.ParseBool` spellings); Istio's internal annotations
/// refused.
fn check_annotations(issues: &mut Issues, path: &FieldPath, resource: &Resource) {
    let annotations = &resource.metadata().annotations;
    for reserved in RESERVED_ANNOTATIONS {
        if annotations.contains_key(*reserved) {
            issues.error(
                &path.field(reserved),
                format!("{reserved:?} annotation found, this may not be set by users"),
            );
        }
    }
    let Some(value) = annotations.get(DRY_RUN_ANNOTATION) else {
        return;
    };
    let p = path.field(DRY_RUN_ANNOTATION);
    let Resource::AuthorizationPolicy(ap) = resource else {
        issues.error(
            &p,
            format!("unsupported annotation {DRY_RUN_ANNOTATION}, please remove the annotation"),
        );
        return;
    };
    use crate::security::AuthorizationAction;
    let action = ap.spec.action();
    if !matches!(
        action,
        AuthorizationAction::Allow | AuthorizationAction::Deny
    ) {
        issues.error(
            &p,
            format!(
                "the annotation {DRY_RUN_ANNOTATION} currently only supports action ALLOW/DENY, found action {}",
                wire_name(&action)
            ),
        );
    } else if !matches!(
        value.as_str(),
        "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false" | "False"
    ) {
        issues.error(
            &p,
            format!("annotation {DRY_RUN_ANNOTATION} has an invalid value {value:?}: expected true or false"),
        );
    } else {
        issues.not_acted_on(&p);
    }
}

/// How an enum value is written in YAML (`ISTIO_MUTUAL`), for messages.
pub(crate) fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::from("?"),
    }
}

/// Collected issues.
#[derive(Default)]
pub(crate) struct Issues(pub(crate) Vec<FieldIssue>);

impl Issues {
    pub fn error(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.0.push(FieldIssue::error(path.clone(), message));
    }

    pub fn warn(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.0.push(FieldIssue::warning(path.clone(), message));
    }

    /// A field Istio defines and lateen reads and validates, but whose effect lateen does not
    /// implement yet: accepted, never silently.
    pub fn not_acted_on(&mut self, path: &FieldPath) {
        self.warn(path, NOT_ACTED_ON);
    }

    /// Records `Err(reason)` of a check as an error at `path`.
    pub fn check(&mut self, path: &FieldPath, result: Result<(), String>) {
        if let Err(reason) = result {
            self.error(path, reason);
        }
    }
}

pub(crate) fn check_port_number(issues: &mut Issues, path: &FieldPath, port: u32) {
    if !(1..=65535).contains(&port) {
        issues.error(
            path,
            format!("port number {port} must be in the range 1..65535"),
        );
    }
}

pub(crate) fn is_known_protocol(protocol: &str) -> bool {
    PROTOCOLS.iter().any(|p| p.eq_ignore_ascii_case(protocol))
}

/// A `Port` with number, protocol, name and optional targetPort.
pub(crate) fn check_port(issues: &mut Issues, path: &FieldPath, port: &Port, name_required: bool) {
    check_port_number(issues, &path.field("number"), port.number);
    // An empty protocol means "detect it" (Istio's sniffing), except on gateways (name_required
    // is also their signal that the port is fully specified).
    if port.protocol.is_empty() {
        if name_required {
            issues.error(&path.field("protocol"), "protocol is required");
        }
    } else if !is_known_protocol(&port.protocol) {
        issues.error(
            &path.field("protocol"),
            format!(
                "unrecognized protocol {:?} (expected one of {})",
                port.protocol,
                PROTOCOLS.join(", ")
            ),
        );
    }
    if port.name.is_empty() {
        if name_required {
            issues.error(
                &path.field("name"),
                "invalid port name \"\": a name is required",
            );
        }
    } else if !host::is_dns1123_label(&port.name) {
        issues.error(
            &path.field("name"),
            format!(
                "invalid port name {:?}: must be a DNS-1123 label",
                port.name
            ),
        );
    }
    if let Some(target) = port.target_port {
        check_port_number(issues, &path.field("targetPort"), target);
    }
}

/// Kubernetes label keys (`[prefix/]name`) and values.
pub(crate) fn check_labels(
    issues: &mut Issues,
    path: &FieldPath,
    labels: &BTreeMap<String, String>,
) {
    for (key, value) in labels {
        let field = path.field(key);
        let (prefix, name) = match key.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, key.as_str()),
        };
        if let Some(prefix) = prefix
            && !host::is_dns1123_subdomain(prefix)
        {
            issues.error(
                &field,
                format!("invalid label key {key:?}: prefix must be a DNS subdomain"),
            );
        }
        if !is_label_value(name) || name.is_empty() {
            issues.error(
                &field,
                format!("invalid label key {key:?}: name must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"),
            );
        }
        if !is_label_value(value) {
            issues.error(
                &field,
                format!("invalid label value {value:?}: at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"),
            );
        }
    }
}

/// Empty, or 1-63 of `[A-Za-z0-9._-]` starting and ending alphanumeric.
fn is_label_value(value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    let bytes = value.as_bytes();
    bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Istio's rule for durations: at least 1ms, millisecond precision.
pub(crate) fn check_duration(issues: &mut Issues, path: &FieldPath, duration: Option<Duration>) {
    let Some(d) = duration else { return };
    if d < Duration::from_millis(1) {
        issues.error(path, "duration must be at least 1ms");
    } else if d.subsec_nanos() % 1_000_000 != 0 {
        issues.error(
            path,
            "only durations to millisecond precision are supported",
        );
    }
}

pub(crate) fn check_percent(issues: &mut Issues, path: &FieldPath, percent: Option<Percent>) {
    let Some(p) = percent else { return };
    if !(0.0..=100.0).contains(&p.value) {
        issues.error(
            &path.field("value"),
            format!("percentage {} must be in the range 0..100", p.value),
        );
    } else if p.value > 0.0 && p.value < 0.0001 {
        // Envoy's fractional percent has a resolution of one in a million.
        issues.error(
            &path.field("value"),
            format!(
                "percentage {} is neither 0.0, nor in range [0.0001, 100.0]",
                p.value
            ),
        );
    }
}

/// A header value Envoy will accept: no control characters, and `%` only as `%%` or around
/// a command such as `%HOSTNAME%` or `%REQ(x-id)%`.
pub(crate) fn check_header_value(issues: &mut Issues, path: &FieldPath, value: &str) {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        issues.error(path, format!("header value configuration {value:?} is invalid: control characters are not allowed"));
        return;
    }
    let mut rest = value;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            rest = tail;
            continue;
        }
        let Some(end) = after.find('%') else {
            issues.error(
                path,
                format!("header value configuration: invalid {value:?}: a '%' must be doubled (%%) or close a %COMMAND%"),
            );
            return;
        };
        let command = &after[..end];
        let name_ok = command
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase());
        if !name_ok {
            issues.error(
                path,
                format!(
                    "header value configuration: invalid {value:?}: {command:?} is not a %COMMAND%"
                ),
            );
            return;
        }
        rest = &after[end + 1..];
    }
}

/// A StringMatch: at most one of exact/prefix/regex (exactly one unless `allow_presence`),
/// prefix and regex not empty, regex valid RE2.
pub(crate) fn check_string_match(
    issues: &mut Issues,
    path: &FieldPath,
    sm: &StringMatch,
    allow_presence: bool,
) {
    match sm.kind() {
        None => issues.error(path, "exactly one of exact, prefix or regex may be set"),
        Some(StringMatchKind::Present) if !allow_presence => {
            issues.error(path, "one of exact, prefix or regex must be set")
        }
        Some(StringMatchKind::Prefix("")) => issues.error(
            &path.field("prefix"),
            "prefix string match should not be empty",
        ),
        Some(StringMatchKind::Regex(re)) => check_regex(issues, &path.field("regex"), re),
        _ => {}
    }
}

/// Compiles `pattern` as Envoy would (RE2). Rust's `regex` is RE2-like: it refuses lookaround
/// and backreferences as RE2 does; class set operations (`&&`, `~~`), which RE2 lacks, are
/// refused explicitly.
pub(crate) fn check_regex(issues: &mut Issues, path: &FieldPath, pattern: &str) {
    if pattern.is_empty() {
        issues.error(path, "regex string match should not be empty");
        return;
    }
    if pattern.len() > MAX_REGEX_LEN {
        issues.error(
            path,
            format!("regex is too large, max length allowed is {MAX_REGEX_LEN}"),
        );
        return;
    }
    if let Err(e) = regex::Regex::new(pattern) {
        let detail = e.to_string();
        let last = detail.lines().last().unwrap_or(&detail).trim();
        let reason = last.strip_prefix("error: ").unwrap_or(last);
        issues.error(
            path,
            format!("invalid regex {pattern:?}: {reason} (Envoy uses RE2 syntax, which has no lookaround or backreferences)"),
        );
        return;
    }
    if pattern.contains('[') && (pattern.contains("&&") || pattern.contains("~~")) {
        issues.error(
            path,
            format!(
                "invalid regex {pattern:?}: character class set operations are not supported by RE2"
            ),
        );
    }
}

/// HTTP header names: RFC 7230 token characters (a leading `:` for pseudo-headers is refused).
pub(crate) fn check_header_name(issues: &mut Issues, path: &FieldPath, name: &str) {
    if name.is_empty() {
        issues.error(path, "header name cannot be empty");
        return;
    }
    let token = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        issues.error(path, format!("invalid header name {name:?}"));
    }
}

/// An IP address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).
pub(crate) fn check_ip_or_cidr(issues: &mut Issues, path: &FieldPath, text: &str) {
    if let Err(reason) = parse_ip_or_cidr(text) {
        issues.error(path, reason);
    }
}

pub(crate) fn parse_ip_or_cidr(text: &str) -> Result<(), String> {
    let (ip, len) = match text.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (text, None),
    };
    let addr: IpAddr = ip
        .parse()
        .map_err(|_| format!("{text:?} is not a valid IP address or CIDR block"))?;
    if let Some(len) = len {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        match len.parse::<u8>() {
            Ok(n) if n <= max => {}
            _ => return Err(format!("{text:?} has an invalid prefix length (max {max})")),
        }
    }
    Ok(())
}

/// `exportTo` entries: `*`, `.`, `~` or a namespace name.
/// `exportTo` entries (Istio's rules): `*`, `.`, `~` or namespace names, no duplicates, `*`
/// alone, and `~` alone.
pub(crate) fn check_export_to(issues: &mut Issues, path: &FieldPath, export_to: &[String]) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, ns) in export_to.iter().enumerate() {
        let ok = matches!(ns.as_str(), "*" | "." | "~") || host::is_dns1123_label(ns);
        if !ok {
            issues.error(
                &path.index(i),
                format!("invalid exportTo value {ns:?}: expected *, ., ~ or a namespace name"),
            );
        } else if !seen.insert(ns.as_str()) {
            issues.error(
                &path.index(i),
                format!("duplicate entries in exportTo for entry {ns}"),
            );
        }
    }
    if export_to.len() > 1 && seen.contains("*") {
        issues.error(
            path,
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
    if export_to.len() > 1 && seen.contains("~") {
        issues.error(path, "cannot export to no one (~) and someone");
    }
}

/// A workload selector's labels (Istio's rules): no empty keys, no wildcards; no labels at all
/// selects every workload of the namespace, which is allowed but warned about.
pub(crate) fn check_selector(
    issues: &mut Issues,
    path: &FieldPath,
    labels: Option<&BTreeMap<String, String>>,
) {
    let Some(labels) = labels else { return };
    if labels.is_empty() {
        issues.warn(path, "workload selector specified without labels: it applies to every workload in the namespace");
    }
    for (k, v) in labels {
        if k.is_empty() {
            issues.error(
                &path.field(k),
                format!("empty key is not supported in selector: \"{k}={v}\""),
            );
        } else if k.contains('*') || v.contains('*') {
            issues.error(
                &path.field(k),
                format!("wildcard is not supported in selector: \"{k}={v}\""),
            );
        }
    }
    check_labels(issues, path, labels);
}
