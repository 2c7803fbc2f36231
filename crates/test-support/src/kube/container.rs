//! What the kubelet would run for one container of a stored Pod: its command and arguments with
//! `$(VAR)` references expanded, and its environment with downward-API values (`fieldRef`,
//! `resourceFieldRef`) filled in — so a test can run an injected sidecar as a plain process with
//! the pod's own arguments and environment. Also the files of a `downwardAPI` volume
//! (`metadata.labels`, `metadata.annotations`).
//!
//! Limits a container does not set default, as on a kubelet, to the node's allocatable: here the
//! machine's CPUs and memory.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
/// The Pod type the helpers here take (re-exported for tests that build one from JSON).
pub use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::core::v1::{Container, EnvVar};

/// A container as a process: `command` (empty: the image's entrypoint) then `args`, and `env`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerProcess {
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl ContainerProcess {
    /// The value of environment variable `name`, if set.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Container `name` (from `containers` or `initContainers`) of `pod` as the kubelet would start
/// it, with `base_env` first (e.g. `TestCluster::kubernetes_service_env`) as the kubelet puts the
/// service variables before the container's own. Refuses what needs more than the pod itself
/// (`envFrom`, `configMapKeyRef`, `secretKeyRef`), naming the variable.
pub fn container_process(
    pod: &Pod,
    name: &str,
    base_env: &[(String, String)],
) -> anyhow::Result<ContainerProcess> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or("?");
    let spec = pod
        .spec
        .as_ref()
        .with_context(|| format!("pod {pod_name} has no spec"))?;
    let container: &Container = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .with_context(|| format!("pod {pod_name} has no container {name}"))?;
    if container.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        bail!("container {name} of pod {pod_name}: envFrom is not supported here");
    }
    let mut env: Vec<(String, String)> = base_env.to_vec();
    for var in container.env.iter().flatten() {
        let value = env_value(pod, container, var, &env)
            .with_context(|| format!("container {name} of pod {pod_name}: env {}", var.name))?;
        env.retain(|(k, _)| k != &var.name);
        env.push((var.name.clone(), value));
    }
    let expand_all = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter().flatten().map(|s| expand(s, &env)).collect()
    };
    Ok(ContainerProcess {
        command: expand_all(&container.command),
        args: expand_all(&container.args),
        env: env.clone(),
    })
}

fn env_value(
    pod: &Pod,
    container: &Container,
    var: &EnvVar,
    earlier: &[(String, String)],
) -> anyhow::Result<String> {
    let Some(from) = &var.value_from else {
        return Ok(expand(var.value.as_deref().unwrap_or(""), earlier));
    };
    if let Some(field) = &from.field_ref {
        return field_value(pod, &field.field_path);
    }
    if let Some(resource) = &from.resource_field_ref {
        let of = match resource.container_name.as_deref() {
            Some(other) if other != container.name => pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .find(|c| c.name == other)
                .with_context(|| format!("resourceFieldRef names no container {other}"))?,
            _ => container,
        };
        let divisor = resource.divisor.as_ref().map(|q| q.0.as_str());
        return resource_value(of, &resource.resource, divisor);
    }
    bail!("only value, fieldRef and resourceFieldRef are supported here")
}

/// A `fieldRef` path's value, as the kubelet resolves it.
pub fn field_value(pod: &Pod, path: &str) -> anyhow::Result<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let keyed = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("['"))
            .and_then(|rest| rest.strip_suffix("']"))
    };
    let s = |v: Option<&String>| v.cloned().unwrap_or_default();
    Ok(match path {
        "metadata.name" => s(meta.name.as_ref()),
        "metadata.namespace" => s(meta.namespace.as_ref()),
        "metadata.uid" => s(meta.uid.as_ref()),
        "spec.nodeName" => s(spec.and_then(|p| p.node_name.as_ref())),
        "spec.serviceAccountName" => s(spec.and_then(|p| p.service_account_name.as_ref())),
        "status.hostIP" => s(status.and_then(|p| p.host_ip.as_ref())),
        "status.podIP" => s(status.and_then(|p| p.pod_ip.as_ref())),
        "status.hostIPs" => join_ips(
            status
                .and_then(|p| p.host_ips.as_ref())
                .map(|v| v.iter().map(|i| i.ip.clone()).collect()),
        ),
        "status.podIPs" => join_ips(
            status
                .and_then(|p| p.pod_ips.as_ref())
                .map(|v| v.iter().map(|i| i.ip.clone()).collect()),
        ),
        "metadata.labels" => downward_map(meta.labels.as_ref()),
        "metadata.annotations" => downward_map(meta.annotations.as_ref()),
        _ => {
            if let Some(key) = keyed("metadata.labels") {
                s(meta.labels.as_ref().and_then(|m| m.get(key)))
            } else if let Some(key) = keyed("metadata.annotations") {
                s(meta.annotations.as_ref().and_then(|m| m.get(key)))
            } else {
                bail!("unsupported fieldRef {path:?}")
            }
        }
    })
}

fn join_ips(ips: Option<Vec<String>>) -> String {
    ips.unwrap_or_default().join(",")
}

/// A labels or annotations map as a downward-API file holds it: `key="value"` lines sorted by
/// key, the value quoted and escaped as Go's `%q` does.
pub fn downward_map(map: Option<&BTreeMap<String, String>>) -> String {
    let mut out = String::new();
    for (k, v) in map.into_iter().flatten() {
        out.push_str(k);
        out.push('=');
        out.push_str(&go_quote(v));
        out.push('\n');
    }
    out.pop();
    out
}

