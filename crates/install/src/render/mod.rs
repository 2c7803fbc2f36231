//! Rendering an IstioOperator into the Kubernetes objects an install creates.
//!
//! Each component renders its objects, then its `k8s.overlays` patch them, then everything is
//! sorted so that one `kubectl apply -f -` pass works (namespaces and CRDs first, webhooks last:
//! a webhook registered before its service runs would block the rest).

mod control_plane;
pub mod crds;
mod gateway;
mod rbac;
mod webhooks;

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::error::{InstallError, Result};
use crate::operator::{
    Component, EnvVar, GatewayComponent, HpaSpec, IstioOperator, K8sSpec, PdbSpec, Resources,
};
use crate::setflag;

/// Name of the control-plane Deployment, Service and ServiceAccount (Istio: istiod).
pub const CONTROL_PLANE_NAME: &str = "lateend";

/// One rendered object and the IstioOperator component it belongs to (`Base`, `Pilot`,
/// `IngressGateways`, `EgressGateways`, as Istio's `operator.istio.io/component` label says).
#[derive(Debug, Clone)]
pub struct RenderedObject {
    pub component: &'static str,
    pub object: Value,
}

impl RenderedObject {
    /// `kind` of the object.
    pub fn kind(&self) -> &str {
        self.object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `metadata.name` of the object.
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// Everything the component renderers share, worked out once from the IstioOperator.
pub(crate) struct Context<'a> {
    pub iop: &'a IstioOperator,
    /// Namespace of the control plane.
    pub namespace: String,
    /// Revision, empty for the default one.
    pub revision: String,
    /// Owning IstioOperator's name (`unknown` when it has none, as Istio writes).
    pub owner: String,
    pub hub: String,
    pub tag: String,
}

impl<'a> Context<'a> {
    fn new(iop: &'a IstioOperator) -> Self {
        let spec = &iop.spec;
        let global = spec
            .values
            .as_ref()
            .and_then(|v| v.known.global.as_ref())
            .map(|g| &g.known);
        let namespace = spec
            .namespace
            .as_ref()
            .map(|s| s.0.clone())
            .or_else(|| {
                global
                    .and_then(|g| g.istio_namespace.as_ref())
                    .map(|s| s.0.clone())
            })
            .unwrap_or_else(|| "istio-system".to_owned());
        let revision = spec
            .revision
            .as_ref()
            .or_else(|| spec.values.as_ref().and_then(|v| v.known.revision.as_ref()))
            .map(|s| s.0.clone())
            .unwrap_or_default();
        let owner = iop
            .metadata
            .as_ref()
            .and_then(|m| m.name.as_ref())
            .map(|s| s.0.clone())
            .unwrap_or_else(|| "unknown".to_owned());
        let hub = spec
            .hub
            .as_ref()
            .or_else(|| global.and_then(|g| g.hub.as_ref()))
            .map(|s| s.0.clone())
            .unwrap_or_else(|| "docker.io/lateen".to_owned());
        let tag = spec
            .tag
            .as_ref()
            .or_else(|| global.and_then(|g| g.tag.as_ref()))
            .map(|s| s.0.clone())
            .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned());
        Context {
            iop,
            namespace,
            revision,
            owner,
            hub,
            tag,
        }
    }

    /// The `istio.io/rev` value: the revision, or `default`.
    pub fn rev_label(&self) -> &str {
        if self.revision.is_empty() {
            "default"
        } else {
            &self.revision
        }
    }

    /// `base` with `-<revision>` appended for a revisioned install.
    pub fn revisioned(&self, base: &str) -> String {
        if self.revision.is_empty() {
            base.to_owned()
        } else {
            format!("{base}-{}", self.revision)
        }
    }

    /// Name of the control-plane Deployment/Service/ServiceAccount.
    pub fn control_plane_name(&self) -> String {
        self.revisioned(CONTROL_PLANE_NAME)
    }

    /// Address of the control plane's xDS/CA port.
    pub fn discovery_address(&self) -> String {
        format!("{}.{}.svc:15012", self.control_plane_name(), self.namespace)
    }

