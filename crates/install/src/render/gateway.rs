//! Ingress and egress gateways: a Deployment running `lateen-proxy router`, its Service,
//! ServiceAccount and secret-reading Role, PDB and HPA.

use serde_json::{Map, Value, json};

use super::{
    Context, downward_env, hpa, merged_env, pdb, resources_json, restricted_container_security,
    string_map,
};
use crate::error::Result;
use crate::operator::{GatewayComponent, ServicePort};
use crate::scalar::IntOrString;

/// Health port of every proxy (`/healthz/ready`).
const STATUS_PORT: i64 = 15021;
/// Prometheus port of every proxy.
const METRICS_PORT: i64 = 15090;

pub(super) fn render(
    ctx: &Context,
    gateway: &GatewayComponent,
    ingress: bool,
    component: &str,
) -> Result<Vec<Value>> {
    let name = gateway.name.as_str();
    let namespace = gateway
        .namespace
        .as_ref()
        .map_or(ctx.namespace.as_str(), |n| n.as_str());
    let k8s = gateway.k8s.as_ref();

    // Istio labels the default gateways `app: istio-ingressgateway, istio: ingressgateway`; the
    // `label` map of the component adds to or replaces these.
    let mut labels = Map::new();
    labels.insert("app".into(), json!(name));
    labels.insert(
        "istio".into(),
        json!(name.strip_prefix("istio-").unwrap_or(name)),
    );
    labels.extend(string_map(gateway.label.as_ref()));
    let selector = labels.clone();
    labels.insert("istio.io/rev".into(), json!(ctx.rev_label()));

    let gateway_values = ctx
        .values()
        .and_then(|v| v.gateways.as_ref())
        .and_then(|g| g.get(name))
        .map(|g| &g.known);
    let autoscale = gateway_values
        .and_then(|g| g.autoscale_enabled)
        .is_none_or(|b| b.0);
    let ports = service_ports(
        gateway,
        ingress,
        gateway_values.and_then(|g| g.ports.as_ref()),
    );

    let mut objects = super::rbac::gateway(name, namespace);
    objects.push(deployment(
        ctx, gateway, namespace, &labels, &selector, &ports, autoscale, component,
    ));
    objects.push(service(
        gateway, namespace, &labels, &selector, &ports, ingress,
    ));
    objects.push(pdb(
        name,
        namespace,
        &labels,
        &selector,
        k8s.and_then(|k| k.pod_disruption_budget.as_ref()),
    )?);
    if autoscale {
        objects.push(hpa(
            name,
            namespace,
            &labels,
            k8s.and_then(|k| k.hpa_spec.as_ref()),
        ));
    }
    Ok(objects)
}

fn service_ports(
    gateway: &GatewayComponent,
    ingress: bool,
    from_values: Option<&Vec<ServicePort>>,
) -> Vec<ServicePort> {
    if let Some(ports) = gateway
        .k8s
        .as_ref()
        .and_then(|k| k.service.as_ref())
        .and_then(|s| s.ports.clone())
    {
        return ports;
    }
    if let Some(ports) = from_values {
        return ports.clone();
    }
    let port = |name: &str, port: i64, target: i64| ServicePort {
        name: Some(crate::scalar::Str(name.to_owned())),
        port: crate::scalar::Int(port),
        target_port: Some(IntOrString::Int(target)),
        protocol: Some(crate::scalar::Str("TCP".to_owned())),
        ..ServicePort::default()
    };
    let mut ports = Vec::new();
    if ingress {
        ports.push(port("status-port", STATUS_PORT, STATUS_PORT));
    }
    ports.push(port("http2", 80, 8080));
    ports.push(port("https", 443, 8443));
    ports
}

