//! Who this proxy is, read from the environment Istio's sidecar injector sets (`POD_NAME`,
//! `POD_NAMESPACE`, `INSTANCE_IP`, `SERVICE_ACCOUNT`, `ISTIO_META_*`) and the pod's labels,
//! turned into the xDS node Envoy would send under Istio and the metric labels of the
//! proxy's own workload.

use lateen_xds::pb::envoy::config::core::v3::Node;
use lateen_xds::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::path::Path;

use crate::config::model;

/// Istio's node types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    Sidecar,
    Router,
}

impl NodeType {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Sidecar => "sidecar",
            NodeType::Router => "router",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("ISTIO_METAJSON_LABELS is not a JSON object of strings: {0}")]
    LabelsJson(String),
    #[error("{path}: line {line}: expected key=\"value\"")]
    LabelsFile { path: String, line: usize },
    #[error("{name}: {reason}")]
    Metadata { name: String, reason: String },
}

/// The proxy's identity, resolved once at start-up.
#[derive(Debug, Clone)]
pub struct Identity {
    pub node_type: NodeType,
    pub pod_name: String,
    pub namespace: String,
    pub instance_ip: String,
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
    /// Node metadata as Envoy sends it under Istio.
    pub metadata: Map<String, Json>,
    /// The last part of the node id: `--domain`, else `NAMESPACE.svc.cluster.local`.
    pub dns_domain: String,
    /// SPIFFE trust domain (`TRUST_DOMAIN`, as the injector sets it).
    pub trust_domain: String,
}

impl Identity {
    /// Reads the identity from `env` (name → value pairs, normally `std::env::vars()`) and
    /// the downward-API labels file when `ISTIO_METAJSON_LABELS` is not set.
    pub fn from_env(
        node_type: NodeType,
        env: &BTreeMap<String, String>,
        labels_file: &Path,
    ) -> Result<Identity, IdentityError> {
        let get = |name: &str| env.get(name).filter(|value| !value.is_empty()).cloned();
        let namespace = get("POD_NAMESPACE").unwrap_or_else(|| "default".into());
        let pod_name =
            get("POD_NAME").unwrap_or_else(|| hostname().unwrap_or_else(|| "lateen-proxy".into()));
        let instance_ip = get("INSTANCE_IP").unwrap_or_else(|| "127.0.0.1".into());
        let service_account = get("SERVICE_ACCOUNT").unwrap_or_else(|| "default".into());
        let labels = match get("ISTIO_METAJSON_LABELS") {
            Some(text) => parse_labels_json(&text)?,
            None => read_labels_file(labels_file)?,
        };

        let mut metadata = Map::new();
        for (name, value) in env {
            if let Some(key) = name.strip_prefix("ISTIO_METAJSON_") {
                let parsed: Json =
                    serde_json::from_str(value).map_err(|err| IdentityError::Metadata {
                        name: name.clone(),
                        reason: format!("not JSON: {err}"),
                    })?;
                metadata.insert(key.to_string(), parsed);
            } else if let Some(key) = name.strip_prefix("ISTIO_META_") {
                metadata.insert(key.to_string(), Json::String(value.clone()));
            }
        }
        let workload = metadata
            .get("WORKLOAD_NAME")
            .and_then(Json::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| workload_from_pod(&pod_name));
        let defaults = [
            ("NAME", Json::String(pod_name.clone())),
            ("NAMESPACE", Json::String(namespace.clone())),
            (
                "INSTANCE_IPS",
                Json::String(get("INSTANCE_IPS").unwrap_or_else(|| instance_ip.clone())),
            ),
            ("SERVICE_ACCOUNT", Json::String(service_account.clone())),
            ("WORKLOAD_NAME", Json::String(workload)),
            ("INTERCEPTION_MODE", Json::String("REDIRECT".into())),
            ("CLUSTER_ID", Json::String("Kubernetes".into())),
            ("MESH_ID", Json::String("cluster.local".into())),
            (
                "ISTIO_VERSION",
                Json::String(env!("CARGO_PKG_VERSION").into()),
            ),
            (
                "LABELS",
                Json::Object(
                    labels
                        .iter()
                        .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                        .collect(),
                ),
            ),
        ];
        for (key, value) in defaults {
            metadata.entry(key.to_string()).or_insert(value);
        }
        if let Some(mode) = metadata.get("INTERCEPTION_MODE").and_then(Json::as_str)
            && !matches!(mode, "REDIRECT" | "NONE" | "TPROXY")
        {
            return Err(IdentityError::Metadata {
                name: "ISTIO_META_INTERCEPTION_MODE".into(),
                reason: format!("{mode:?} is not REDIRECT, TPROXY or NONE"),
            });
        }
        let dns_domain = format!("{namespace}.svc.cluster.local");
        let trust_domain = get("TRUST_DOMAIN")
            .or_else(|| get("ISTIO_META_TRUST_DOMAIN"))
            .unwrap_or_else(|| "cluster.local".into());
        Ok(Identity {
            node_type,
            pod_name,
            namespace,
            instance_ip,
            service_account,
            labels,
            metadata,
            dns_domain,
            trust_domain,
        })
    }

