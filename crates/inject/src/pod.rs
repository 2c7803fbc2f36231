//! The pod spec mutation: given a pod-like object (`metadata` + `spec`: a Pod or a workload's pod
//! template), adds the capture init container, the sidecar, volumes, labels and annotations.
//! The caller has already decided that the pod is to be injected (see [`crate::decision`]).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::annotations::{self, InterceptionMode, PodOverrides};
use crate::config::InjectConfig;
use crate::template::{self, CaptureSettings, PodEnv, ProxySettings};
use crate::{
    INIT_CONTAINER, ISTIO_INIT_CONTAINER, ISTIO_PROXY_CONTAINER, InjectError, PROXY_CONTAINER,
    STATUS_ANNOTATION, probes,
};

/// Which workload a pod belongs to, for the sidecar's identity metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadMeta {
    pub name: String,
    pub namespace: String,
    /// `kubernetes://apis/<apiVersion>/namespaces/<ns>/<resource>/<name>`.
    pub owner: String,
}

/// The `sidecar.istio.io/status` annotation (field order as Istio writes it).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SidecarStatus<'a> {
    init_containers: Vec<&'a str>,
    containers: Option<Vec<&'a str>>,
    volumes: Vec<&'a str>,
    image_pull_secrets: Option<Vec<&'a str>>,
    revision: &'a str,
}

/// Labels (or annotations) of a pod-like object as a string map; `path` names it in errors.
pub fn string_map(
    meta: Option<&Value>,
    key: &str,
    path: &str,
) -> Result<BTreeMap<String, String>, InjectError> {
    let map = annotations::string_map(meta.and_then(|m| m.get(key)), &format!("{path}.{key}"))?;
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
        .collect())
}

