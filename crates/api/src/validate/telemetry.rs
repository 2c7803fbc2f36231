//! Telemetry rules (Istio's `ValidateTelemetry`): one way of selecting workloads, provider names
//! set, a filter that parses as CEL, sampling in [0, 100], custom tags and tag overrides
//! complete.

use super::Issues;
use super::security::{check_selector_labels, check_targets};
use crate::error::FieldPath;
use crate::telemetry::{CustomTag, ProviderRef, TagOperation, Telemetry};

pub(super) fn check(issues: &mut Issues, spec: &FieldPath, t: &Telemetry) {
    check_selector_labels(issues, &spec.field("selector"), t.selector.as_ref());
    check_targets(
        issues,
        spec,
        t.selector.as_ref(),
        t.target_ref.as_ref(),
        &t.target_refs,
    );
    for (i, log) in t.access_logging.iter().enumerate() {
        let p = spec.field("accessLogging").index(i);
        if let Some(filter) = &log.filter
            && let Err(reason) = super::cel::check_syntax(&filter.expression)
        {
            issues.error(
                &p.field("filter").field("expression"),
                format!("must be a valid CEL expression, {reason}"),
            );
        }
        check_providers(issues, &p, &log.providers);
    }
    if t.tracing.len() > 1 {
        issues.warn(
            &spec.field("tracing"),
            "multiple tracing is not currently supported",
        );
    }
    for (i, tracing) in t.tracing.iter().enumerate() {
        let p = spec.field("tracing").index(i);
        if tracing.providers.len() > 1 {
            issues.warn(
                &p.field("providers"),
                "multiple providers is not currently supported",
            );
        }
        check_providers(issues, &p, &tracing.providers);
        if let Some(pct) = tracing.random_sampling_percentage
            && !(0.0..=100.0).contains(&pct)
        {
            issues.error(
                &p.field("randomSamplingPercentage"),
                "randomSamplingPercentage must be in range [0.0, 100.0]",
            );
        }
        for (name, tag) in &tracing.custom_tags {
            check_custom_tag(issues, &p.field("customTags").field(name), name, tag);
        }
    }
    for (i, metrics) in t.metrics.iter().enumerate() {
        let p = spec.field("metrics").index(i);
        check_providers(issues, &p, &metrics.providers);
        for (j, o) in metrics.overrides.iter().enumerate() {
            let op = p.field("overrides").index(j);
            for (tag, to) in &o.tag_overrides {
                let tp = op.field("tagOverrides").field(tag);
                if tag.is_empty() {
                    issues.warn(&tp, "tagOverrides.name may not be empty");
                }
                let value = to.value.as_deref().unwrap_or("");
                match to.operation() {
                    TagOperation::Upsert if value.is_empty() => issues.error(
                        &tp.field("value"),
                        "tagOverrides.value must be set when operation is UPSERT",
                    ),
                    TagOperation::Remove if !value.is_empty() => issues.error(
                        &tp.field("value"),
                        "tagOverrides.value may only be set when operation is UPSERT",
                    ),
                    _ => {}
                }
            }
            if let Some(m) = &o.match_ {
                let mp = op.field("match");
                if m.custom_metric.as_deref() == Some("") {
                    issues.error(&mp.field("customMetric"), "customMetric may not be empty");
                }
                if m.metric.is_some() && m.custom_metric.is_some() {
                    issues.error(&mp, "only one of metric or customMetric may be set");
                }
            }
        }
    }
}

fn check_providers(issues: &mut Issues, path: &FieldPath, providers: &[ProviderRef]) {
    if let Some(i) = providers.iter().position(|p| p.name.is_empty()) {
        issues.error(
            &path.field("providers").index(i).field("name"),
            "providers.name may not be empty",
        );
    }
}

fn check_custom_tag(issues: &mut Issues, path: &FieldPath, name: &str, tag: &CustomTag) {
    if name.is_empty() {
        issues.error(path, "tag name may not be empty");
    }
    let set = [
        tag.literal.is_some(),
        tag.environment.is_some(),
        tag.header.is_some(),
        tag.formatter.is_some(),
    ]
    .into_iter()
    .filter(|s| *s)
    .count();
    if set != 1 {
        issues.error(
            path,
            format!(
                "tag '{name}' must set exactly one of literal, environment, header or formatter"
            ),
        );
    }
    if tag.literal.as_ref().is_some_and(|l| l.value.is_empty()) {
        issues.error(
            &path.field("literal").field("value"),
            "literal tag value may not be empty",
        );
    }
    if tag.header.as_ref().is_some_and(|h| h.name.is_empty()) {
        issues.error(
            &path.field("header").field("name"),
            "header tag name may not be empty",
        );
    }
    if tag.environment.as_ref().is_some_and(|e| e.name.is_empty()) {
        issues.error(
            &path.field("environment").field("name"),
            "environment tag name may not be empty",
        );
    }
    if tag.formatter.as_ref().is_some_and(|f| f.value.is_empty()) {
        issues.error(
            &path.field("formatter").field("value"),
            "formatter tag value may not be empty",
        );
    }
}

/// Providers a Telemetry names that MeshConfig does not declare (and that are not Istio's
/// built-in ones): Istio only logs these and sends nothing; lateen refuses the resource so the
/// mistake is seen, and the last good version stays. Also the `metrics` overrides lateen
/// cannot apply (`telemetry_metrics.rs`), refused the same way.
pub fn telemetry_provider_issues(
    resource: &crate::Resource,
    mesh: &crate::MeshConfig,
) -> Vec<crate::FieldIssue> {
    let mut issues = Issues::default();
    let Some(t) = resource.as_telemetry() else {
        return issues.0;
    };
    let spec = FieldPath::root().field("spec");
    let lists = [
        (
            "accessLogging",
            t.spec
                .access_logging
                .iter()
                .map(|e| &e.providers)
                .collect::<Vec<_>>(),
        ),
        (
            "metrics",
            t.spec.metrics.iter().map(|e| &e.providers).collect(),
        ),
        (
            "tracing",
            t.spec.tracing.iter().map(|e| &e.providers).collect(),
        ),
    ];
    for (field, entries) in lists {
        for (i, providers) in entries.into_iter().enumerate() {
            for (j, p) in providers.iter().enumerate() {
                let builtin = BUILTIN_PROVIDERS.contains(&p.name.as_str());
                if !builtin && mesh.extension_provider(&p.name).is_none() {
                    issues.error(
                        &spec
                            .field(field)
                            .index(i)
                            .field("providers")
                            .index(j)
                            .field("name"),
                        format!(
                            "unknown provider {:?}: not in MeshConfig extensionProviders",
                            p.name
                        ),
                    );
                }
            }
        }
    }
    super::telemetry_metrics::check(&mut issues, &spec, &t.spec);
    issues.0
}

/// Provider names Istio knows without a declaration.
const BUILTIN_PROVIDERS: &[&str] = &["envoy", "prometheus", "stackdriver"];
