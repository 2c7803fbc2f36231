//! MeshConfig `discoverySelectors`: Kubernetes label selectors (`matchLabels`,
//! `matchExpressions` with In, NotIn, Exists, DoesNotExist), ORed; an empty list selects
//! every namespace, and so does an empty selector. A selector lateend cannot read selects
//! nothing (and is reported), as istiod skips a selector it cannot convert.

use std::collections::BTreeMap;

use serde_json::Value;

/// Whether a namespace with `labels` is selected by `selectors`.
pub fn namespace_selected(selectors: &[Value], labels: &BTreeMap<String, String>) -> bool {
    selectors.is_empty()
        || selectors.iter().any(|s| match matches(s, labels) {
            Ok(m) => m,
            Err(reason) => {
                tracing::warn!(selector = %s, %reason, "MeshConfig discoverySelectors: selector ignored");
                false
            }
        })
}

/// One label selector against `labels`; an error names what is malformed.
pub fn matches(selector: &Value, labels: &BTreeMap<String, String>) -> Result<bool, String> {
    let Value::Object(fields) = selector else {
        return Err("a selector must be an object".into());
    };
    for (key, value) in fields {
        match key.as_str() {
            "matchLabels" => {
                let Value::Object(pairs) = value else {
                    return Err("matchLabels must be a map".into());
                };
                for (k, v) in pairs {
                    let v = v
                        .as_str()
                        .ok_or_else(|| format!("matchLabels.{k} must be a string"))?;
                    if labels.get(k).map(String::as_str) != Some(v) {
                        return Ok(false);
                    }
                }
            }
            "matchExpressions" => {
                let Value::Array(list) = value else {
                    return Err("matchExpressions must be a list".into());
                };
                for (i, e) in list.iter().enumerate() {
                    if !expression(e).map_err(|r| format!("matchExpressions[{i}]: {r}"))?(labels) {
                        return Ok(false);
                    }
                }
            }
            other => return Err(format!("unknown field {other:?}")),
        }
    }
    Ok(true)
}

type Test = Box<dyn Fn(&BTreeMap<String, String>) -> bool>;

fn expression(e: &Value) -> Result<Test, String> {
    let key = e
        .get("key")
        .and_then(Value::as_str)
        .ok_or("key is required")?
        .to_string();
    let operator = e
        .get("operator")
        .and_then(Value::as_str)
        .ok_or("operator is required")?;
    let values: Vec<String> = match e.get("values") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(v)) => v
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or("values must be strings")
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("values must be a list".into()),
    };
    let needs_values = matches!(operator, "In" | "NotIn");
    if needs_values == values.is_empty() {
        return Err(format!(
            "operator {operator} {} values",
            if needs_values { "needs" } else { "takes no" }
        ));
    }
    Ok(match operator {
        "In" => Box::new(move |l| l.get(&key).is_some_and(|v| values.contains(v))),
        "NotIn" => Box::new(move |l| l.get(&key).is_none_or(|v| !values.contains(v))),
        "Exists" => Box::new(move |l| l.contains_key(&key)),
        "DoesNotExist" => Box::new(move |l| !l.contains_key(&key)),
        other => return Err(format!("unknown operator {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_are_ored_and_empty_selects_all() {
        let prod = labels(&[("env", "prod"), ("istio-discovery", "enabled")]);
        let dev = labels(&[("env", "dev")]);
        assert!(namespace_selected(&[], &dev));
        assert!(namespace_selected(&[json!({})], &dev));
        let selectors = [
            json!({"matchLabels": {"istio-discovery": "enabled"}}),
            json!({"matchExpressions": [{"key": "env", "operator": "In", "values": ["staging"]}]}),
        ];
        assert!(namespace_selected(&selectors, &prod));
        assert!(!namespace_selected(&selectors, &dev));
        assert!(namespace_selected(
            &selectors,
            &labels(&[("env", "staging")])
        ));
    }

    #[test]
    fn operators() {
        let l = labels(&[("a", "1")]);
        let m = |e: Value| matches(&json!({"matchExpressions": [e]}), &l).unwrap();
        assert!(m(json!({"key": "a", "operator": "Exists"})));
        assert!(!m(json!({"key": "a", "operator": "DoesNotExist"})));
        assert!(m(json!({"key": "b", "operator": "NotIn", "values": ["1"]})));
        assert!(!m(
            json!({"key": "a", "operator": "NotIn", "values": ["1"]})
        ));
    }

    #[test]
    fn malformed_selectors_select_nothing_and_say_why() {
        let l = labels(&[("a", "1")]);
        let err = matches(
            &json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            &l,
        )
        .unwrap_err();
        assert!(
            err.contains("matchExpressions[0]") && err.contains("needs"),
            "{err}"
        );
        assert!(matches(&json!({"matchLabel": {}}), &l).is_err());
        assert!(!namespace_selected(&[json!({"matchLabels": "a=1"})], &l));
    }
}