#[allow(clippy::too_many_arguments)]
fn deployment(
    ctx: &Context,
    gateway: &GatewayComponent,
    namespace: &str,
    labels: &Map<String, Value>,
    selector: &Map<String, Value>,
    ports: &[ServicePort],
    autoscale: bool,
    component: &str,
) -> Value {
    let name = gateway.name.as_str();
    let k8s = gateway.k8s.as_ref();
    let mut container_ports: Vec<Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for port in ports {
        let target = match &port.target_port {
            Some(IntOrString::Int(target)) => *target,
            Some(_) => continue,
            None => port.port.0,
        };
        if seen.insert(target) {
            let protocol = port.protocol.as_ref().map_or("TCP", |p| p.as_str());
            container_ports.push(json!({"containerPort": target, "protocol": protocol}));
        }
    }
    for (port, port_name) in [
        (STATUS_PORT, "status-port"),
        (METRICS_PORT, "http-envoy-prom"),
    ] {
        if seen.insert(port) {
            container_ports
                .push(json!({"containerPort": port, "protocol": "TCP", "name": port_name}));
        }
    }
    let mut env = downward_env();
    env.extend([
        json!({"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}}),
        json!({"name": "HOST_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.hostIP"}}}),
        json!({"name": "PILOT_CERT_PROVIDER", "value": "istiod"}),
        json!({"name": "CA_ADDR", "value": ctx.discovery_address()}),
        json!({"name": "ISTIO_META_WORKLOAD_NAME", "value": name}),
        json!({"name": "ISTIO_META_OWNER", "value": format!("kubernetes://apis/apps/v1/namespaces/{namespace}/deployments/{name}")}),
        json!({"name": "ISTIO_META_CLUSTER_ID", "value": ctx.cluster_id()}),
        json!({"name": "ISTIO_META_ROUTER_MODE", "value": "standard"}),
        json!({"name": "LATEEN_GATEWAY_COMPONENT", "value": component}),
    ]);
    let env = merged_env(env, k8s.and_then(|k| k.env.as_ref()));
    let readiness = k8s
        .and_then(|k| k.readiness_probe.clone())
        .map(Value::Object)
        .unwrap_or_else(|| {
            json!({
                "httpGet": {"path": "/healthz/ready", "port": STATUS_PORT, "scheme": "HTTP"},
                "initialDelaySeconds": 1,
                "periodSeconds": 2,
                "failureThreshold": 30,
                "timeoutSeconds": 1,
            })
        });
    let mut mounts = vec![
        json!({"name": "workload-socket", "mountPath": "/var/run/secrets/workload-spiffe-uds"}),
        json!({"name": "workload-certs", "mountPath": "/var/run/secrets/workload-spiffe-credentials"}),
        json!({"name": "istio-envoy", "mountPath": "/etc/istio/proxy"}),
        json!({"name": "istio-data", "mountPath": "/var/lib/istio/data"}),
        json!({"name": "podinfo", "mountPath": "/etc/istio/pod"}),
        json!({"name": "istio-token", "mountPath": "/var/run/secrets/tokens", "readOnly": true}),
        json!({"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio", "readOnly": true}),
    ];
    mounts.extend(
        k8s.and_then(|k| k.volume_mounts.clone())
            .into_iter()
            .flatten()
            .map(Value::Object),
    );
    let proxy_log_level = ctx
        .global()
        .and_then(|g| g.proxy.as_ref())
        .and_then(|p| p.known.log_level.as_ref())
        .map_or("warning".to_owned(), |l| l.0.clone());
    let container = json!({
        "name": "istio-proxy",
        "image": ctx.image("proxy", gateway.hub.as_ref().map(|s| s.as_str()), gateway.tag.as_ref().map(|s| s.as_str())),
        "imagePullPolicy": ctx.image_pull_policy(k8s),
        "command": ["lateen-proxy"],
        "args": [
            "router",
            "--domain", "$(POD_NAMESPACE).svc.cluster.local",
            format!("--proxyLogLevel={proxy_log_level}"),
            "--log_output_level=default:info",
        ],
        "ports": container_ports,
        "readinessProbe": readiness,
        "env": env,
        "resources": resources_json(k8s.and_then(|k| k.resources.as_ref())),
        "securityContext": restricted_container_security(),
        "volumeMounts": mounts,
    });
    let mut annotations = Map::new();
    annotations.insert("prometheus.io/port".into(), json!(METRICS_PORT.to_string()));
    annotations.insert("prometheus.io/scrape".into(), json!("true"));
    annotations.insert("prometheus.io/path".into(), json!("/stats/prometheus"));
    annotations.insert("sidecar.istio.io/inject".into(), json!("false"));
    annotations.extend(string_map(k8s.and_then(|k| k.pod_annotations.as_ref())));
    let mut pod_labels = labels.clone();
    pod_labels.insert("sidecar.istio.io/inject".into(), json!("false"));
    pod_labels.insert("service.istio.io/canonical-name".into(), json!(name));
    let pod_spec = json!({
        "serviceAccountName": format!("{name}-service-account"),
        // Binding ports 80 and 443 without root or capabilities.
        "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
        "containers": [container],
        "volumes": [
            {"name": "workload-socket", "emptyDir": {}},
            {"name": "workload-certs", "emptyDir": {}},
            {"name": "istio-envoy", "emptyDir": {}},
            {"name": "istio-data", "emptyDir": {}},
            {"name": "podinfo", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
            ]}},
            {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
            {"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}},
        ],
    });
    super::deployment(
        ctx,
        super::DeploymentParts {
            name,
            namespace,
            labels,
            selector,
            pod_labels,
            annotations,
            pod_spec,
        },
        k8s,
        autoscale,
    )
}

fn service(
    gateway: &GatewayComponent,
    namespace: &str,
    labels: &Map<String, Value>,
    selector: &Map<String, Value>,
    ports: &[ServicePort],
    ingress: bool,
) -> Value {
    let settings = gateway.k8s.as_ref().and_then(|k| k.service.as_ref());
    let default_type = if ingress { "LoadBalancer" } else { "ClusterIP" };
    let mut spec =
        serde_json::to_value(settings.cloned().unwrap_or_default()).unwrap_or_else(|_| json!({}));
    spec["type"] = json!(
        settings
            .and_then(|s| s.service_type.as_ref())
            .map_or(default_type, |t| t.as_str())
    );
    spec["selector"] = json!(selector);
    spec["ports"] = serde_json::to_value(ports).unwrap_or_else(|_| json!([]));
    let annotations = string_map(
        gateway
            .k8s
            .as_ref()
            .and_then(|k| k.service_annotations.as_ref()),
    );
    let mut metadata =
        json!({"name": gateway.name.as_str(), "namespace": namespace, "labels": labels});
    if !annotations.is_empty() {
        metadata["annotations"] = Value::Object(annotations);
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec})
}
