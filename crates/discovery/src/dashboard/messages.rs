//! Validation messages for the resources a service's details show: each resource's own
//! warnings (lateen-api's validation, e.g. a field accepted but not acted on) and
//! istioctl analyze's cross-resource findings about it (IST0101 for a route to a subset no
//! DestinationRule defines, ...), worded as `istioctl analyze` words them.

use lateen_api::Resource;
use serde_json::{Value, json};

use crate::store::Config;

/// Messages about `related` (resources of `config`), errors first.
pub fn for_resources(config: &Config, related: &[&Resource]) -> Vec<Value> {
    let name = |r: &Resource| format!("{} {}/{}", r.kind(), r.namespace(), r.name());
    let wanted: Vec<String> = related.iter().map(|r| name(r)).collect();
    let mut out = Vec::new();
    for resource in related {
        for issue in lateen_api::validate::validate(resource) {
            let text = if issue.path.is_root() {
                issue.message
            } else {
                format!("{}: {}", issue.path, issue.message)
            };
            out.push(json!({"level": issue.severity.to_string(), "code": "",
                "resource": name(resource), "message": text}));
        }
    }
    // The analyzers read documents; the accepted resources are written out as JSON (which
    // is YAML) and read back, so that they see exactly what lateend serves.
    let text: Vec<String> = config
        .resources
        .iter()
        .map(|r| r.to_json().to_string())
        .collect();
    let parsed = lateen_api::parse(&text.join("\n---\n"), "lateend");
    for message in lateen_api::analyze_messages(&parsed.documents, config.domain_suffix()) {
        let Some(resource) = message.resource_name() else {
            continue;
        };
        if wanted.contains(&resource) {
            out.push(
                json!({"level": message.kind.level.to_string(), "code": message.kind.code,
                "resource": resource, "message": message.text()}),
            );
        }
    }
    out.sort_by_key(|m| m["level"] != "Error");
    out
}
