//! Lateen's injected objects: the `lateen-init` capture container, the `lateen-proxy` sidecar
//! and their volumes, in the classic layout of Istio's injected pod (sidecar in `containers`).
//! Built in code from [`ProxySettings`]; nothing here looks at the user's pod.

use serde_json::{Map, Value, json};

use crate::annotations::InterceptionMode;
use crate::{INIT_CONTAINER, PROXY_CONTAINER};

/// The proxy's user and group, which the capture exempts from redirection.
pub const PROXY_UID: u32 = 1337;
/// Envoy-style Prometheus port of the proxy, and the health port behind `/healthz/ready`.
pub const PROMETHEUS_PORT: u16 = 15090;
pub const HEALTH_PORT: u16 = 15021;
pub const OUTBOUND_PORT: u16 = 15001;
pub const INBOUND_PORT: u16 = 15006;

/// Volume names the injector adds (recorded in `sidecar.istio.io/status`).
pub const VOLUMES: [&str; 8] = [
    "workload-socket",
    "credential-socket",
    "workload-certs",
    "lateen-proxy-config",
    "istio-data",
    "istio-podinfo",
    "istio-token",
    "istiod-ca-cert",
];

/// Everything the injected containers depend on, resolved from values, mesh config and
/// annotations.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub image: String,
    pub discovery_address: String,
    pub status_port: u16,
    pub interception: InterceptionMode,
    pub proxy_metadata: Vec<(String, String)>,
    /// `PROXY_CONFIG`: the mesh's defaultConfig merged with `proxy.istio.io/config`, as JSON.
    pub proxy_config_json: String,
    pub resources: Map<String, Value>,
    pub log_level: String,
    pub component_log_level: String,
    pub cluster_domain: String,
    pub capture: CaptureSettings,
    pub readiness_initial_delay: u32,
    pub readiness_period: u32,
    pub readiness_failure_threshold: u32,
    pub trust_domain: String,
    pub mesh_id: String,
    pub cluster_id: String,
    pub network: String,
    /// Kubernetes native sidecar layout (proxy as a restartable init container).
    pub native_sidecar: bool,
    /// Classic layout: start the proxy first and hold the app until it is ready.
    pub hold_application: bool,
}

/// The traffic capture flags (istio-iptables names).
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    pub include_ip_ranges: String,
    pub exclude_ip_ranges: String,
    pub include_inbound_ports: String,
    pub exclude_inbound_ports: String,
    pub include_outbound_ports: String,
    pub exclude_outbound_ports: String,
}

/// Joins a comma list without blanks (annotations are often written `1, 2, 3`).
fn tidy(list: &str) -> String {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

fn tidy_or_star(list: &str) -> String {
    if list.trim() == "*" {
        "*".into()
    } else {
        tidy(list)
    }
}

/// `lateen-proxy capture` arguments, as Istio's `istio-iptables` flags.
pub fn capture_args(s: &ProxySettings) -> Vec<String> {
    let c = &s.capture;
    let mut inbound_excludes = vec![PROMETHEUS_PORT.to_string(), HEALTH_PORT.to_string()];
    inbound_excludes.extend(
        tidy(&c.exclude_inbound_ports)
            .split(',')
            .filter(|p| !p.is_empty())
            .map(String::from),
    );
    if s.status_port != 0 && !inbound_excludes.contains(&s.status_port.to_string()) {
        inbound_excludes.push(s.status_port.to_string());
    }
    let mut args: Vec<String> = vec![
        "capture".into(),
        "-p".into(),
        OUTBOUND_PORT.to_string(),
        "-z".into(),
        INBOUND_PORT.to_string(),
        "-u".into(),
        PROXY_UID.to_string(),
        "-m".into(),
        s.interception.as_str().into(),
        "-i".into(),
        tidy_or_star(&c.include_ip_ranges),
        "-x".into(),
        tidy(&c.exclude_ip_ranges),
        "-b".into(),
        tidy_or_star(&c.include_inbound_ports),
        "-d".into(),
        inbound_excludes.join(","),
    ];
    if !tidy(&c.include_outbound_ports).is_empty() {
        args.extend(["-q".into(), tidy(&c.include_outbound_ports)]);
    }
    if !tidy(&c.exclude_outbound_ports).is_empty() {
        args.extend(["-o".into(), tidy(&c.exclude_outbound_ports)]);
    }
    args
}

fn metadata_env(s: &ProxySettings) -> Vec<Value> {
    s.proxy_metadata
        .iter()
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect()
}

/// The init container that installs the capture rules (needs NET_ADMIN/NET_RAW, runs as root).
pub fn init_container(s: &ProxySettings) -> Value {
    let mut c = json!({
        "name": INIT_CONTAINER,
        "image": s.image,
        "args": capture_args(s),
        "resources": s.resources,
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": false,
            "runAsGroup": 0,
            "runAsNonRoot": false,
            "runAsUser": 0,
        },
    });
    let env = metadata_env(s);
    if !env.is_empty() {
        c["env"] = Value::Array(env);
    }
    c
}

fn field_env(name: &str, field: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}})
}

