//! Running one container of a Pod object as a local process, as a kubelet would start it:
//! its environment with downward-API `fieldRef`s filled from [`PodFacts`] and `$(VAR)`
//! references expanded, its arguments expanded the same way, and its volumes made as
//! directories (ConfigMaps, projected service-account tokens, downward-API files, emptyDirs)
//! that a private mount namespace binds at the container's mount paths
//! ([`mount_script`]). No image: the caller names the binary the image's entrypoint is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// What the API server and kubelet know about a running pod.
#[derive(Clone, Debug)]
pub struct PodFacts {
    pub name: String,
    pub namespace: String,
    pub pod_ip: String,
    pub host_ip: String,
    pub node_name: String,
    /// `spec.serviceAccountName` when the pod does not set it.
    pub service_account: String,
    /// CPUs a `limits.cpu` resourceFieldRef gives when no limit is set (the node's).
    pub node_cpus: u32,
}

/// Contents of the volumes a test supplies: ConfigMaps by name (key -> text) and the
/// service-account token.
#[derive(Clone, Debug, Default)]
pub struct VolumeSources {
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub token: String,
}

fn field<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

/// The value a `fieldRef` of `pod` has.
pub fn field_ref(pod: &Value, facts: &PodFacts, path: &str) -> Result<String, String> {
    let from_map = |map: &str, key: &str| {
        pod.pointer(&format!("/metadata/{map}"))
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(match path {
        "metadata.name" => facts.name.clone(),
        "metadata.namespace" => facts.namespace.clone(),
        "status.podIP" => facts.pod_ip.clone(),
        "status.podIPs" => facts.pod_ip.clone(),
        "status.hostIP" => facts.host_ip.clone(),
        "spec.nodeName" => facts.node_name.clone(),
        "spec.serviceAccountName" => field(pod, "/spec/serviceAccountName")
            .unwrap_or(&facts.service_account)
            .to_string(),
        other => {
            if let Some(key) = other
                .strip_prefix("metadata.labels['")
                .and_then(|k| k.strip_suffix("']"))
            {
                from_map("labels", key)
            } else if let Some(key) = other
                .strip_prefix("metadata.annotations['")
                .and_then(|k| k.strip_suffix("']"))
            {
                from_map("annotations", key)
            } else {
                return Err(format!("fieldRef {other:?} is not filled by this kubelet"));
            }
        }
    })
}

/// Expands `$(NAME)` from `env` as a kubelet does (`$$` is a literal `$`; unknown names stay).
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after
            .strip_prefix('(')
            .and_then(|inner| inner.split_once(')'))
            && let Some((_, value)) = env.iter().rev().find(|(n, _)| n == name)
        {
            out.push_str(value);
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment in order, every `valueFrom` resolved.
pub fn container_env(
    pod: &Value,
    container: &Value,
    facts: &PodFacts,
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let name = field(var, "/name").ok_or("env entry without a name")?;
        let value = if let Some(value) = var.get("value").and_then(Value::as_str) {
            expand(value, &env)
        } else if let Some(path) = field(var, "/valueFrom/fieldRef/fieldPath") {
            field_ref(pod, facts, path)?
        } else if let Some(resource) = field(var, "/valueFrom/resourceFieldRef/resource") {
            let limit = container.pointer(&format!("/resources/{}", resource.replace('.', "/")));
            match (resource, limit.and_then(Value::as_str)) {
                // Whole CPUs, rounded up, as with the injector's `divisor: 1`.
                ("limits.cpu", Some(limit)) => match limit.strip_suffix('m') {
                    Some(millis) => millis
                        .parse::<u64>()
                        .map(|m| m.div_ceil(1000).to_string())
                        .map_err(|_| format!("env {name}: limits.cpu {limit:?}"))?,
                    None => limit.to_string(),
                },
                (_, Some(limit)) => limit.to_string(),
                ("limits.cpu", None) => facts.node_cpus.to_string(),
                (other, None) => return Err(format!("resourceFieldRef {other} without a value")),
            }
        } else if var.get("valueFrom").is_none() {
            String::new()
        } else {
            return Err(format!(
                "env {name}: valueFrom is not filled by this kubelet"
            ));
        };
        env.push((name.to_string(), value));
    }
    Ok(env)
}

/// The container's `command` + `args`, expanded (the image's entrypoint goes first when the
/// container has no `command`; the caller adds it).
pub fn container_args(container: &Value, env: &[(String, String)]) -> Vec<String> {
    ["command", "args"]
        .iter()
        .flat_map(|key| container[*key].as_array().cloned().unwrap_or_default())
        .filter_map(|arg| arg.as_str().map(|a| expand(a, env)))
        .collect()
}

/// A downward-API file of labels or annotations: `key="value"` lines, sorted, quotes and
/// backslashes escaped.
pub fn downward_file(map: Option<&Map<String, Value>>) -> String {
    let mut lines: Vec<String> = map
        .into_iter()
        .flatten()
        .map(|(key, value)| {
            let value = value.as_str().unwrap_or_default();
            format!(
                "{key}=\"{}\"",
                value.replace('\\', "\\\\").replace('"', "\\\"")
            )
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a ConfigMap volume source's keys (all, or its `items` as their paths) into `here`.
fn write_config_map(here: &Path, source: &Value, sources: &VolumeSources) -> Result<(), String> {
    let name = field(source, "/name").ok_or("configMap without a name")?;
    let data = sources
        .config_maps
        .get(name)
        .ok_or_else(|| format!("ConfigMap {name} not supplied"))?;
    match source.get("items").and_then(Value::as_array) {
        Some(items) => {
            for item in items {
                let key = field(item, "/key").ok_or("configMap item without a key")?;
                let path = field(item, "/path").unwrap_or(key);
                let text = data
                    .get(key)
                    .ok_or_else(|| format!("ConfigMap {name} has no key {key}"))?;
                write(&here.join(path), text)?;
            }
        }
        None => {
            for (key, text) in data {
                write(&here.join(key), text)?;
            }
        }
    }
    Ok(())
}

/// Writes a downwardAPI volume source's items into `here`.
fn write_downward(
    here: &Path,
    source: &Value,
    pod: &Value,
    facts: &PodFacts,
) -> Result<(), String> {
    for item in source["items"].as_array().into_iter().flatten() {
        let file = field(item, "/path").ok_or("downwardAPI item without a path")?;
        let text = match field(item, "/fieldRef/fieldPath") {
            Some("metadata.labels") => {
                downward_file(pod.pointer("/metadata/labels").and_then(Value::as_object))
            }
            Some("metadata.annotations") => downward_file(
                pod.pointer("/metadata/annotations")
                    .and_then(Value::as_object),
            ),
            Some(path) => field_ref(pod, facts, path)?,
            None => return Err(format!("downwardAPI item {item} not supported")),
        };
        write(&here.join(file), &text)?;
    }
    Ok(())
}

/// Makes a directory under `dir` for every volume `container` mounts, with the files the
/// kubelet would put there (ConfigMaps from `sources`, the token, downward-API files; the API
/// server's own `kube-api-access-*` volume needs the `kube-root-ca.crt` ConfigMap); returns
/// (directory, mount path) pairs.
pub fn materialize_volumes(
    pod: &Value,
    container: &Value,
    facts: &PodFacts,
    sources: &VolumeSources,
    dir: &Path,
) -> Result<Vec<(PathBuf, String)>, String> {
    let volumes = pod.pointer("/spec/volumes").and_then(Value::as_array);
    let mut mounts = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = field(mount, "/name").ok_or("volumeMount without a name")?;
        let path = field(mount, "/mountPath").ok_or("volumeMount without a mountPath")?;
        let volume = volumes
            .into_iter()
            .flatten()
            .find(|v| field(v, "/name") == Some(name))
            .ok_or_else(|| format!("volumeMount {name}: no such volume"))?;
        let here = dir.join(name);
        std::fs::create_dir_all(&here).map_err(|e| format!("{}: {e}", here.display()))?;
        let in_volume = |e: String| format!("volume {name}: {e}");
        let projected = volume
            .pointer("/projected/sources")
            .and_then(Value::as_array);
        let parts: Vec<&Value> = match projected {
            Some(list) => list.iter().collect(),
            None => vec![volume],
        };
        for part in parts {
            if let Some(source) = part.get("configMap") {
                write_config_map(&here, source, sources).map_err(in_volume)?;
            } else if let Some(source) = part.get("downwardAPI") {
                write_downward(&here, source, pod, facts).map_err(in_volume)?;
            } else if let Some(file) = field(part, "/serviceAccountToken/path") {
                write(&here.join(file), &sources.token)?;
            } else if part.get("emptyDir").is_none() {
                return Err(in_volume(format!("source not supported: {part}")));
            }
        }
        mounts.push((here, path.to_string()));
    }
    Ok(mounts)
}

/// A `sh` script for a private mount namespace (`unshare --mount --propagation private sh -c
/// SCRIPT sh PROGRAM ARGS...`): copy-on-write overlays over the top folders of the mount paths
/// (so mount points can be made without touching the host's), each volume bound at its path,
/// `hosts` bound over `/etc/hosts`, then `exec` of the program as `uid:gid`. `scratch` holds
/// the overlays' upper layers.
pub fn mount_script(
    mounts: &[(PathBuf, String)],
    hosts: &Path,
    scratch: &Path,
    uid: u32,
) -> Result<String, String> {
    let quote = |text: &str| format!("'{}'", text.replace('\'', "'\\''"));
    let mut tops: Vec<String> = mounts
        .iter()
        .map(|(_, path)| path.as_str())
        .chain(["/etc/hosts"])
        .filter_map(|path| path.split('/').nth(1))
        .map(str::to_string)
        .collect();
    // /var/run is a link to /run on current systems: mounts under it land in /run.
    tops.push("run".into());
    tops.sort();
    tops.dedup();
    let mut script = String::from("set -e\n");
    for top in &tops {
        let (upper, work) = (
            scratch.join(top).join("upper"),
            scratch.join(top).join("work"),
        );
        for dir in [&upper, &work] {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        script.push_str(&format!(
            "mount -t overlay overlay -o {} /{top}\n",
            quote(&format!(
                "lowerdir=/{top},upperdir={},workdir={}",
                upper.display(),
                work.display()
            ))
        ));
    }
    for (dir, path) in mounts {
        script.push_str(&format!(
            "mkdir -p {path} && mount --bind {} {path}\n",
            quote(&dir.to_string_lossy()),
            path = quote(path)
        ));
    }
    script.push_str(&format!(
        "mount --bind {} /etc/hosts\n",
        quote(&hosts.to_string_lossy())
    ));
    script.push_str(&format!(
        "cd /\nexec setpriv --reuid={uid} --regid={uid} --clear-groups \"$@\"\n"
    ));
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expansion_follows_the_kubelet() {
        let env = vec![("POD_NAMESPACE".to_string(), "shop".to_string())];
        assert_eq!(
            expand("$(POD_NAMESPACE).svc.cluster.local", &env),
            "shop.svc.cluster.local"
        );
        assert_eq!(
            expand("$$(POD_NAMESPACE) $(NOPE)", &env),
            "$(POD_NAMESPACE) $(NOPE)"
        );
    }

    #[test]
    fn env_fills_field_refs_and_resources() {
        let pod = json!({"metadata": {"labels": {"app": "web"}}, "spec": {}});
        let container = json!({"env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}}},
            {"name": "DOMAIN", "value": "$(POD_NAME).x"},
        ]});
        let facts = PodFacts {
            name: "web-1".into(),
            namespace: "shop".into(),
            pod_ip: "198.18.0.2".into(),
            host_ip: "198.18.0.1".into(),
            node_name: "node-a".into(),
            service_account: "default".into(),
            node_cpus: 2,
        };
        let env = container_env(&pod, &container, &facts).expect("env");
        let values: Vec<&str> = env.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["web-1", "web", "default", "2", "web-1.x"]);
    }

    #[test]
    fn downward_files_quote_values() {
        let labels = json!({"b": "say \"hi\"", "a": "x"});
        assert_eq!(
            downward_file(labels.as_object()),
            "a=\"x\"\nb=\"say \\\"hi\\\"\""
        );
    }
}