    /// The labels Istio's operator puts on every object of a component.
    pub fn labels(&self, component: &str) -> Map<String, Value> {
        let mut labels = Map::new();
        labels.insert(
            "install.operator.istio.io/owning-resource".into(),
            json!(self.owner),
        );
        labels.insert(
            "install.operator.istio.io/owning-resource-namespace".into(),
            json!(self.namespace),
        );
        labels.insert("istio.io/rev".into(), json!(self.rev_label()));
        labels.insert("operator.istio.io/component".into(), json!(component));
        labels.insert("app.kubernetes.io/part-of".into(), json!("lateen"));
        labels.insert("app.kubernetes.io/managed-by".into(), json!("lateen"));
        labels
    }

    pub fn image(&self, name: &str, hub: Option<&str>, tag: Option<&str>) -> String {
        format!(
            "{}/{}:{}",
            hub.unwrap_or(&self.hub),
            name,
            tag.unwrap_or(&self.tag)
        )
    }

    pub fn values(&self) -> Option<&crate::operator::Values> {
        self.iop.spec.values.as_ref().map(|v| &v.known)
    }

    pub fn global(&self) -> Option<&crate::operator::GlobalValues> {
        self.values()
            .and_then(|v| v.global.as_ref())
            .map(|g| &g.known)
    }

    pub fn image_pull_policy(&self, k8s: Option<&K8sSpec>) -> String {
        k8s.and_then(|k| k.image_pull_policy.as_ref())
            .or_else(|| self.global().and_then(|g| g.image_pull_policy.as_ref()))
            .map(|s| s.0.clone())
            .unwrap_or_else(|| "IfNotPresent".to_owned())
    }

    pub fn cluster_id(&self) -> String {
        self.global()
            .and_then(|g| g.multi_cluster.as_ref())
            .and_then(|m| m.known.cluster_name.as_ref())
            .map(|s| s.0.clone())
            .unwrap_or_else(|| "Kubernetes".to_owned())
    }

    /// `values.istiodRemote.enabled`: the control plane runs in another cluster.
    pub fn is_remote(&self) -> bool {
        self.values()
            .and_then(|v| v.istiod_remote.as_ref())
            .and_then(|r| r.known.enabled)
            .is_some_and(|b| b.0)
    }
}

fn enabled(component: Option<&Component>) -> bool {
    component.and_then(|c| c.enabled).is_some_and(|b| b.0)
}

fn gateway_enabled(gateway: &GatewayComponent) -> bool {
    gateway.enabled.is_some_and(|b| b.0)
}

/// Where an install lives: the control-plane namespace and the revision (empty for default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallScope {
    pub namespace: String,
    pub revision: String,
}

/// The namespace and revision `iop` installs into.
pub fn install_scope(iop: &IstioOperator) -> InstallScope {
    let ctx = Context::new(iop);
    InstallScope {
        namespace: ctx.namespace,
        revision: ctx.revision,
    }
}

/// Renders every object of the install, sorted for applying.
pub fn render(iop: &IstioOperator) -> Result<Vec<RenderedObject>> {
    let ctx = Context::new(iop);
    let components = iop.spec.components.clone().unwrap_or_default();
    for (name, component) in [("cni", &components.cni), ("ztunnel", &components.ztunnel)] {
        if enabled(component.as_ref()) {
            return Err(InstallError::Unsupported(format!(
                "components.{name} is enabled, but Lateen does not provide the {name} component (ambient and CNI modes are not supported); set components.{name}.enabled=false"
            )));
        }
    }
    let mut out = Vec::new();
    let base_on = enabled(components.base.as_ref());
    let pilot_on = enabled(components.pilot.as_ref());
    let ingress: Vec<&GatewayComponent> = components
        .ingress_gateways
        .iter()
        .flatten()
        .filter(|g| gateway_enabled(g))
        .collect();
    let egress: Vec<&GatewayComponent> = components
        .egress_gateways
        .iter()
        .flatten()
        .filter(|g| gateway_enabled(g))
        .collect();

    let mut namespaces = Vec::new();
    if base_on || pilot_on {
        namespaces.push(ctx.namespace.clone());
    }
    for gateway in ingress.iter().chain(egress.iter()) {
        namespaces.push(
            gateway
                .namespace
                .as_ref()
                .map_or_else(|| ctx.namespace.clone(), |n| n.0.clone()),
        );
    }
    namespaces.dedup();
    let mut seen = std::collections::BTreeSet::new();
    for namespace in namespaces {
        if seen.insert(namespace.clone()) {
            out.push(RenderedObject {
                component: "Base",
                object: json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": namespace},
                }),
            });
        }
    }

    if base_on {
        let mut objects = crds::all();
        objects.extend(rbac::reader(&ctx));
        push_component(
            &mut out,
            "Base",
            objects,
            components.base.as_ref().and_then(|c| c.k8s.as_ref()),
            &ctx,
        )?;
    }
    if pilot_on {
        let pilot = components.pilot.as_ref();
        let mut objects = Vec::new();
        if !ctx.is_remote() {
            objects.extend(rbac::control_plane(&ctx));
            objects.extend(control_plane::render(&ctx, pilot)?);
        }
        objects.extend(webhooks::render(&ctx));
        push_component(
            &mut out,
            "Pilot",
            objects,
            pilot.and_then(|c| c.k8s.as_ref()),
            &ctx,
        )?;
    }
    for (component, gateways, ingress_kind) in [
        ("IngressGateways", &ingress, true),
        ("EgressGateways", &egress, false),
    ] {
        for gateway in gateways {
            let objects = gateway::render(&ctx, gateway, ingress_kind, component)?;
            push_component(&mut out, component, objects, gateway.k8s.as_ref(), &ctx)?;
        }
    }
    out.sort_by_key(|object| kind_rank(object.kind()));
    Ok(out)
}