fn go_quote(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `resourceFieldRef` value: the quantity divided by `divisor` and rounded up.
fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
) -> anyhow::Result<String> {
    let resources = container.resources.as_ref();
    let (map, what) = match resource.split_once('.') {
        Some(("limits", what)) => (resources.and_then(|r| r.limits.as_ref()), what),
        Some(("requests", what)) => (resources.and_then(|r| r.requests.as_ref()), what),
        _ => bail!("unsupported resourceFieldRef {resource:?}"),
    };
    let set = map.and_then(|m| m.get(what)).map(|q| parse_quantity(&q.0));
    let amount = match (set, resource.starts_with("limits.")) {
        (Some(q), _) => q?,
        (None, true) => node_allocatable(what)?,
        (None, false) => 0.0,
    };
    let divisor = parse_quantity(divisor.unwrap_or("1"))?;
    if divisor <= 0.0 {
        bail!("divisor of {resource} must be positive");
    }
    Ok(format!("{}", (amount / divisor).ceil() as i64))
}

/// What an unset limit defaults to: the node's allocatable, here this machine's.
fn node_allocatable(what: &str) -> anyhow::Result<f64> {
    match what {
        "cpu" => Ok(std::thread::available_parallelism().map_or(1, |n| n.get()) as f64),
        "memory" => {
            let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
            let kib = meminfo
                .lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            Ok(kib * 1024.0)
        }
        other => bail!("no allocatable default for {other:?}"),
    }
}

/// A Kubernetes quantity (`500m`, `2`, `1Gi`, `128974848`, `1e3`, `1.5G`) as a number.
pub fn parse_quantity(q: &str) -> anyhow::Result<f64> {
    let q = q.trim();
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("m", 0.001),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (suffix, factor) in SUFFIXES {
        if let Some(Ok(n)) = q.strip_suffix(suffix).map(str::parse::<f64>) {
            return Ok(n * factor);
        }
    }
    q.parse::<f64>()
        .with_context(|| format!("not a quantity: {q:?}"))
}

/// The kubelet's `$(VAR)` expansion: a defined variable is replaced, an undefined reference
/// kept as written, `$$` is one `$`.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(close) = after.strip_prefix('(').and_then(|a| a.find(')')) {
            let name = &after[1..1 + close];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&rest[i..i + 2 + close + 1]),
            }
            rest = &after[close + 2..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn references_expand_like_the_kubelet() {
        let e = env(&[("NS", "demo"), ("A", "x")]);
        assert_eq!(
            expand("$(NS).svc.cluster.local", &e),
            "demo.svc.cluster.local"
        );
        assert_eq!(expand("$(MISSING)-$(A)", &e), "$(MISSING)-x");
        assert_eq!(expand("$$(NS) $ $(A", &e), "$(NS) $ $(A");
    }

    #[test]
    fn quantities_parse() {
        assert_eq!(parse_quantity("500m").unwrap(), 0.5);
        assert_eq!(parse_quantity("1Gi").unwrap(), 1073741824.0);
        assert_eq!(parse_quantity("2").unwrap(), 2.0);
        assert_eq!(parse_quantity("1e3").unwrap(), 1000.0);
        assert!(parse_quantity("lots").is_err());
    }

    #[test]
    fn a_sidecar_gets_its_pods_facts() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "demo", "uid": "u-1",
                         "labels": {"app": "web", "version": "v1"},
                         "annotations": {"note": "say \"hi\""}},
            "spec": {
                "nodeName": "n1", "serviceAccountName": "web",
                "containers": [{"name": "app", "image": "nginx"}],
                "initContainers": [{
                    "name": "istio-proxy", "image": "lateen/proxy", "restartPolicy": "Always",
                    "args": ["sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local"],
                    "resources": {"limits": {"cpu": "1500m", "memory": "1Gi"}},
                    "env": [
                        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                        {"name": "ISTIO_CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}}},
                        {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                        {"name": "WHERE", "value": "$(POD_NAMESPACE)/$(KUBERNETES_SERVICE_HOST)"}
                    ]
                }]
            },
            "status": {"podIP": "198.18.0.9", "podIPs": [{"ip": "198.18.0.9"}], "hostIP": "198.18.0.1"}
        }))
        .unwrap();
        let base = env(&[("KUBERNETES_SERVICE_HOST", "127.0.0.1")]);
        let p = container_process(&pod, "istio-proxy", &base).unwrap();
        assert_eq!(p.args, ["sidecar", "--domain", "demo.svc.cluster.local"]);
        assert_eq!(p.var("INSTANCE_IP"), Some("198.18.0.9"));
        assert_eq!(p.var("APP"), Some("web"));
        assert_eq!(p.var("ISTIO_CPU_LIMIT"), Some("2"));
        assert_eq!(p.var("MEM_MI"), Some("1024"));
        assert_eq!(p.var("WHERE"), Some("demo/127.0.0.1"));
        assert_eq!(field_value(&pod, "status.podIPs").unwrap(), "198.18.0.9");
        assert_eq!(
            field_value(&pod, "metadata.annotations").unwrap(),
            "note=\"say \\\"hi\\\"\""
        );
        assert!(field_value(&pod, "spec.nope").is_err());
        assert!(container_process(&pod, "missing", &[]).is_err());
    }
}
