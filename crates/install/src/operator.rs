//! The typed `install.istio.io/v1alpha1` IstioOperator document.
//!
//! Every struct here denies unknown fields, so a typo anywhere in `components` is an error that
//! names its path. `meshConfig`, `values` and a few Kubernetes pass-through fields (affinity,
//! probes) are open maps in Istio, so they are [`Loose`]: the fields we know are typed and checked,
//! the rest is kept as written.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{InstallError, Result};
use crate::scalar::{Bool, Int, IntOrString, Num, Str};

/// API version of the IstioOperator resource.
pub const API_VERSION: &str = "install.istio.io/v1alpha1";
/// Kind of the IstioOperator resource.
pub const KIND: &str = "IstioOperator";

/// The whole IstioOperator document.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IstioOperator {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub spec: Spec,
}

/// The object metadata an IstioOperator may carry.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, Str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, Str>>,
}

/// `spec` of an IstioOperator.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_package_path: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mesh_config: Option<Loose<MeshConfig>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<Components>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Loose<Values>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unvalidated_values: Option<Map<String, Value>>,
}

/// `spec.components`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Components {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<Component>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pilot: Option<Component>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cni: Option<Component>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ztunnel: Option<Component>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_gateways: Option<Vec<GatewayComponent>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_gateways: Option<Vec<GatewayComponent>>,
}

/// A single-instance component (`base`, `pilot`, `cni`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Component {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<BTreeMap<String, Str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s: Option<K8sSpec>,
}

/// An entry of `ingressGateways` or `egressGateways`, merged by `name`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayComponent {
    #[serde(default)]
    pub name: Str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<BTreeMap<String, Str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s: Option<K8sSpec>,
}

/// `k8s`: the Kubernetes settings of a component's Deployment, Service, PDB and HPA.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hpa_spec: Option<HpaSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, Str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<PdbSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_annotations: Option<BTreeMap<String, Str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_count: Option<Int>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_annotations: Option<BTreeMap<String, Str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Map<String, Value>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<Map<String, Value>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlays: Option<Vec<K8sObjectOverlay>>,
}

/// A container environment variable.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVar {
    pub name: Str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<Map<String, Value>>,
}

/// `hpaSpec`: an autoscaling/v2 HorizontalPodAutoscalerSpec (the target is always ours).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HpaSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<Int>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<Int>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<Map<String, Value>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behavior: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_target_ref: Option<Map<String, Value>>,
}

/// `podDisruptionBudget`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PdbSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// Container resources: quantities by resource name.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, IntOrString>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, IntOrString>>,
}

/// `service`: the parts of a ServiceSpec a component may set.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub service_type: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<ServicePort>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer_ip: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer_source_ranges: Option<Vec<Str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_traffic_policy: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_i_ps: Option<Vec<Str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_families: Option<Vec<Str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_family_policy: Option<Str>,
}

/// A Service port.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Str>,
    pub port: Int,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_port: Option<Int>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<Str>,
}

/// A pod toleration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Toleration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<Int>,
}

/// `overlays[]`: patches applied to one rendered object.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sObjectOverlay {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<Str>,
    pub kind: Str,
    pub name: Str,
    #[serde(default)]
    pub patches: Vec<OverlayPatch>,
}

/// One patch: a path in the object (same syntax as `--set`) and the value to put there; no
/// value removes what the path selects.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OverlayPatch {
    pub path: Str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// The MeshConfig fields Lateen reads; any other MeshConfig field is kept as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_file: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_format: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_log_encoding: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_tracing: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_auto_mtls: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_prometheus_merge: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_domain_aliases: Option<Vec<Str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_namespace: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_class: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_service: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_controller_mode: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_detection_timeout: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_config: Option<Loose<ProxyConfig>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_providers: Option<Vec<Map<String, Value>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_selectors: Option<Vec<Map<String, Value>>>,
}

/// `meshConfig.outboundTrafficPolicy`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Str>,
}

/// The ProxyConfig fields Lateen reads (`meshConfig.defaultConfig`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_address: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_metadata: Option<BTreeMap<String, Str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Int>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_application_until_proxy_starts: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_drain_duration: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_duration: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_port: Option<Int>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Map<String, Value>>,
}

/// The Helm-style `values` Lateen reads; the rest is kept as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Values {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_revision: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global: Option<Loose<GlobalValues>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pilot: Option<Loose<PilotValues>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateways: Option<BTreeMap<String, Loose<GatewayValues>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar_injector_webhook: Option<Loose<InjectorValues>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub istiod_remote: Option<Loose<IstiodRemoteValues>>,
}

/// `values.global`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalValues {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub istio_namespace: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_validation: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<Str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Str>,
    #[serde(rename = "meshID", skip_serializing_if = "Option::is_none")]
    pub mesh_id: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_pilot_address: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_as_json: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_cluster: Option<Loose<MultiClusterValues>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Loose<ProxyValues>>,
}

/// `values.global.multiCluster`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiClusterValues {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<Str>,
}

/// `values.global.proxy`: settings of injected sidecars.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyValues {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_domain: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_application_until_proxy_starts: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// `values.pilot`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PilotValues {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale_enabled: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale_min: Option<Int>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale_max: Option<Int>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_count: Option<Int>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_sampling: Option<Num>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, Str>>,
}