/// Labels a component's objects, applies its overlays and adds them to `out`.
fn push_component(
    out: &mut Vec<RenderedObject>,
    component: &'static str,
    mut objects: Vec<Value>,
    k8s: Option<&K8sSpec>,
    ctx: &Context,
) -> Result<()> {
    let labels = ctx.labels(component);
    for object in &mut objects {
        let meta = &mut object["metadata"];
        if !meta["labels"].is_object() {
            meta["labels"] = json!({});
        }
        if let Value::Object(existing) = &mut meta["labels"] {
            for (key, value) in &labels {
                existing.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
    }
    for overlay in k8s.and_then(|k| k.overlays.as_ref()).into_iter().flatten() {
        let overlay_error = |message: String| InstallError::Overlay {
            component: component.to_owned(),
            kind: overlay.kind.0.clone(),
            name: overlay.name.0.clone(),
            message,
        };
        let target = objects
            .iter_mut()
            .find(|object| {
                object["kind"].as_str() == Some(overlay.kind.as_str())
                    && object.pointer("/metadata/name").and_then(Value::as_str)
                        == Some(overlay.name.as_str())
                    && overlay
                        .api_version
                        .as_ref()
                        .is_none_or(|v| object["apiVersion"].as_str() == Some(v.as_str()))
            })
            .ok_or_else(|| overlay_error("no such object in this component".to_owned()))?;
        for patch in &overlay.patches {
            let segments = setflag::parse_path(patch.path.as_str()).map_err(|message| {
                overlay_error(format!("path {:?}: {message}", patch.path.as_str()))
            })?;
            let applied = match &patch.value {
                Some(value) => setflag::set_at(
                    target,
                    &segments,
                    value.clone(),
                    setflag::Create::MapKeysOnly,
                ),
                None => setflag::delete_at(target, &segments),
            };
            applied.map_err(|message| {
                overlay_error(format!("path {:?}: {message}", patch.path.as_str()))
            })?;
        }
    }
    out.extend(
        objects
            .into_iter()
            .map(|object| RenderedObject { component, object }),
    );
    Ok(())
}

/// Apply order: what others refer to comes first, admission webhooks last.
pub(crate) fn kind_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount" => 2,
        "ClusterRole" => 3,
        "ClusterRoleBinding" => 4,
        "Role" => 5,
        "RoleBinding" => 6,
        "ConfigMap" | "Secret" => 7,
        "Service" => 8,
        "Deployment" => 9,
        "PodDisruptionBudget" => 10,
        "HorizontalPodAutoscaler" => 11,
        "MutatingWebhookConfiguration" => 13,
        "ValidatingWebhookConfiguration" => 14,
        _ => 12,
    }
}

/// The objects as one multi-document YAML stream.
pub fn to_manifest(objects: &[RenderedObject]) -> Result<String> {
    let values: Vec<Value> = objects.iter().map(|o| o.object.clone()).collect();
    crate::yaml::to_yaml_stream(&values)
}

