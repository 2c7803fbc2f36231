//! The control plane: lateend's ConfigMaps, Deployment, Service, PDB and HPA.
//!
//! Ports are Istio's: 15010 plaintext xDS, 15012 xDS and CA over TLS, 15014 monitoring, 15017
//! the webhooks (exposed on Service port 443), and 8080 the debug/readiness port. Readiness is
//! `GET /ready` on 8080, as istiod's, rather than 15021: 15021 is the health port of proxies
//! (sidecars and gateways), and keeping the control plane off it keeps the two apart.

use serde_json::{Map, Value, json};

use super::{
    Context, downward_env, hpa, merged_env, pdb, resources_json, restricted_container_security,
    string_map,
};
use crate::error::{InstallError, Result};
use crate::operator::Component;

/// Port of the control plane's readiness and debug endpoints.
pub const READINESS_PORT: u16 = 8080;

pub(super) fn render(ctx: &Context, pilot: Option<&Component>) -> Result<Vec<Value>> {
    let k8s = pilot.and_then(|p| p.k8s.as_ref());
    let name = ctx.control_plane_name();
    let namespace = &ctx.namespace;
    let mut labels = Map::new();
    labels.insert("app".into(), json!(super::CONTROL_PLANE_NAME));
    labels.insert("istio".into(), json!("pilot"));
    labels.insert("istio.io/rev".into(), json!(ctx.rev_label()));
    let mut selector = Map::new();
    selector.insert("app".into(), json!(super::CONTROL_PLANE_NAME));
    selector.insert("istio.io/rev".into(), json!(ctx.rev_label()));

    let pilot_values = ctx
        .values()
        .and_then(|v| v.pilot.as_ref())
        .map(|p| &p.known);
    let autoscale = pilot_values
        .and_then(|p| p.autoscale_enabled)
        .is_none_or(|b| b.0);
    let trace_sampling = pilot_values
        .and_then(|p| p.trace_sampling)
        .map_or(1.0, |n| n.0);

    let mut objects = vec![mesh_config_map(ctx)?, injector_config_map(ctx)?];
    objects.push(deployment(
        ctx,
        pilot,
        &name,
        &labels,
        &selector,
        autoscale,
        trace_sampling,
    ));
    objects.push(service(ctx, &name, &labels, &selector));
    objects.push(pdb(
        &name,
        namespace,
        &labels,
        &selector,
        k8s.and_then(|k| k.pod_disruption_budget.as_ref()),
    )?);
    if autoscale {
        objects.push(hpa(
            &name,
            namespace,
            &labels,
            k8s.and_then(|k| k.hpa_spec.as_ref()),
        ));
    }
    Ok(objects)
}

/// The mesh config as lateend and the proxies read it, with the defaults filled in.
pub(crate) fn mesh_config(ctx: &Context) -> Result<Value> {
    let mut mesh = match &ctx.iop.spec.mesh_config {
        Some(mesh) => {
            serde_json::to_value(mesh).map_err(|err| InstallError::Serialize(err.to_string()))?
        }
        None => json!({}),
    };
    let defaults = [
        ("rootNamespace", json!(ctx.namespace)),
        ("trustDomain", json!("cluster.local")),
    ];
    for (key, value) in defaults {
        if mesh.get(key).is_none() {
            mesh[key] = value;
        }
    }
    if !mesh["defaultConfig"].is_object() {
        mesh["defaultConfig"] = json!({});
    }
    if mesh["defaultConfig"].get("discoveryAddress").is_none() {
        mesh["defaultConfig"]["discoveryAddress"] = json!(ctx.discovery_address());
    }
    Ok(mesh)
}

fn mesh_config_map(ctx: &Context) -> Result<Value> {
    let mesh = crate::yaml::to_yaml(&mesh_config(ctx)?)?;
    Ok(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": ctx.revisioned("istio"), "namespace": ctx.namespace},
        "data": {"mesh": mesh, "meshNetworks": "networks: {}\n"},
    }))
}

