//! ProxyConfig (`networking.istio.io/v1beta1`): Istio's bounds from its CRD.

use crate::error::{FieldIssue, FieldPath};
use crate::networking::proxy_config::ProxyConfigSpec;

use super::Issues;

/// Istio's CRD limit on an `environmentVariables` value.
const MAX_ENV_VALUE_LEN: usize = 2048;

/// Validates a ProxyConfig spec; paths start at the object root (`spec.concurrency`).
pub fn validate_proxy_config(spec: &ProxyConfigSpec) -> Vec<FieldIssue> {
    let mut issues = Issues::default();
    let path = FieldPath::root().field("spec");
    if let Some(selector) = &spec.selector {
        super::check_selector(
            &mut issues,
            &path.field("selector").field("matchLabels"),
            Some(&selector.match_labels),
        );
    }
    if let Some(c) = spec.concurrency
        && !(0..=i64::from(i32::MAX)).contains(&c)
    {
        issues.error(
            &path.field("concurrency"),
            format!("concurrency {c} must be between 0 and {}", i32::MAX),
        );
    }
    for (name, value) in &spec.environment_variables {
        if value.len() > MAX_ENV_VALUE_LEN {
            issues.error(
                &path.field("environmentVariables").field(name),
                format!("value longer than {MAX_ENV_VALUE_LEN} characters"),
            );
        }
    }
    issues.warn(&path, super::NOT_ACTED_ON);
    issues.0
}