/// Adds the sidecar to `podlike` (`{metadata, spec}`) at `path` (e.g. `spec.template`).
pub fn inject(
    podlike: &mut Value,
    workload: &WorkloadMeta,
    cfg: &InjectConfig,
    path: &str,
) -> Result<(), InjectError> {
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    };
    let Some(obj) = podlike.as_object_mut() else {
        return Err(InjectError::field(path, "expected a mapping"));
    };
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    let annos = annotations::string_map(
        meta.get("annotations"),
        &format!("{prefix}metadata.annotations"),
    )?;
    let labels = string_map(Some(meta), "labels", &format!("{prefix}metadata"))?;
    let overrides = annotations::parse(&annos)
        .map_err(|e| InjectError::field(format!("{prefix}metadata.annotations"), e.to_string()))?;
    let settings = resolve_settings(cfg, &overrides)?;

    let spec_path = format!("{prefix}spec");
    let spec = obj
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| InjectError::field(&spec_path, "required mapping is missing"))?;
    let containers_path = format!("{spec_path}.containers");
    let mut containers = take_list(spec, "containers", &containers_path)?;
    let mut init_containers = take_list(
        spec,
        "initContainers",
        &format!("{spec_path}.initContainers"),
    )?;
    for (i, c) in containers.iter().enumerate() {
        if c.get("name").and_then(Value::as_str).is_none() {
            return Err(InjectError::field(
                format!("{containers_path}[{i}].name"),
                "container name is required",
            ));
        }
    }
    let proxy_names = [PROXY_CONTAINER, ISTIO_PROXY_CONTAINER];
    let user_proxy = take_named(&mut containers, &proxy_names)
        .or_else(|| take_named(&mut init_containers, &proxy_names));
    let user_init = take_named(
        &mut init_containers,
        &[INIT_CONTAINER, ISTIO_INIT_CONTAINER],
    );
    if containers.is_empty() {
        return Err(InjectError::field(
            &containers_path,
            "the pod has no containers",
        ));
    }

    let rewrite = overrides
        .rewrite_probes
        .unwrap_or(cfg.values.rewrite_app_http_probe)
        && settings.status_port != 0;
    let probers = if rewrite {
        probes::rewrite(&mut containers, settings.status_port, &containers_path)?
    } else {
        Map::new()
    };

    let app_names: Vec<String> = containers
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .map(String::from)
        .collect();
    let pod_ports: Vec<Value> = containers
        .iter()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .cloned()
        .collect();
    let mut meta_annotations = annos.clone();
    let prometheus = merge_prometheus(cfg, &overrides, &mut meta_annotations, settings.status_port);
    let pod_env = PodEnv {
        pod_ports_json: Value::Array(pod_ports).to_string(),
        app_containers: app_names.join(","),
        workload_name: workload.name.clone(),
        owner: workload.owner.clone(),
        prometheus_annotations: prometheus,
        app_probers: (!probers.is_empty()).then(|| Value::Object(probers).to_string()),
    };

    let mut sidecar = template::sidecar_container(&settings, &pod_env);
    if let Some(user) = user_proxy {
        merge_container(&mut sidecar, user);
    }
    let init = (settings.interception != InterceptionMode::None).then(|| {
        let mut init = template::init_container(&settings);
        if let Some(user) = user_init {
            merge_container(&mut init, user);
        }
        init
    });
    let mut status_inits = Vec::new();
    let mut status_containers = Vec::new();
    if settings.native_sidecar {
        // Native sidecar (Kubernetes >= 1.29): the proxy is a restartable init container placed
        // first, after the capture, so the app's own init containers already run in the mesh.
        sidecar["restartPolicy"] = json!("Always");
        let mut front = Vec::new();
        if let Some(init) = init {
            front.push(init);
            status_inits.push(INIT_CONTAINER);
        }
        front.push(sidecar);
        status_inits.push(PROXY_CONTAINER);
        init_containers.splice(0..0, front);
    } else {
        if let Some(init) = init {
            init_containers.push(init);
            status_inits.push(INIT_CONTAINER);
        }
        if settings.hold_application {
            // The kubelet starts containers in order and waits for postStart: the app starts
            // only once the proxy is ready.
            let wait = json!({"exec": {"command": ["lateen-proxy", "wait"]}});
            match sidecar.get_mut("lifecycle").and_then(Value::as_object_mut) {
                Some(lifecycle) => {
                    lifecycle.insert("postStart".into(), wait);
                }
                None => sidecar["lifecycle"] = json!({ "postStart": wait }),
            }
            containers.insert(0, sidecar);
        } else {
            containers.push(sidecar);
        }
        status_containers.push(PROXY_CONTAINER);
    }
    spec.insert("containers".into(), Value::Array(containers));
    if !init_containers.is_empty() {
        spec.insert("initContainers".into(), Value::Array(init_containers));
    }
    add_volumes(spec, &format!("{spec_path}.volumes"))?;
    let pull_secrets = add_pull_secrets(
        spec,
        &cfg.values.image_pull_secrets,
        &format!("{spec_path}.imagePullSecrets"),
    )?;

    let status = SidecarStatus {
        init_containers: status_inits,
        containers: (!status_containers.is_empty()).then_some(status_containers),
        volumes: template::VOLUMES.to_vec(),
        image_pull_secrets: (!pull_secrets.is_empty())
            .then(|| pull_secrets.iter().map(String::as_str).collect()),
        revision: cfg.effective_revision(),
    };
    let status_json =
        serde_json::to_string(&status).map_err(|e| InjectError::field(path, e.to_string()))?;
    meta_annotations.insert(
        annotations::REVISION.into(),
        json!(cfg.effective_revision()),
    );
    if let Some(first) = app_names.first() {
        meta_annotations
            .entry("kubectl.kubernetes.io/default-container")
            .or_insert_with(|| json!(first));
        meta_annotations
            .entry("kubectl.kubernetes.io/default-logs-container")
            .or_insert_with(|| json!(first));
    }
    for (k, v) in &cfg.injected_annotations {
        meta_annotations.insert(k.clone(), json!(v));
    }
    meta_annotations.insert(STATUS_ANNOTATION.into(), json!(status_json));

    let meta = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| InjectError::field(format!("{prefix}metadata"), "expected a mapping"))?;
    meta.insert("annotations".into(), Value::Object(meta_annotations));
    let mut new_labels: Map<String, Value> =
        labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    new_labels.insert("security.istio.io/tlsMode".into(), json!("istio"));
    let canonical_name = first_label(
        &labels,
        &[
            "service.istio.io/canonical-name",
            "app.kubernetes.io/name",
            "app",
        ],
    )
    .unwrap_or(&workload.name);
    let canonical_rev = first_label(
        &labels,
        &[
            "service.istio.io/canonical-revision",
            "app.kubernetes.io/version",
            "version",
        ],
    )
    .unwrap_or("latest");
    new_labels.insert(
        "service.istio.io/canonical-name".into(),
        json!(canonical_name),
    );
    new_labels.insert(
        "service.istio.io/canonical-revision".into(),
        json!(canonical_rev),
    );
    meta.insert("labels".into(), Value::Object(new_labels));
    Ok(())
}