fn value_env(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

/// Per-pod facts the sidecar's environment carries.
#[derive(Debug, Clone, Default)]
pub struct PodEnv {
    pub pod_ports_json: String,
    pub app_containers: String,
    pub workload_name: String,
    pub owner: String,
    pub prometheus_annotations: Option<String>,
    pub app_probers: Option<String>,
}

/// The `lateen-proxy` sidecar container.
pub fn sidecar_container(s: &ProxySettings, pod: &PodEnv) -> Value {
    let mesh_id = if s.mesh_id.is_empty() {
        &s.trust_domain
    } else {
        &s.mesh_id
    };
    let mut env = vec![
        value_env("CA_ADDR", &s.discovery_address),
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("INSTANCE_IP", "status.podIP"),
        field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        field_env("HOST_IP", "status.hostIP"),
        json!({"name": "ISTIO_CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}}}),
        value_env("PROXY_CONFIG", &s.proxy_config_json),
        value_env("ISTIO_META_POD_PORTS", &pod.pod_ports_json),
        value_env("ISTIO_META_APP_CONTAINERS", &pod.app_containers),
        value_env("ISTIO_META_CLUSTER_ID", &s.cluster_id),
        field_env("ISTIO_META_NODE_NAME", "spec.nodeName"),
        value_env("ISTIO_META_INTERCEPTION_MODE", s.interception.as_str()),
    ];
    if !s.network.is_empty() {
        env.push(value_env("ISTIO_META_NETWORK", &s.network));
    }
    env.extend([
        value_env("ISTIO_META_WORKLOAD_NAME", &pod.workload_name),
        value_env("ISTIO_META_OWNER", &pod.owner),
        value_env("ISTIO_META_MESH_ID", mesh_id),
        value_env("TRUST_DOMAIN", &s.trust_domain),
    ]);
    env.extend(metadata_env(s));
    if let Some(prom) = &pod.prometheus_annotations {
        env.push(value_env("ISTIO_PROMETHEUS_ANNOTATIONS", prom));
    }
    if let Some(probers) = &pod.app_probers {
        env.push(value_env("ISTIO_KUBE_APP_PROBERS", probers));
    }

    let mut security = json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "privileged": false,
        "readOnlyRootFilesystem": true,
        "runAsGroup": PROXY_UID,
        "runAsNonRoot": true,
        "runAsUser": PROXY_UID,
    });
    if s.interception == InterceptionMode::Tproxy {
        // TPROXY needs the proxy itself to bind transparent sockets.
        security["capabilities"]["add"] = json!(["NET_ADMIN"]);
        security["runAsNonRoot"] = json!(false);
    }

    let mut c = json!({
        "name": PROXY_CONTAINER,
        "image": s.image,
        "args": [
            "sidecar",
            "--discovery-address", s.discovery_address,
            "--domain", format!("$(POD_NAMESPACE).svc.{}", s.cluster_domain),
            format!("--proxyLogLevel={}", s.log_level),
            format!("--proxyComponentLogLevel={}", s.component_log_level),
            "--log_output_level=default:info",
        ],
        "env": env,
        "ports": [{"containerPort": PROMETHEUS_PORT, "name": "http-envoy-prom", "protocol": "TCP"}],
        "resources": s.resources,
        "securityContext": security,
        "volumeMounts": [
            {"mountPath": "/var/run/secrets/workload-spiffe-uds", "name": "workload-socket"},
            {"mountPath": "/var/run/secrets/credential-uds", "name": "credential-socket"},
            {"mountPath": "/var/run/secrets/workload-spiffe-credentials", "name": "workload-certs"},
            {"mountPath": "/var/run/secrets/istio", "name": "istiod-ca-cert"},
            {"mountPath": "/var/lib/istio/data", "name": "istio-data"},
            {"mountPath": "/etc/istio/proxy", "name": "lateen-proxy-config"},
            {"mountPath": "/var/run/secrets/tokens", "name": "istio-token"},
            {"mountPath": "/etc/istio/pod", "name": "istio-podinfo"},
        ],
    });
    if s.status_port != 0 {
        // The agent's status port, where the prometheus.io annotations point (merged metrics).
        if let Some(args) = c["args"].as_array_mut() {
            args.extend([
                json!("--status-address"),
                json!(format!("0.0.0.0:{}", s.status_port)),
            ]);
        }
        let mut readiness = json!({
            "failureThreshold": s.readiness_failure_threshold,
            "httpGet": {"path": "/healthz/ready", "port": HEALTH_PORT},
            "periodSeconds": s.readiness_period,
            "timeoutSeconds": 3,
        });
        if s.readiness_initial_delay > 0 {
            readiness["initialDelaySeconds"] = json!(s.readiness_initial_delay);
        }
        c["readinessProbe"] = readiness;
        c["startupProbe"] = json!({
            "failureThreshold": 600,
            "httpGet": {"path": "/healthz/ready", "port": HEALTH_PORT},
            "periodSeconds": 1,
            "timeoutSeconds": 3,
        });
    }
    c
}

/// The volumes the sidecar mounts, in [`VOLUMES`] order.
pub fn volumes() -> Vec<Value> {
    vec![
        json!({"name": "workload-socket", "emptyDir": {}}),
        json!({"name": "credential-socket", "emptyDir": {}}),
        json!({"name": "workload-certs", "emptyDir": {}}),
        json!({"name": "lateen-proxy-config", "emptyDir": {"medium": "Memory"}}),
        json!({"name": "istio-data", "emptyDir": {}}),
        json!({"name": "istio-podinfo", "downwardAPI": {"items": [
            {"fieldRef": {"fieldPath": "metadata.labels"}, "path": "labels"},
            {"fieldRef": {"fieldPath": "metadata.annotations"}, "path": "annotations"},
        ]}}),
        json!({"name": "istio-token", "projected": {"sources": [
            {"serviceAccountToken": {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}},
        ]}}),
        json!({"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}}),
    ]
}