/// The injector's policy (`config`) and the values its template reads (`values`, JSON as in
/// Istio's ConfigMap).
fn injector_config_map(ctx: &Context) -> Result<Value> {
    let injector = ctx
        .values()
        .and_then(|v| v.sidecar_injector_webhook.as_ref())
        .map(|w| &w.known);
    let config = json!({
        "policy": "enabled",
        "alwaysInjectSelector": injector.and_then(|w| w.always_inject_selector.clone()).unwrap_or_default(),
        "neverInjectSelector": injector.and_then(|w| w.never_inject_selector.clone()).unwrap_or_default(),
        "injectedAnnotations": string_map(injector.and_then(|w| w.injected_annotations.as_ref())),
        "defaultTemplates": injector
            .and_then(|w| w.default_templates.as_ref())
            .map(|t| t.iter().map(|s| s.0.clone()).collect::<Vec<_>>())
            .unwrap_or_else(|| vec!["sidecar".to_owned()]),
    });
    let mut values = match &ctx.iop.spec.values {
        Some(values) => {
            serde_json::to_value(values).map_err(|err| InstallError::Serialize(err.to_string()))?
        }
        None => json!({}),
    };
    if !values["global"].is_object() {
        values["global"] = json!({});
    }
    values["global"]["hub"] = json!(ctx.hub);
    values["global"]["tag"] = json!(ctx.tag);
    values["global"]["istioNamespace"] = json!(ctx.namespace);
    values["global"]["caAddress"] = json!(ctx.discovery_address());
    values["revision"] = json!(ctx.revision);
    let values_text = serde_json::to_string_pretty(&values)
        .map_err(|err| InstallError::Serialize(err.to_string()))?;
    Ok(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": ctx.revisioned("istio-sidecar-injector"), "namespace": ctx.namespace},
        "data": {"config": crate::yaml::to_yaml(&config)?, "values": values_text},
    }))
}

/// lateend's arguments: istiod's, as Istio's chart passes them (lateend takes istiod's
/// `discovery` form and flags, so Istio-shaped overlays and `k8s.overlays` patches of these
/// args keep working): `values.global.logAsJson` adds `--log_as_json`, and
/// `values.global.proxy.clusterDomain` is the `--domain`.
fn discovery_args(ctx: &Context) -> Value {
    let global = ctx.global();
    let mut args = vec![
        json!("discovery"),
        json!("--monitoringAddr=:15014"),
        json!("--log_output_level=default:info"),
    ];
    if global.and_then(|g| g.log_as_json).is_some_and(|b| b.0) {
        args.push(json!("--log_as_json"));
    }
    let domain = global
        .and_then(|g| g.proxy.as_ref())
        .and_then(|p| p.known.cluster_domain.as_ref())
        .map_or("cluster.local", |d| d.0.as_str());
    args.extend([
        json!("--domain"),
        json!(domain),
        json!("--keepaliveMaxServerConnectionAge"),
        json!("30m"),
    ]);
    Value::Array(args)
}