    /// `sidecar~10.0.0.5~reviews-v1-abc.default~default.svc.cluster.local`.
    pub fn node_id(&self) -> String {
        format!(
            "{}~{}~{}.{}~{}",
            self.node_type.as_str(),
            self.instance_ip,
            self.pod_name,
            self.namespace,
            self.dns_domain
        )
    }

    fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Json::as_str)
    }

    fn app(&self) -> Option<&str> {
        self.labels
            .get("app")
            .or_else(|| self.labels.get("app.kubernetes.io/name"))
            .or_else(|| self.labels.get("service.istio.io/canonical-name"))
            .map(String::as_str)
    }

    /// The xDS node: id, Istio's service cluster (`app.namespace`) and the metadata.
    pub fn node(&self) -> Node {
        let service = self
            .app()
            .map(str::to_string)
            .unwrap_or_else(|| self.meta("WORKLOAD_NAME").unwrap_or("unknown").to_string());
        Node {
            id: self.node_id(),
            cluster: format!("{service}.{}", self.namespace),
            metadata: Some(to_struct(&self.metadata)),
            user_agent_name: "lateen-proxy".into(),
            user_agent_version_type: Some(lateen_xds::pb::envoy::config::core::v3::node::UserAgentVersionType::UserAgentVersion(
                env!("CARGO_PKG_VERSION").into(),
            )),
            ..Default::default()
        }
    }

    /// The proxy's own workload, for the metric labels.
    pub fn model_node(&self) -> model::Node {
        let trust_domain = &self.trust_domain;
        model::Node {
            id: Some(self.node_id()),
            workload: self.meta("WORKLOAD_NAME").map(str::to_string),
            namespace: Some(self.namespace.clone()),
            app: self.app().map(str::to_string),
            version: self
                .labels
                .get("version")
                .or_else(|| self.labels.get("app.kubernetes.io/version"))
                .or_else(|| self.labels.get("service.istio.io/canonical-revision"))
                .cloned(),
            principal: Some(format!(
                "spiffe://{trust_domain}/ns/{}/sa/{}",
                self.namespace, self.service_account
            )),
            cluster: self.meta("CLUSTER_ID").map(str::to_string),
        }
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
}

/// `reviews-v1-5d8f7c9b6-x2x7k` → `reviews-v1` (Deployment pods); other names as they are.
fn workload_from_pod(pod: &str) -> String {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    match parts.as_slice() {
        [suffix, hash, base] if suffix.len() == 5 && (9..=10).contains(&hash.len()) => {
            base.to_string()
        }
        _ => pod.to_string(),
    }
}

fn parse_labels_json(text: &str) -> Result<BTreeMap<String, String>, IdentityError> {
    let value: Json =
        serde_json::from_str(text).map_err(|err| IdentityError::LabelsJson(err.to_string()))?;
    let Json::Object(object) = value else {
        return Err(IdentityError::LabelsJson("not an object".into()));
    };
    object
        .into_iter()
        .map(|(key, value)| match value {
            Json::String(text) => Ok((key, text)),
            other => Err(IdentityError::LabelsJson(format!(
                "label {key:?} is {other}, not a string"
            ))),
        })
        .collect()
}

/// Reads the downward API's labels file (`key="value"` lines); a missing file means no labels.
fn read_labels_file(path: &Path) -> Result<BTreeMap<String, String>, IdentityError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(BTreeMap::new());
    };
    parse_labels_file(&text).map_err(|line| IdentityError::LabelsFile {
        path: path.display().to_string(),
        line,
    })
}

