//! Rewrites the app containers' probes and lifecycle hooks so the kubelet reaches them through
//! the sidecar agent's status port (15020), as Istio does: under STRICT mTLS a plain-text probe
//! from the kubelet would otherwise be refused by the inbound capture.
//!
//! Each rewritten HTTP, TCP or gRPC probe becomes `httpGet /app-health/<container>/<kind>z` on the
//! status port; the original is kept (named ports resolved to numbers) in the sidecar's
//! `ISTIO_KUBE_APP_PROBERS` environment variable, keyed by that path. `exec` probes are left alone.

use serde_json::{Map, Value, json};

use crate::InjectError;

const PROBES: [(&str, &str); 3] = [
    ("readinessProbe", "readyz"),
    ("livenessProbe", "livez"),
    ("startupProbe", "startupz"),
];
const HOOKS: [(&str, &str); 2] = [("postStart", "poststartz"), ("preStop", "prestopz")];
const HANDLERS: [&str; 3] = ["httpGet", "tcpSocket", "grpc"];

/// Rewrites probes of `containers` (the app containers, at `path`) in place and returns the
/// original probers keyed by their new path (the value of `ISTIO_KUBE_APP_PROBERS`).
pub fn rewrite(
    containers: &mut [Value],
    status_port: u16,
    path: &str,
) -> Result<Map<String, Value>, InjectError> {
    let mut probers = Map::new();
    for (i, container) in containers.iter_mut().enumerate() {
        let cpath = format!("{path}[{i}]");
        let Some(container) = container.as_object_mut() else {
            continue;
        };
        let name = container
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let ports = container.get("ports").cloned().unwrap_or(Value::Null);
        for (key, suffix) in PROBES {
            if let Some(probe) = container.get_mut(key) {
                let new_path = format!("/app-health/{name}/{suffix}");
                if let Some(original) = rewrite_handler(
                    probe,
                    &ports,
                    status_port,
                    &new_path,
                    &format!("{cpath}.{key}"),
                )? {
                    probers.insert(new_path, original);
                }
            }
        }
        if let Some(Value::Object(lifecycle)) = container.get_mut("lifecycle") {
            for (key, suffix) in HOOKS {
                if let Some(hook) = lifecycle.get_mut(key) {
                    let new_path = format!("/app-lifecycle/{name}/{suffix}");
                    let hook_path = format!("{cpath}.lifecycle.{key}");
                    if let Some(original) =
                        rewrite_handler(hook, &ports, status_port, &new_path, &hook_path)?
                    {
                        probers.insert(new_path, original);
                    }
                }
            }
        }
    }
    Ok(probers)
}

/// Replaces the probe's HTTP/TCP/gRPC handler with an `httpGet` on the status port; returns the
/// original handler (with `timeoutSeconds`), or None when there is nothing to rewrite.
fn rewrite_handler(
    probe: &mut Value,
    ports: &Value,
    status_port: u16,
    new_path: &str,
    path: &str,
) -> Result<Option<Value>, InjectError> {
    let Some(probe) = probe.as_object_mut() else {
        return Err(InjectError::field(path, "expected a mapping"));
    };
    let Some(handler) = HANDLERS.into_iter().find(|h| probe.contains_key(*h)) else {
        return Ok(None);
    };
    let Some(mut original) = probe.get(handler).and_then(Value::as_object).cloned() else {
        return Err(InjectError::field(
            format!("{path}.{handler}"),
            "expected a mapping",
        ));
    };
    if let Some(port) = original.get("port") {
        match resolve_port(port, ports) {
            Some(number) => {
                original.insert("port".into(), json!(number));
            }
            // A port name the container does not declare: Kubernetes would fail the probe anyway;
            // leave it as the user wrote it.
            None => return Ok(None),
        }
    }
    let mut prober = Map::new();
    prober.insert(handler.into(), Value::Object(original));
    if let Some(timeout) = probe.get("timeoutSeconds") {
        prober.insert("timeoutSeconds".into(), timeout.clone());
    }
    probe.remove(handler);
    probe.insert(
        "httpGet".into(),
        json!({"path": new_path, "port": status_port}),
    );
    Ok(Some(Value::Object(prober)))
}

/// A numeric port, or the `containerPort` of the container port with that name.
fn resolve_port(port: &Value, ports: &Value) -> Option<u64> {
    match port {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok().or_else(|| {
            ports
                .as_array()?
                .iter()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(s))?
                .get("containerPort")?
                .as_u64()
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_http_and_tcp_probes_are_rewritten() {
        let mut containers = vec![json!({
            "name": "hello",
            "ports": [{"name": "http", "containerPort": 80}],
            "livenessProbe": {"httpGet": {"port": "http"}, "timeoutSeconds": 2},
            "readinessProbe": {"tcpSocket": {"port": 3333}},
            "startupProbe": {"exec": {"command": ["true"]}},
        })];
        let probers = rewrite(&mut containers, 15020, "spec.containers").unwrap();
        assert_eq!(
            containers[0]["livenessProbe"],
            json!({"httpGet": {"path": "/app-health/hello/livez", "port": 15020}, "timeoutSeconds": 2})
        );
        assert_eq!(
            containers[0]["readinessProbe"],
            json!({"httpGet": {"path": "/app-health/hello/readyz", "port": 15020}})
        );
        assert_eq!(
            containers[0]["startupProbe"],
            json!({"exec": {"command": ["true"]}})
        );
        assert_eq!(
            probers["/app-health/hello/livez"],
            json!({"httpGet": {"port": 80}, "timeoutSeconds": 2})
        );
        assert_eq!(
            probers["/app-health/hello/readyz"],
            json!({"tcpSocket": {"port": 3333}})
        );
        assert_eq!(probers.len(), 2);
    }
}