fn first_label<'a>(labels: &'a BTreeMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| labels.get(*k))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Resolves values, mesh config and annotations into the injected containers' settings.
fn resolve_settings(cfg: &InjectConfig, ov: &PodOverrides) -> Result<ProxySettings, InjectError> {
    let values = &cfg.values;
    let mut proxy_config = cfg.mesh.default_config.clone();
    if let Some(from_pod) = &ov.proxy_config {
        deep_merge(&mut proxy_config, from_pod);
    }
    let pc_err = |field: &str, reason: &str| {
        let value = proxy_config
            .get(field)
            .map(Value::to_string)
            .unwrap_or_default();
        InjectError::annotation(
            annotations::PROXY_CONFIG,
            &value,
            format!("{field}: {reason}"),
        )
    };
    let discovery_address = match proxy_config.get("discoveryAddress") {
        None => cfg.default_discovery_address(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err(pc_err("discoveryAddress", "expected host:port")),
    };
    let pc_status_port = match proxy_config.get("statusPort") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| pc_err("statusPort", "expected a port number"))?,
        ),
    };
    let pc_interception = match proxy_config.get("interceptionMode").and_then(Value::as_str) {
        None => None,
        Some("REDIRECT") => Some(InterceptionMode::Redirect),
        Some("TPROXY") => Some(InterceptionMode::Tproxy),
        Some("NONE") => Some(InterceptionMode::None),
        Some(_) => {
            return Err(pc_err(
                "interceptionMode",
                "expected one of REDIRECT, TPROXY, NONE",
            ));
        }
    };
    let proxy_metadata = match proxy_config.get("proxyMetadata") {
        None => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(pc_err("proxyMetadata", "values must be strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(pc_err("proxyMetadata", "expected a mapping")),
    };
    let hold_application = match proxy_config.get("holdApplicationUntilProxyStarts") {
        None => values.proxy.hold_application_until_proxy_starts,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(pc_err(
                "holdApplicationUntilProxyStarts",
                "expected true or false",
            ));
        }
    };
    if let Some(status) = ov.status_port {
        proxy_config.insert("statusPort".into(), json!(status));
    }
    let image = ov.proxy_image.clone().unwrap_or_else(|| {
        if values.proxy.image.contains('/') {
            values.proxy.image.clone()
        } else {
            format!("{}/{}:{}", values.hub, values.proxy.image, values.tag)
        }
    });
    let resources = if ov.has_resources() {
        annotated_resources(ov)
    } else {
        values.proxy.resources.clone()
    };
    let pick = |a: &Option<String>, b: &str| a.clone().unwrap_or_else(|| b.to_string());
    Ok(ProxySettings {
        image,
        discovery_address,
        status_port: ov
            .status_port
            .or(pc_status_port)
            .unwrap_or(values.proxy.status_port),
        interception: ov
            .interception_mode
            .or(pc_interception)
            .unwrap_or(InterceptionMode::Redirect),
        proxy_metadata,
        proxy_config_json: format!("{}\n", Value::Object(proxy_config)),
        resources,
        log_level: pick(&ov.log_level, &values.proxy.log_level),
        component_log_level: pick(&ov.component_log_level, &values.proxy.component_log_level),
        cluster_domain: values.proxy.cluster_domain.clone(),
        capture: CaptureSettings {
            include_ip_ranges: pick(
                &ov.include_outbound_ip_ranges,
                &values.proxy.include_ip_ranges,
            ),
            exclude_ip_ranges: pick(
                &ov.exclude_outbound_ip_ranges,
                &values.proxy.exclude_ip_ranges,
            ),
            include_inbound_ports: pick(
                &ov.include_inbound_ports,
                &values.proxy.include_inbound_ports,
            ),
            exclude_inbound_ports: pick(
                &ov.exclude_inbound_ports,
                &values.proxy.exclude_inbound_ports,
            ),
            include_outbound_ports: pick(
                &ov.include_outbound_ports,
                &values.proxy.include_outbound_ports,
            ),
            exclude_outbound_ports: pick(
                &ov.exclude_outbound_ports,
                &values.proxy.exclude_outbound_ports,
            ),
        },
        readiness_initial_delay: ov
            .readiness_initial_delay
            .unwrap_or(values.proxy.readiness_initial_delay_seconds),
        readiness_period: ov
            .readiness_period
            .unwrap_or(values.proxy.readiness_period_seconds),
        readiness_failure_threshold: ov
            .readiness_failure_threshold
            .unwrap_or(values.proxy.readiness_failure_threshold),
        trust_domain: cfg.mesh.trust_domain.clone(),
        mesh_id: values.mesh_id.clone(),
        cluster_id: values.cluster_id.clone(),
        network: values.network.clone(),
        native_sidecar: ov.native_sidecar.unwrap_or(values.native_sidecars),
        hold_application,
    })
}

/// Resource annotations replace the values' resources entirely (as in Istio's template).
fn annotated_resources(ov: &PodOverrides) -> Map<String, Value> {
    let pairs = |cpu: &Option<String>, memory: &Option<String>| -> Map<String, Value> {
        [("cpu", cpu), ("memory", memory)]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), json!(v))))
            .collect()
    };
    let requests = pairs(&ov.proxy_cpu, &ov.proxy_memory);
    let limits = pairs(&ov.proxy_cpu_limit, &ov.proxy_memory_limit);
    let mut out = Map::new();
    if !requests.is_empty() {
        out.insert("requests".into(), Value::Object(requests));
    }
    if !limits.is_empty() {
        out.insert("limits".into(), Value::Object(limits));
    }
    out
}

