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
use serde_with::skip_serializing_none;

use crate::error::{InstallError, Result};
use crate::scalar::{Bool, Int, IntOrString, Num, Str};

/// API version of the IstioOperator resource.
pub const API_VERSION: &str = "install.istio.io/v1alpha1";
/// Kind of the IstioOperator resource.
pub const KIND: &str = "IstioOperator";

/// The whole IstioOperator document.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IstioOperator {
    pub api_version: Option<Str>,
    pub kind: Option<Str>,
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub spec: Spec,
}

/// The object metadata an IstioOperator may carry.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    pub name: Option<Str>,
    pub namespace: Option<Str>,
    pub labels: Option<BTreeMap<String, Str>>,
    pub annotations: Option<BTreeMap<String, Str>>,
}

/// `spec` of an IstioOperator.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    pub profile: Option<Str>,
    pub install_package_path: Option<Str>,
    pub hub: Option<Str>,
    pub tag: Option<Str>,
    pub revision: Option<Str>,
    pub namespace: Option<Str>,
    pub mesh_config: Option<Loose<MeshConfig>>,
    pub components: Option<Components>,
    pub values: Option<Loose<Values>>,
    pub unvalidated_values: Option<Map<String, Value>>,
}

/// `spec.components`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Components {
    pub base: Option<Component>,
    pub pilot: Option<Component>,
    pub cni: Option<Component>,
    pub ztunnel: Option<Component>,
    pub ingress_gateways: Option<Vec<GatewayComponent>>,
    pub egress_gateways: Option<Vec<GatewayComponent>>,
}

/// A single-instance component (`base`, `pilot`, `cni`).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Component {
    pub enabled: Option<Bool>,
    pub namespace: Option<Str>,
    pub hub: Option<Str>,
    pub tag: Option<Str>,
    pub label: Option<BTreeMap<String, Str>>,
    pub k8s: Option<K8sSpec>,
}

/// An entry of `ingressGateways` or `egressGateways`, merged by `name`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayComponent {
    #[serde(default)]
    pub name: Str,
    pub enabled: Option<Bool>,
    pub namespace: Option<Str>,
    pub hub: Option<Str>,
    pub tag: Option<Str>,
    pub label: Option<BTreeMap<String, Str>>,
    pub k8s: Option<K8sSpec>,
}

/// `k8s`: the Kubernetes settings of a component's Deployment, Service, PDB and HPA.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sSpec {
    pub affinity: Option<Map<String, Value>>,
    pub env: Option<Vec<EnvVar>>,
    pub hpa_spec: Option<HpaSpec>,
    pub image_pull_policy: Option<Str>,
    pub node_selector: Option<BTreeMap<String, Str>>,
    pub pod_disruption_budget: Option<PdbSpec>,
    pub pod_annotations: Option<BTreeMap<String, Str>>,
    pub priority_class_name: Option<Str>,
    pub readiness_probe: Option<Map<String, Value>>,
    pub replica_count: Option<Int>,
    pub resources: Option<Resources>,
    pub service: Option<ServiceSpec>,
    pub service_annotations: Option<BTreeMap<String, Str>>,
    pub strategy: Option<Map<String, Value>>,
    pub tolerations: Option<Vec<Toleration>>,
    pub security_context: Option<Map<String, Value>>,
    pub volumes: Option<Vec<Map<String, Value>>>,
    pub volume_mounts: Option<Vec<Map<String, Value>>>,
    pub overlays: Option<Vec<K8sObjectOverlay>>,
}

/// A container environment variable.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvVar {
    pub name: Str,
    pub value: Option<Str>,
    pub value_from: Option<Map<String, Value>>,
}

/// `hpaSpec`: an autoscaling/v2 HorizontalPodAutoscalerSpec (the target is always ours).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HpaSpec {
    pub min_replicas: Option<Int>,
    pub max_replicas: Option<Int>,
    pub metrics: Option<Vec<Map<String, Value>>>,
    pub behavior: Option<Map<String, Value>>,
    pub scale_target_ref: Option<Map<String, Value>>,
}

/// `podDisruptionBudget`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PdbSpec {
    pub min_available: Option<IntOrString>,
    pub max_unavailable: Option<IntOrString>,
}

/// Container resources: quantities by resource name.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    pub requests: Option<BTreeMap<String, IntOrString>>,
    pub limits: Option<BTreeMap<String, IntOrString>>,
}

/// `service`: the parts of a ServiceSpec a component may set.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "type")]
    pub service_type: Option<Str>,
    pub ports: Option<Vec<ServicePort>>,
    pub load_balancer_ip: Option<Str>,
    pub load_balancer_source_ranges: Option<Vec<Str>>,
    pub load_balancer_class: Option<Str>,
    pub external_traffic_policy: Option<Str>,
    pub internal_traffic_policy: Option<Str>,
    pub external_i_ps: Option<Vec<Str>>,
    pub session_affinity: Option<Str>,
    pub ip_families: Option<Vec<Str>>,
    pub ip_family_policy: Option<Str>,
}

/// A Service port.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePort {
    pub name: Option<Str>,
    pub port: Int,
    pub target_port: Option<IntOrString>,
    pub protocol: Option<Str>,
    pub node_port: Option<Int>,
    pub app_protocol: Option<Str>,
}