// Helpers shared by the component renderers.

pub(crate) fn resources_json(resources: Option<&Resources>) -> Value {
    let Some(resources) = resources else {
        return json!({});
    };
    let mut out = Map::new();
    for (key, quantities) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        if let Some(quantities) = quantities {
            let map: Map<String, Value> = quantities
                .iter()
                .map(|(k, v)| (k.clone(), quantity(v)))
                .collect();
            out.insert(key.into(), Value::Object(map));
        }
    }
    Value::Object(out)
}

/// Quantities are written as strings, the form Kubernetes stores.
fn quantity(value: &crate::scalar::IntOrString) -> Value {
    Value::String(value.to_string())
}

/// `base` env with the component's `k8s.env` merged in by name.
pub(crate) fn merged_env(mut base: Vec<Value>, user: Option<&Vec<EnvVar>>) -> Vec<Value> {
    for var in user.into_iter().flatten() {
        let rendered = serde_json::to_value(var).unwrap_or(Value::Null);
        match base
            .iter_mut()
            .find(|existing| existing["name"].as_str() == Some(var.name.as_str()))
        {
            Some(existing) => *existing = rendered,
            None => base.push(rendered),
        }
    }
    base
}

pub(crate) fn string_map(map: Option<&BTreeMap<String, crate::scalar::Str>>) -> Map<String, Value> {
    map.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Value::String(v.0.clone())))
        .collect()
}

/// Applies the pod-level `k8s` settings to a pod template spec.
fn apply_pod_settings(
    pod_spec: &mut Value,
    k8s: Option<&K8sSpec>,
    default_affinity: Value,
    priority_class: Option<&str>,
) {
    let k8s_ref = k8s;
    let pod = pod_spec.as_object_mut();
    let Some(pod) = pod else { return };
    let affinity = k8s_ref
        .and_then(|k| k.affinity.clone())
        .map(Value::Object)
        .unwrap_or(default_affinity);
    pod.insert("affinity".into(), affinity);
    if let Some(selector) = k8s_ref.and_then(|k| k.node_selector.as_ref()) {
        pod.insert(
            "nodeSelector".into(),
            Value::Object(string_map(Some(selector))),
        );
    }
    if let Some(tolerations) = k8s_ref.and_then(|k| k.tolerations.as_ref()) {
        pod.insert(
            "tolerations".into(),
            serde_json::to_value(tolerations).unwrap_or(Value::Null),
        );
    }
    if let Some(security) = k8s_ref.and_then(|k| k.security_context.clone()) {
        pod.insert("securityContext".into(), Value::Object(security));
    }
    let priority = k8s_ref
        .and_then(|k| k.priority_class_name.as_ref())
        .map(|s| s.0.clone())
        .or_else(|| priority_class.map(str::to_owned));
    if let Some(priority) = priority {
        pod.insert("priorityClassName".into(), Value::String(priority));
    }
    if let Some(volumes) = k8s_ref.and_then(|k| k.volumes.as_ref())
        && let Some(Value::Array(existing)) = pod.get_mut("volumes")
    {
        existing.extend(volumes.iter().cloned().map(Value::Object));
    }
}

/// Preferred anti-affinity that spreads replicas carrying `labels` over nodes.
fn spread_over_nodes(labels: &Map<String, Value>) -> Value {
    json!({
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": labels},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }],
        },
    })
}

/// A policy/v1 PodDisruptionBudget (at least one pod up unless the spec says otherwise).
pub(crate) fn pdb(
    name: &str,
    namespace: &str,
    labels: &Map<String, Value>,
    selector: &Map<String, Value>,
    spec: Option<&PdbSpec>,
) -> Result<Value> {
    if let Some(PdbSpec {
        min_available: Some(_),
        max_unavailable: Some(_),
    }) = spec
    {
        // The API server refuses a budget with both; say so now, naming the object.
        return Err(InstallError::Unsupported(format!(
            "podDisruptionBudget of {namespace}/{name}: set minAvailable or maxUnavailable, not both"
        )));
    }
    let mut pdb_spec = Map::new();
    match spec {
        Some(PdbSpec {
            min_available,
            max_unavailable,
        }) if min_available.is_some() || max_unavailable.is_some() => {
            if let Some(min) = min_available {
                pdb_spec.insert("minAvailable".into(), min.to_json());
            }
            if let Some(max) = max_unavailable {
                pdb_spec.insert("maxUnavailable".into(), max.to_json());
            }
        }
        _ => {
            pdb_spec.insert("minAvailable".into(), json!(1));
        }
    }
    pdb_spec.insert("selector".into(), json!({"matchLabels": selector}));
    Ok(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": pdb_spec,
    }))
}