/// Points Prometheus at the agent's merged metrics; the app's own scrape settings (if any) move
/// to `ISTIO_PROMETHEUS_ANNOTATIONS` so the agent can merge them. Returns that variable's value.
fn merge_prometheus(
    cfg: &InjectConfig,
    ov: &PodOverrides,
    annos: &mut Map<String, Value>,
    status_port: u16,
) -> Option<String> {
    const KEYS: [(&str, &str); 3] = [
        ("scrape", "prometheus.io/scrape"),
        ("path", "prometheus.io/path"),
        ("port", "prometheus.io/port"),
    ];
    let scrape = annos.get("prometheus.io/scrape").and_then(Value::as_str);
    if !cfg.mesh.enable_prometheus_merge
        || ov.merge_metrics == Some(false)
        || scrape == Some("false")
        || status_port == 0
    {
        return None;
    }
    let mut previous = Map::new();
    for (short, key) in KEYS {
        if let Some(v) = annos.get(key) {
            previous.insert(short.into(), v.clone());
        }
    }
    annos.insert("prometheus.io/scrape".into(), json!("true"));
    annos.insert("prometheus.io/port".into(), json!(status_port.to_string()));
    annos.insert("prometheus.io/path".into(), json!("/stats/prometheus"));
    (!previous.is_empty()).then(|| Value::Object(previous).to_string())
}

fn take_list(
    spec: &mut Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Vec<Value>, InjectError> {
    match spec.remove(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            if let Some(i) = items.iter().position(|c| !c.is_object()) {
                return Err(InjectError::field(
                    format!("{path}[{i}]"),
                    "expected a container mapping",
                ));
            }
            Ok(items)
        }
        Some(_) => Err(InjectError::field(path, "expected a list")),
    }
}

/// Removes and returns the container with one of `names` (a user's override of ours).
fn take_named(list: &mut Vec<Value>, names: &[&str]) -> Option<Value> {
    let pos = list.iter().position(|c| {
        c.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| names.contains(&n))
    })?;
    Some(list.remove(pos))
}

/// Overlays the user's pre-declared proxy container on ours: user fields win, mappings merge,
/// `env` and `volumeMounts` merge by name/path; the name stays ours and `image: auto` keeps ours.
fn merge_container(ours: &mut Value, user: Value) {
    let (Some(ours), Value::Object(user)) = (ours.as_object_mut(), user) else {
        return;
    };
    for (key, value) in user {
        match key.as_str() {
            "name" => {}
            "image" if value.as_str() == Some("auto") => {}
            "env" | "volumeMounts" => {
                let id = if key == "env" { "name" } else { "mountPath" };
                let list = ours.entry(key.clone()).or_insert_with(|| json!([]));
                if let (Some(list), Value::Array(items)) = (list.as_array_mut(), value) {
                    for item in items {
                        list.retain(|existing| existing.get(id) != item.get(id));
                        list.push(item);
                    }
                }
            }
            _ => match (ours.get_mut(&key), value) {
                (Some(Value::Object(a)), Value::Object(b)) => deep_merge(a, &b),
                (_, value) => {
                    ours.insert(key, value);
                }
            },
        }
    }
}

fn deep_merge(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => deep_merge(a, b),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Adds the sidecar's volumes, keeping a user's volume of the same name (it overrides ours).
fn add_volumes(spec: &mut Map<String, Value>, path: &str) -> Result<(), InjectError> {
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if volumes.is_null() {
        *volumes = json!([]);
    }
    let list = volumes
        .as_array_mut()
        .ok_or_else(|| InjectError::field(path, "expected a list"))?;
    for vol in template::volumes() {
        if !list.iter().any(|v| v.get("name") == vol.get("name")) {
            list.push(vol);
        }
    }
    Ok(())
}

fn add_pull_secrets(
    spec: &mut Map<String, Value>,
    secrets: &[String],
    path: &str,
) -> Result<Vec<String>, InjectError> {
    if secrets.is_empty() {
        return Ok(Vec::new());
    }
    let list = spec.entry("imagePullSecrets").or_insert_with(|| json!([]));
    if list.is_null() {
        *list = json!([]);
    }
    let list = list
        .as_array_mut()
        .ok_or_else(|| InjectError::field(path, "expected a list"))?;
    for s in secrets {
        if !list
            .iter()
            .any(|v| v.get("name").and_then(Value::as_str) == Some(s))
        {
            list.push(json!({"name": s}));
        }
    }
    Ok(secrets.to_vec())
}
