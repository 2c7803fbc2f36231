//! Whether a live object still says what the install rendered (for `verify-install`): every
//! field the rendering sets must have the same value in the cluster. Fields the API server or
//! controllers add are not compared (the rendering is a subset of the live object), quantities
//! compare by amount (`1000m` is `1`), and the fields the control plane rewrites at run time
//! (webhook CA bundles and the validator's failure policy) are skipped.

use serde_json::Value;

/// The differences of `live` from `rendered`, as `path: cluster has X, the install renders Y`.
pub fn differences(rendered: &Value, live: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let Some(fields) = rendered.as_object() else {
        return found;
    };
    for (key, value) in fields {
        match key.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for part in ["labels", "annotations"] {
                    compare(
                        &format!("metadata.{part}"),
                        &value[part],
                        &live["metadata"][part],
                        &mut found,
                    );
                }
            }
            _ => compare(key, value, &live[key.as_str()], &mut found),
        }
    }
    found
}

/// Set at run time by the control plane, not by the install.
fn is_runtime_field(path: &str) -> bool {
    path.ends_with(".clientConfig.caBundle") || path.ends_with(".failurePolicy")
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        Value::Array(list) => list.is_empty(),
        _ => false,
    }
}

fn compare(path: &str, rendered: &Value, live: &Value, found: &mut Vec<String>) {
    if is_runtime_field(path) {
        return;
    }
    match (rendered, live) {
        (Value::Object(fields), Value::Object(_)) => {
            for (key, value) in fields {
                compare(&format!("{path}.{key}"), value, &live[key.as_str()], found);
            }
        }
        (Value::Array(items), Value::Array(live_items)) if items.len() == live_items.len() => {
            for (index, (item, live_item)) in items.iter().zip(live_items).enumerate() {
                compare(&format!("{path}[{index}]"), item, live_item, found);
            }
        }
        _ if is_empty(rendered) && is_empty(live) => {}
        _ if same_scalar(rendered, live) => {}
        _ => found.push(format!(
            "{path}: cluster has {}, the install renders {}",
            short(live),
            short(rendered)
        )),
    }
}

fn short(value: &Value) -> String {
    let text = if value.is_null() {
        "nothing".to_owned()
    } else {
        value.to_string()
    };
    if text.chars().count() > 80 {
        format!("{}...", text.chars().take(77).collect::<String>())
    } else {
        text
    }
}

/// Equal, or the same number or quantity written differently (`8080` and `"8080"`, `1000m`
/// and `1`, `1Gi` and `1024Mi`).
fn same_scalar(rendered: &Value, live: &Value) -> bool {
    if rendered == live {
        return true;
    }
    let text = |value: &Value| match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match (text(rendered), text(live)) {
        (Some(a), Some(b)) => match (quantity(&a), quantity(&b)) {
            (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()).max(1.0),
            _ => a == b,
        },
        _ => false,
    }
}

/// A Kubernetes quantity in base units (`100m` = 0.1, `1Ki` = 1024, `2k` = 2000).
fn quantity(text: &str) -> Option<f64> {
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let (number, scale) = SUFFIXES
        .iter()
        .find_map(|(suffix, scale)| text.strip_suffix(suffix).map(|n| (n, *scale)))
        .unwrap_or((text, 1.0));
    let parsed: f64 = number.parse().ok()?;
    parsed.is_finite().then_some(parsed * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_and_numbers_compare_by_amount() {
        assert!(same_scalar(&json!("1000m"), &json!("1")));
        assert!(same_scalar(&json!("1Gi"), &json!("1024Mi")));
        assert!(same_scalar(&json!(8080), &json!("8080")));
        assert!(!same_scalar(&json!("100m"), &json!("200m")));
        assert!(!same_scalar(&json!("IfNotPresent"), &json!("Always")));
    }

    #[test]
    fn only_what_the_rendering_sets_is_compared() {
        let rendered = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"app": "x"}, "annotations": {}},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a:1", "resources": {"requests": {"cpu": "1000m"}}}]}}},
            "webhooks": [{"clientConfig": {"caBundle": ""}, "failurePolicy": "Ignore"}],
        });
        let mut live = rendered.clone();
        live["metadata"]["uid"] = json!("u");
        live["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] =
            json!("1");
        live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] =
            json!("/dev/termination-log");
        live["webhooks"][0] =
            json!({"clientConfig": {"caBundle": "LS0t"}, "failurePolicy": "Fail"});
        live["status"] = json!({"readyReplicas": 1});
        assert_eq!(differences(&rendered, &live), Vec::<String>::new());

        live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("a:2");
        live["metadata"]["labels"]["app"] = json!("y");
        assert_eq!(
            differences(&rendered, &live),
            [
                "metadata.labels.app: cluster has \"y\", the install renders \"x\"",
                "spec.template.spec.containers[0].image: cluster has \"a:2\", the install renders \"a:1\"",
            ]
        );
    }
}
