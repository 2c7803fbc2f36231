//! Telemetry `metrics` overrides lateen cannot apply, refused with the resource like unknown
//! providers (lateend keeps the last good version): a `tagOverrides` value that is not one of
//! the expressions lateen-proxy computes ([`crate::tag_value`]), a label name Prometheus does
//! not accept, and `customMetric` (lateen has no custom metric definitions to override).
//! Istio itself accepts these and fails, or reports nothing, in the proxy.

use super::Issues;
use crate::error::FieldPath;
use crate::tag_value::TagValue;
use crate::telemetry::{TagOperation, Telemetry};

pub(super) fn check(issues: &mut Issues, spec: &FieldPath, telemetry: &Telemetry) {
    for (i, metrics) in telemetry.metrics.iter().enumerate() {
        let path = spec.field("metrics").index(i);
        for (j, o) in metrics.overrides.iter().enumerate() {
            let op = path.field("overrides").index(j);
            if let Some(custom) = o.match_.as_ref().and_then(|m| m.custom_metric.as_ref()) {
                issues.error(
                    &op.field("match").field("customMetric"),
                    format!(
                        "customMetric {custom:?} is not supported by lateen: only Istio's \
                         standard metrics can be overridden"
                    ),
                );
            }
            for (tag, to) in &o.tag_overrides {
                let tp = op.field("tagOverrides").field(tag);
                if !crate::tag_value::is_label_name(tag) {
                    issues.error(
                        &tp,
                        format!("{tag:?} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                    );
                }
                if to.operation() != TagOperation::Upsert {
                    continue;
                }
                let Some(value) = to.value.as_deref().filter(|v| !v.is_empty()) else {
                    continue;
                };
                if let Err(reason) = TagValue::parse(value) {
                    issues.error(
                        &tp.field("value"),
                        format!("lateen-proxy cannot compute {value:?}: {reason}"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    fn issues(spec: &str) -> Vec<String> {
        let text = format!(
            "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: t, namespace: default}}\nspec:\n{spec}"
        );
        let loaded = crate::load(&text, "t.yaml").expect("valid Telemetry");
        let resource = loaded.resources().next().cloned().expect("one resource");
        crate::validate::telemetry_provider_issues(&resource, &crate::MeshConfig::default())
            .into_iter()
            .map(|issue| format!("{}: {}", issue.path, issue.message))
            .collect()
    }

    #[test]
    fn cheap_values_pass_and_the_rest_is_refused_by_field() {
        let good = "  metrics:\n  - providers: [{name: prometheus}]\n    overrides:\n    - match: {metric: REQUEST_COUNT, mode: CLIENT}\n      tagOverrides:\n        request_protocol: {operation: REMOVE}\n        user: {value: \"request.headers['x-user']\"}\n";
        assert_eq!(issues(good), Vec::<String>::new());
        let bad = "  metrics:\n  - overrides:\n    - match: {customMetric: my_metric}\n      tagOverrides:\n        user: {value: \"request.time\"}\n        bad-name: {operation: REMOVE}\n";
        let found = issues(bad);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].starts_with("spec.metrics[0].overrides[0].match.customMetric: "),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("spec.metrics[0].overrides[0].tagOverrides.bad-name: "),
            "{found:?}"
        );
        assert!(
            found[2].starts_with(
                "spec.metrics[0].overrides[0].tagOverrides.user.value: lateen-proxy cannot compute \"request.time\": the attribute request.time"
            ),
            "{found:?}"
        );
    }
}