/// Parses `key="value"` lines; the error is the 1-based number of the bad line.
pub fn parse_labels_file(text: &str) -> Result<BTreeMap<String, String>, usize> {
    let mut labels = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or(index + 1)?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or(index + 1)?;
        // The downward API escapes quotes and backslashes like a Go string.
        let value = value.replace("\\\"", "\"").replace("\\\\", "\\");
        labels.insert(key.trim().to_string(), value);
    }
    Ok(labels)
}

fn to_struct(map: &Map<String, Json>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(key, value)| (key.clone(), to_value(value)))
            .collect(),
    }
}

fn to_value(json: &Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(flag) => Kind::BoolValue(*flag),
        Json::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or_default()),
        Json::String(text) => Kind::StringValue(text.clone()),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(to_value).collect(),
        }),
        Json::Object(map) => Kind::StructValue(to_struct(map)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An environment of `pairs` (also for the control-plane tests).
    pub(crate) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn node_id_and_metadata_follow_istio() {
        let identity = Identity::from_env(
            NodeType::Sidecar,
            &env(&[
                ("POD_NAME", "reviews-v1-5d8f7c9b6-x2x7k"),
                ("POD_NAMESPACE", "bookinfo"),
                ("INSTANCE_IP", "10.1.2.3"),
                ("SERVICE_ACCOUNT", "reviews"),
                ("ISTIO_META_INTERCEPTION_MODE", "NONE"),
                (
                    "ISTIO_METAJSON_LABELS",
                    r#"{"app":"reviews","version":"v1"}"#,
                ),
                ("ISTIO_META_MESH_ID", "mesh1"),
                ("TRUST_DOMAIN", "example.org"),
            ]),
            Path::new("/nonexistent"),
        )
        .expect("valid identity");
        assert_eq!(
            identity.node_id(),
            "sidecar~10.1.2.3~reviews-v1-5d8f7c9b6-x2x7k.bookinfo~bookinfo.svc.cluster.local"
        );
        let node = identity.node();
        assert_eq!(node.cluster, "reviews.bookinfo");
        let meta = &identity.metadata;
        assert_eq!(meta["INTERCEPTION_MODE"], "NONE");
        assert_eq!(meta["MESH_ID"], "mesh1");
        assert_eq!(meta["WORKLOAD_NAME"], "reviews-v1");
        assert_eq!(meta["LABELS"]["version"], "v1");
        assert_eq!(meta["INSTANCE_IPS"], "10.1.2.3");
        let model = identity.model_node();
        assert_eq!(
            model.principal.as_deref(),
            Some("spiffe://example.org/ns/bookinfo/sa/reviews")
        );
        assert_eq!(model.version.as_deref(), Some("v1"));
    }

    #[test]
    fn router_nodes_and_the_labels_file() {
        let dir = std::env::temp_dir().join(format!("lateen-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("labels");
        std::fs::write(
            &file,
            "app=\"istio-ingressgateway\"\nistio=\"ingressgateway\"\n",
        )
        .expect("labels file");
        let identity = Identity::from_env(
            NodeType::Router,
            &env(&[
                ("POD_NAME", "gw-1"),
                ("POD_NAMESPACE", "istio-system"),
                ("INSTANCE_IP", "10.0.0.9"),
            ]),
            &file,
        )
        .expect("valid identity");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            identity.node_id(),
            "router~10.0.0.9~gw-1.istio-system~istio-system.svc.cluster.local"
        );
        assert_eq!(identity.metadata["LABELS"]["istio"], "ingressgateway");
        assert_eq!(identity.node().cluster, "istio-ingressgateway.istio-system");
    }

    #[test]
    fn labels_file_lines() {
        let labels = parse_labels_file("app=\"web\"\nsecurity.istio.io/tlsMode=\"istio\"\n\n")
            .expect("valid file");
        assert_eq!(labels["app"], "web");
        assert_eq!(labels["security.istio.io/tlsMode"], "istio");
        assert_eq!(parse_labels_file("app=web"), Err(1));
    }

    #[test]
    fn bad_interception_mode_is_an_error() {
        let err = Identity::from_env(
            NodeType::Router,
            &env(&[("ISTIO_META_INTERCEPTION_MODE", "MAGIC")]),
            Path::new("/nonexistent"),
        )
        .expect_err("invalid mode");
        assert!(err.to_string().contains("INTERCEPTION_MODE"), "{err}");
    }
}
