//! Merging one IstioOperator tree over another, as `-f` files and profiles layer.
//!
//! The rule follows Istio's: maps merge key by key, recursively; scalars and most lists are
//! replaced whole by the overlay. Lists of named things are merged by `name`, so an overlay that
//! resizes `istio-ingressgateway` keeps the profile's other gateways and the gateway's other
//! settings: `components.ingressGateways`, `components.egressGateways`, and `k8s.env` (merged by
//! `name` as a Kubernetes strategic merge does). A `null` in the overlay removes the key.

use serde_json::Value;

/// Merges `overlay` into `base`.
pub fn merge(base: &mut Value, overlay: Value) {
    let mut path = Vec::new();
    merge_at(base, overlay, &mut path);
}

fn merge_at(base: &mut Value, overlay: Value, path: &mut Vec<String>) {
    match (base, overlay) {
        (Value::Object(base_map), Value::Object(overlay_map)) => {
            for (key, value) in overlay_map {
                if value.is_null() {
                    base_map.remove(&key);
                    continue;
                }
                path.push(key.clone());
                match base_map.get_mut(&key) {
                    Some(existing) => merge_at(existing, value, path),
                    None => {
                        base_map.insert(key, value);
                    }
                }
                path.pop();
            }
        }
        (Value::Array(base_list), Value::Array(overlay_list)) if merges_by_name(path) => {
            for item in overlay_list {
                let name = item.get("name").and_then(Value::as_str).map(str::to_owned);
                let existing = name.as_deref().and_then(|name| {
                    base_list.iter_mut().find(|candidate| {
                        candidate.get("name").and_then(Value::as_str) == Some(name)
                    })
                });
                match existing {
                    Some(existing) => {
                        path.push("[]".to_owned());
                        merge_at(existing, item, path);
                        path.pop();
                    }
                    None => base_list.push(item),
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// Lists whose elements are identified by `name`.
fn merges_by_name(path: &[String]) -> bool {
    let Some(last) = path.last() else {
        return false;
    };
    let parent = path
        .len()
        .checked_sub(2)
        .and_then(|i| path.get(i))
        .map(String::as_str);
    match last.as_str() {
        "ingressGateways" | "egressGateways" => parent == Some("components"),
        "env" => parent == Some("k8s"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_merge_and_named_lists_merge_by_name() {
        let mut base = json!({"spec": {"components": {"ingressGateways": [
            {"name": "a", "enabled": true, "k8s": {"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}},
             "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}}]},
            "meshConfig": {"extensionProviders": [{"name": "p"}], "accessLogFile": ""}}});
        merge(
            &mut base,
            json!({"spec": {"components": {"ingressGateways": [
            {"name": "a", "k8s": {"resources": {"requests": {"cpu": "100m"}}, "env": [{"name": "Y", "value": "3"}]}},
            {"name": "b", "enabled": true}]},
            "meshConfig": {"extensionProviders": [{"name": "q"}], "accessLogFile": null}}}),
        );
        let gateways = &base["spec"]["components"]["ingressGateways"];
        assert_eq!(gateways[0]["enabled"], json!(true));
        assert_eq!(
            gateways[0]["k8s"]["resources"]["requests"]["cpu"],
            json!("100m")
        );
        assert_eq!(gateways[0]["k8s"]["resources"]["limits"]["cpu"], json!("2"));
        assert_eq!(
            gateways[0]["k8s"]["env"],
            json!([{"name": "X", "value": "1"}, {"name": "Y", "value": "3"}])
        );
        assert_eq!(gateways[1]["name"], json!("b"));
        assert_eq!(
            base["spec"]["meshConfig"]["extensionProviders"],
            json!([{"name": "q"}])
        );
        assert!(base["spec"]["meshConfig"].get("accessLogFile").is_none());
    }
}