/// An autoscaling/v2 HorizontalPodAutoscaler for Deployment `name`.
pub(crate) fn hpa(
    name: &str,
    namespace: &str,
    labels: &Map<String, Value>,
    spec: Option<&HpaSpec>,
) -> Value {
    let min = spec.and_then(|s| s.min_replicas).map_or(1, |i| i.0);
    let max = spec
        .and_then(|s| s.max_replicas)
        .map_or(5, |i| i.0)
        .max(min);
    let metrics = spec
        .and_then(|s| s.metrics.clone())
        .map(|m| Value::Array(m.into_iter().map(Value::Object).collect()))
        .unwrap_or_else(|| {
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
        });
    let mut hpa_spec = json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": min,
        "maxReplicas": max,
        "metrics": metrics,
    });
    if let Some(behavior) = spec.and_then(|s| s.behavior.clone()) {
        hpa_spec["behavior"] = Value::Object(behavior);
    }
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": hpa_spec,
    })
}

/// The environment every Lateen pod reads about itself.
pub(crate) fn downward_env() -> Vec<Value> {
    vec![
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}),
        json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}),
        json!({"name": "SERVICE_ACCOUNT", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.serviceAccountName"}}}),
    ]
}

/// Container security settings shared by the control plane and gateways: no root, no new
/// privileges, read-only root, no capabilities.
pub(crate) fn restricted_container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "runAsUser": 1337,
        "runAsGroup": 1337,
        "capabilities": {"drop": ["ALL"]},
    })
}

/// Replicas to write: the configured count, else 1 when nothing autoscales, else none (the HPA
/// owns the count and a fixed one would fight it on every apply).
fn replicas(k8s: Option<&K8sSpec>, autoscale: bool) -> Option<i64> {
    match k8s.and_then(|k| k.replica_count) {
        Some(count) => Some(count.0),
        None if !autoscale => Some(1),
        None => None,
    }
}

/// What differs between the Deployments of the control plane and of gateways.
pub(crate) struct DeploymentParts<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub labels: &'a Map<String, Value>,
    pub selector: &'a Map<String, Value>,
    pub pod_labels: Map<String, Value>,
    pub annotations: Map<String, Value>,
    pub pod_spec: Value,
}

/// An apps/v1 Deployment with the component's pod settings, strategy and replicas applied.
pub(crate) fn deployment(
    ctx: &Context,
    parts: DeploymentParts,
    k8s: Option<&K8sSpec>,
    autoscale: bool,
) -> Value {
    let DeploymentParts {
        name,
        namespace,
        labels,
        selector,
        pod_labels,
        annotations,
        mut pod_spec,
    } = parts;
    let priority = ctx
        .global()
        .and_then(|g| g.priority_class_name.as_ref())
        .map(|s| s.0.clone());
    apply_pod_settings(
        &mut pod_spec,
        k8s,
        spread_over_nodes(selector),
        priority.as_deref(),
    );
    if let Some(secrets) = ctx.global().and_then(|g| g.image_pull_secrets.as_ref()) {
        let refs: Vec<Value> = secrets
            .iter()
            .map(|name| json!({"name": name.as_str()}))
            .collect();
        pod_spec["imagePullSecrets"] = Value::Array(refs);
    }
    let strategy = k8s
        .and_then(|k| k.strategy.clone())
        .map(Value::Object)
        .unwrap_or_else(|| json!({"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "25%"}}));
    let mut spec = json!({
        "selector": {"matchLabels": selector},
        "strategy": strategy,
        "template": {
            "metadata": {"labels": pod_labels, "annotations": annotations},
            "spec": pod_spec,
        },
    });
    if let Some(count) = replicas(k8s, autoscale) {
        spec["replicas"] = json!(count);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    })
}