fn deployment(
    ctx: &Context,
    pilot: Option<&Component>,
    name: &str,
    labels: &Map<String, Value>,
    selector: &Map<String, Value>,
    autoscale: bool,
    trace_sampling: f64,
) -> Value {
    let k8s = pilot.and_then(|p| p.k8s.as_ref());
    let mut env = downward_env();
    env.extend([
        json!({"name": "REVISION", "value": ctx.rev_label()}),
        json!({"name": "PILOT_CERT_PROVIDER", "value": "istiod"}),
        json!({"name": "CLUSTER_ID", "value": ctx.cluster_id()}),
        json!({"name": "PILOT_TRACE_SAMPLING", "value": trace_sampling.to_string()}),
        json!({"name": "ISTIOD_ADDR", "value": ctx.discovery_address()}),
    ]);
    if let Some(pilot_env) = ctx
        .values()
        .and_then(|v| v.pilot.as_ref())
        .and_then(|p| p.known.env.as_ref())
    {
        for (key, value) in pilot_env {
            env.push(json!({"name": key, "value": value.0}));
        }
    }
    let env = merged_env(env, k8s.and_then(|k| k.env.as_ref()));
    let readiness = k8s
        .and_then(|k| k.readiness_probe.clone())
        .map(Value::Object)
        .unwrap_or_else(|| {
            json!({
                "httpGet": {"path": "/ready", "port": READINESS_PORT},
                "initialDelaySeconds": 1,
                "periodSeconds": 3,
                "timeoutSeconds": 5,
            })
        });
    let mut mounts = vec![
        json!({"name": "local-certs", "mountPath": "/var/run/secrets/istio-dns"}),
        json!({"name": "istio-token", "mountPath": "/var/run/secrets/tokens", "readOnly": true}),
        json!({"name": "cacerts", "mountPath": "/etc/cacerts", "readOnly": true}),
        json!({"name": "config-volume", "mountPath": "/etc/istio/config", "readOnly": true}),
        json!({"name": "injector-config", "mountPath": "/var/lib/istio/inject", "readOnly": true}),
    ];
    mounts.extend(
        k8s.and_then(|k| k.volume_mounts.clone())
            .into_iter()
            .flatten()
            .map(Value::Object),
    );
    let container = json!({
        "name": "discovery",
        "image": ctx.image("lateend", pilot.and_then(|p| p.hub.as_ref()).map(|s| s.as_str()), pilot.and_then(|p| p.tag.as_ref()).map(|s| s.as_str())),
        "imagePullPolicy": ctx.image_pull_policy(k8s),
        "args": discovery_args(ctx),
        "ports": [
            {"name": "http-debug", "containerPort": READINESS_PORT, "protocol": "TCP"},
            {"name": "grpc-xds", "containerPort": 15010, "protocol": "TCP"},
            {"name": "tls-xds", "containerPort": 15012, "protocol": "TCP"},
            {"name": "https-webhooks", "containerPort": 15017, "protocol": "TCP"},
            {"name": "http-monitoring", "containerPort": 15014, "protocol": "TCP"},
        ],
        "readinessProbe": readiness,
        "env": env,
        "resources": resources_json(k8s.and_then(|k| k.resources.as_ref())),
        "securityContext": restricted_container_security(),
        "volumeMounts": mounts,
    });
    let mut annotations = Map::new();
    annotations.insert("prometheus.io/port".into(), json!("15014"));
    annotations.insert("prometheus.io/scrape".into(), json!("true"));
    annotations.insert("sidecar.istio.io/inject".into(), json!("false"));
    annotations.extend(string_map(k8s.and_then(|k| k.pod_annotations.as_ref())));
    let mut pod_labels = labels.clone();
    pod_labels.insert("sidecar.istio.io/inject".into(), json!("false"));
    pod_labels.extend(string_map(pilot.and_then(|p| p.label.as_ref())));
    let pod_spec = json!({
        "serviceAccountName": name,
        "tolerations": [{"key": "cni.istio.io/not-ready", "operator": "Exists"}],
        "containers": [container],
        "volumes": [
            {"name": "local-certs", "emptyDir": {"medium": "Memory"}},
            {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {"audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}},
            {"name": "cacerts", "secret": {"secretName": "cacerts", "optional": true}},
            {"name": "config-volume", "configMap": {"name": ctx.revisioned("istio")}},
            {"name": "injector-config", "configMap": {"name": ctx.revisioned("istio-sidecar-injector")}},
        ],
    });
    super::deployment(
        ctx,
        super::DeploymentParts {
            name,
            namespace: &ctx.namespace,
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
    ctx: &Context,
    name: &str,
    labels: &Map<String, Value>,
    selector: &Map<String, Value>,
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ctx.namespace, "labels": labels},
        "spec": {
            "selector": selector,
            "ports": [
                {"name": "grpc-xds", "port": 15010, "targetPort": 15010, "protocol": "TCP"},
                {"name": "https-dns", "port": 15012, "targetPort": 15012, "protocol": "TCP"},
                {"name": "http-monitoring", "port": 15014, "targetPort": 15014, "protocol": "TCP"},
                {"name": "https-webhook", "port": 443, "targetPort": 15017, "protocol": "TCP"},
            ],
        },
    })
}