/// `values.gateways.<name>`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayValues {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale_enabled: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<ServicePort>>,
}

/// `values.sidecarInjectorWebhook`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectorValues {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_namespaces_by_default: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite_app_h_t_t_p_probe: Option<Bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub never_inject_selector: Option<Vec<Map<String, Value>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub always_inject_selector: Option<Vec<Map<String, Value>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injected_annotations: Option<BTreeMap<String, Str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_templates: Option<Vec<Str>>,
}

/// `values.istiodRemote`: where the injector of a remote cluster is reached.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IstiodRemoteValues {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<Bool>,
    #[serde(rename = "injectionURL", skip_serializing_if = "Option::is_none")]
    pub injection_url: Option<Str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injection_path: Option<Str>,
}

/// An open map whose known fields are typed: `known` is checked and normalized, `raw` keeps
/// every field as written. Serializing writes `raw` with the known fields in their typed form.
#[derive(Debug, Clone, Default)]
pub struct Loose<T> {
    pub known: T,
    pub raw: Map<String, Value>,
}

/// Marks an error message that carries the path inside a [`Loose`] map, so the outer path and
/// the inner one join into one (`spec.meshConfig` + `defaultConfig.concurrency`).
const NESTED_MARK: char = '\u{1}';

impl<'de, T: DeserializeOwned> Deserialize<'de> for Loose<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Map::<String, Value>::deserialize(d)?;
        let known =
            serde_path_to_error::deserialize(Value::Object(raw.clone())).map_err(|err| {
                let (path, message) = split_path_error(&err);
                D::Error::custom(format!("{NESTED_MARK}{path}{NESTED_MARK}{message}"))
            })?;
        Ok(Loose { known, raw })
    }
}

impl<T: Serialize> Serialize for Loose<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = self.raw.clone();
        let typed = serde_json::to_value(&self.known).map_err(serde::ser::Error::custom)?;
        if let Value::Object(fields) = typed {
            out.extend(fields);
        }
        out.serialize(s)
    }
}

/// Splits a path-tracked error into the field path and the message; an unknown field is named
/// in the path itself.
fn split_path_error(err: &serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    let mut path = err.path().to_string();
    let mut message = err.inner().to_string();
    if let Some((inner_path, inner_message)) = nested_parts(&message) {
        path = join_path(&path, &inner_path);
        message = inner_message;
    }
    if let Some(field) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        if path.rsplit('.').next() != Some(field) {
            path = join_path(&path, field);
        }
        message = format!("unknown field {field:?}");
    }
    if path == "." {
        path = String::new();
    }
    (path, message)
}

fn nested_parts(message: &str) -> Option<(String, String)> {
    let start = message.find(NESTED_MARK)?;
    let rest = &message[start + NESTED_MARK.len_utf8()..];
    let (path, tail) = rest.split_once(NESTED_MARK)?;
    Some((path.to_owned(), tail.to_owned()))
}

fn join_path(outer: &str, inner: &str) -> String {
    match (outer, inner) {
        ("" | ".", _) => inner.to_owned(),
        (_, "" | ".") => outer.to_owned(),
        _ if inner.starts_with('[') => format!("{outer}{inner}"),
        _ => format!("{outer}.{inner}"),
    }
}

impl IstioOperator {
    /// Checks a tree against the schema, naming `source_name` and the field path on error.
    pub fn from_tree(tree: &Value, source_name: &str) -> Result<Self> {
        let iop: IstioOperator = serde_path_to_error::deserialize(tree).map_err(|err| {
            let (path, message) = split_path_error(&err);
            InstallError::Field {
                source_name: source_name.to_owned(),
                path: if path.is_empty() {
                    "(document)".to_owned()
                } else {
                    path
                },
                message,
            }
        })?;
        if let Some(api_version) = &iop.api_version
            && api_version.as_str() != API_VERSION
        {
            return Err(field_error(
                source_name,
                "apiVersion",
                format!("must be {API_VERSION}"),
            ));
        }
        if let Some(kind) = &iop.kind
            && kind.as_str() != KIND
        {
            return Err(field_error(source_name, "kind", format!("must be {KIND}")));
        }
        iop.check_gateway_names(source_name)?;
        Ok(iop)
    }

    /// The tree in its schema-typed form (what `profile dump` prints).
    pub fn to_tree(&self) -> Result<Value> {
        serde_json::to_value(self).map_err(|err| InstallError::Serialize(err.to_string()))
    }

    fn check_gateway_names(&self, source_name: &str) -> Result<()> {
        let Some(components) = &self.spec.components else {
            return Ok(());
        };
        for (list_name, list) in [
            ("ingressGateways", &components.ingress_gateways),
            ("egressGateways", &components.egress_gateways),
        ] {
            for (index, gateway) in list.iter().flatten().enumerate() {
                if gateway.name.as_str().is_empty() {
                    return Err(field_error(
                        source_name,
                        &format!("spec.components.{list_name}[{index}].name"),
                        "a gateway needs a name".to_owned(),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn field_error(source_name: &str, path: &str, message: String) -> InstallError {
    InstallError::Field {
        source_name: source_name.to_owned(),
        path: path.to_owned(),
        message,
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::Float(x) => write!(f, "{x}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}