/// A pod toleration.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Toleration {
    pub key: Option<Str>,
    pub operator: Option<Str>,
    pub value: Option<Str>,
    pub effect: Option<Str>,
    pub toleration_seconds: Option<Int>,
}

/// `overlays[]`: patches applied to one rendered object.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct K8sObjectOverlay {
    pub api_version: Option<Str>,
    pub kind: Str,
    pub name: Str,
    #[serde(default)]
    pub patches: Vec<OverlayPatch>,
}

/// One patch: a path in the object (same syntax as `--set`) and the value to put there; no
/// value removes what the path selects.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OverlayPatch {
    pub path: Str,
    pub value: Option<Value>,
}

/// The MeshConfig fields Lateen reads; any other MeshConfig field is kept as written.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfig {
    pub access_log_file: Option<Str>,
    pub access_log_format: Option<Str>,
    pub access_log_encoding: Option<Str>,
    pub enable_tracing: Option<Bool>,
    pub enable_auto_mtls: Option<Bool>,
    pub enable_prometheus_merge: Option<Bool>,
    pub trust_domain: Option<Str>,
    pub trust_domain_aliases: Option<Vec<Str>>,
    pub root_namespace: Option<Str>,
    pub ingress_class: Option<Str>,
    pub ingress_service: Option<Str>,
    pub ingress_controller_mode: Option<Str>,
    pub connect_timeout: Option<Str>,
    pub protocol_detection_timeout: Option<Str>,
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    pub default_config: Option<Loose<ProxyConfig>>,
    pub extension_providers: Option<Vec<Map<String, Value>>>,
    pub discovery_selectors: Option<Vec<Map<String, Value>>>,
}

/// `meshConfig.outboundTrafficPolicy`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutboundTrafficPolicy {
    pub mode: Option<Str>,
}

/// The ProxyConfig fields Lateen reads (`meshConfig.defaultConfig`).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfig {
    pub discovery_address: Option<Str>,
    pub proxy_metadata: Option<BTreeMap<String, Str>>,
    pub concurrency: Option<Int>,
    pub hold_application_until_proxy_starts: Option<Bool>,
    pub termination_drain_duration: Option<Str>,
    pub drain_duration: Option<Str>,
    pub status_port: Option<Int>,
    pub tracing: Option<Map<String, Value>>,
}

/// The Helm-style `values` Lateen reads; the rest is kept as written.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Values {
    pub profile: Option<Str>,
    pub revision: Option<Str>,
    pub default_revision: Option<Str>,
    pub global: Option<Loose<GlobalValues>>,
    pub pilot: Option<Loose<PilotValues>>,
    pub gateways: Option<BTreeMap<String, Loose<GatewayValues>>>,
    pub sidecar_injector_webhook: Option<Loose<InjectorValues>>,
    pub istiod_remote: Option<Loose<IstiodRemoteValues>>,
}

/// `values.global`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalValues {
    pub hub: Option<Str>,
    pub tag: Option<Str>,
    pub istio_namespace: Option<Str>,
    pub config_validation: Option<Bool>,
    pub image_pull_policy: Option<Str>,
    pub image_pull_secrets: Option<Vec<Str>>,
    pub priority_class_name: Option<Str>,
    pub network: Option<Str>,
    #[serde(rename = "meshID")]
    pub mesh_id: Option<Str>,
    pub remote_pilot_address: Option<Str>,
    pub log_as_json: Option<Bool>,
    pub multi_cluster: Option<Loose<MultiClusterValues>>,
    pub proxy: Option<Loose<ProxyValues>>,
}

/// `values.global.multiCluster`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiClusterValues {
    pub enabled: Option<Bool>,
    pub cluster_name: Option<Str>,
}

/// `values.global.proxy`: settings of injected sidecars.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyValues {
    pub image: Option<Str>,
    pub log_level: Option<Str>,
    pub cluster_domain: Option<Str>,
    pub privileged: Option<Bool>,
    pub hold_application_until_proxy_starts: Option<Bool>,
    pub resources: Option<Resources>,
}

/// `values.pilot`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PilotValues {
    pub autoscale_enabled: Option<Bool>,
    pub autoscale_min: Option<Int>,
    pub autoscale_max: Option<Int>,
    pub replica_count: Option<Int>,
    pub trace_sampling: Option<Num>,
    pub resources: Option<Resources>,
    pub env: Option<BTreeMap<String, Str>>,
}

/// `values.gateways.<name>`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayValues {
    pub autoscale_enabled: Option<Bool>,
    pub resources: Option<Resources>,
    pub ports: Option<Vec<ServicePort>>,
}

/// `values.sidecarInjectorWebhook`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InjectorValues {
    pub enable_namespaces_by_default: Option<Bool>,
    pub rewrite_app_h_t_t_p_probe: Option<Bool>,
    pub never_inject_selector: Option<Vec<Map<String, Value>>>,
    pub always_inject_selector: Option<Vec<Map<String, Value>>>,
    pub injected_annotations: Option<BTreeMap<String, Str>>,
    pub default_templates: Option<Vec<Str>>,
}

/// `values.istiodRemote`: where the injector of a remote cluster is reached.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IstiodRemoteValues {
    pub enabled: Option<Bool>,
    #[serde(rename = "injectionURL")]
    pub injection_url: Option<Str>,
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
