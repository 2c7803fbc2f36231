//! The injector's typed configuration, [`InjectConfig`], its defaults and its file loaders.
//!
//! Three files feed it, as with `istioctl kube-inject`:
//! - `--injectConfigFile`: Istio's `istio-sidecar-injector` ConfigMap — either the whole
//!   ConfigMap (its `data.config`, and `data.values` if present, are read) or just the text of
//!   its `config` key. Keys read: `policy` (`enabled`|`disabled`), `neverInjectSelector`,
//!   `alwaysInjectSelector` (lists of Kubernetes label selectors), `injectedAnnotations`.
//!   Istio's Go `template`/`templates` are ignored: Lateen's sidecar layout is built in code.
//!   Lateen's own format is the same YAML plus optional keys `revision`, `failurePolicy`
//!   (`Fail`|`Ignore`, for the webhook), `ignoredNamespaces`, `values` (as in the values file)
//!   and `meshConfig` (as in the mesh config file).
//! - `--valuesFile`: the injector's Helm values (the ConfigMap's `values` key, JSON or YAML, or
//!   the whole ConfigMap). Read: `revision`, `global.hub`, `global.tag`, `global.meshID`,
//!   `global.network`, `global.multiCluster.clusterName`, `global.istioNamespace`,
//!   `global.imagePullSecrets`, `global.proxy.{image, resources, logLevel, componentLogLevel,
//!   includeIPRanges, excludeIPRanges, includeInboundPorts, excludeInboundPorts,
//!   includeOutboundPorts, excludeOutboundPorts, statusPort, clusterDomain,
//!   readinessInitialDelaySeconds, readinessPeriodSeconds, readinessFailureThreshold,
//!   holdApplicationUntilProxyStarts}`, `global.nativeSidecars` (Lateen: proxy as a Kubernetes
//!   native sidecar; Istio turns this on with `ENABLE_NATIVE_SIDECARS`),
//!   `sidecarInjectorWebhook.rewriteAppHTTPProbe`.
//! - `--meshConfigFile`: Istio's MeshConfig YAML (or the `istio` ConfigMap, key `data.mesh`).
//!   Read: `trustDomain`, `enablePrometheusMerge`, `defaultConfig` (ProxyConfig: kept whole, as
//!   the base of `PROXY_CONFIG`; `discoveryAddress`, `statusPort`, `interceptionMode`,
//!   `proxyMetadata`, `holdApplicationUntilProxyStarts` are used by the injector).
//!
//! Unknown keys are ignored (Istio's files carry many); known keys with the wrong type are errors
//! naming the file and the key path.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::InjectError;
use crate::annotations;

/// Istio's `policy`: whether pods without an explicit opt-in/out are injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InjectionPolicy {
    #[default]
    Enabled,
    Disabled,
}

/// What the webhook does with a pod it should inject but cannot (e.g. a bad annotation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// Refuse the pod (admission denied with the reason), like a webhook `failurePolicy: Fail`.
    #[default]
    Fail,
    /// Admit the pod unchanged.
    Ignore,
}

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<SelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    /// An empty selector selects nothing here, as in Istio's never/always selectors.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        if self.is_empty() {
            return false;
        }
        let labels_match = self
            .match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        labels_match
            && self.match_expressions.iter().all(|req| {
                let value = labels.get(&req.key);
                match req.operator {
                    SelectorOperator::In => value.is_some_and(|v| req.values.contains(v)),
                    SelectorOperator::NotIn => value.is_none_or(|v| !req.values.contains(v)),
                    SelectorOperator::Exists => value.is_some(),
                    SelectorOperator::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// The injector's configuration, with Istio's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectConfig {
    pub policy: InjectionPolicy,
    pub never_inject_selector: Vec<LabelSelector>,
    pub always_inject_selector: Vec<LabelSelector>,
    /// Added to every injected pod's annotations.
    pub injected_annotations: BTreeMap<String, String>,
    pub values: Values,
    pub mesh: MeshConfig,
    /// Control plane revision this injector serves; empty means the default revision.
    pub revision: String,
    pub failure_policy: FailurePolicy,
    /// Namespaces never injected by the webhook (Istio: kube-system, kube-public, ...).
    pub ignored_namespaces: Vec<String>,
}

impl Default for InjectConfig {
    fn default() -> Self {
        InjectConfig {
            policy: InjectionPolicy::Enabled,
            never_inject_selector: Vec::new(),
            always_inject_selector: Vec::new(),
            injected_annotations: BTreeMap::new(),
            values: Values::default(),
            mesh: MeshConfig::default(),
            revision: String::new(),
            failure_policy: FailurePolicy::Fail,
            ignored_namespaces: [
                "kube-system",
                "kube-public",
                "kube-node-lease",
                "local-path-storage",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// The part of Istio's injector Helm values that shapes the injected pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    pub revision: String,
    pub hub: String,
    pub tag: String,
    pub image_pull_secrets: Vec<String>,
    pub istio_namespace: String,
    pub mesh_id: String,
    pub network: String,
    pub cluster_id: String,
    pub proxy: ProxyValues,
    pub rewrite_app_http_probe: bool,
    /// `global.nativeSidecars`: inject the proxy as a Kubernetes native sidecar.
    pub native_sidecars: bool,
}

impl Default for Values {
    fn default() -> Self {
        Values {
            revision: String::new(),
            hub: "docker.io/lateen".into(),
            tag: env!("CARGO_PKG_VERSION").into(),
            image_pull_secrets: Vec::new(),
            istio_namespace: "istio-system".into(),
            mesh_id: String::new(),
            network: String::new(),
            cluster_id: "Kubernetes".into(),
            proxy: ProxyValues::default(),
            rewrite_app_http_probe: true,
            native_sidecars: false,
        }
    }
}

/// `values.global.proxy`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyValues {
    /// Image name under the hub (Istio: `proxyv2`).
    pub image: String,
    /// Kubernetes `resources` of the proxy containers, used when no resource annotation is set.
    pub resources: Map<String, Value>,
    pub log_level: String,
    pub component_log_level: String,
    pub include_ip_ranges: String,
    pub exclude_ip_ranges: String,
    pub include_inbound_ports: String,
    pub exclude_inbound_ports: String,
    pub include_outbound_ports: String,
    pub exclude_outbound_ports: String,
    pub status_port: u16,
    pub cluster_domain: String,
    pub readiness_initial_delay_seconds: u32,
    pub readiness_period_seconds: u32,
    pub readiness_failure_threshold: u32,
    pub hold_application_until_proxy_starts: bool,
}

impl Default for ProxyValues {
    fn default() -> Self {
        let resources = serde_json::json!({
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "2000m", "memory": "1024Mi"},
        });
        ProxyValues {
            image: "proxy".into(),
            resources: resources.as_object().cloned().unwrap_or_default(),
            log_level: "warning".into(),
            component_log_level: "misc:error".into(),
            include_ip_ranges: "*".into(),
            exclude_ip_ranges: String::new(),
            include_inbound_ports: "*".into(),
            exclude_inbound_ports: String::new(),
            include_outbound_ports: String::new(),
            exclude_outbound_ports: String::new(),
            status_port: 15020,
            cluster_domain: "cluster.local".into(),
            readiness_initial_delay_seconds: 0,
            readiness_period_seconds: 15,
            readiness_failure_threshold: 4,
            hold_application_until_proxy_starts: false,
        }
    }
}

/// The part of Istio's MeshConfig the injector reads.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshConfig {
    pub trust_domain: String,
    pub enable_prometheus_merge: bool,
    /// `defaultConfig` (a ProxyConfig) as written in the file; pod annotations merge over it.
    pub default_config: Map<String, Value>,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            trust_domain: "cluster.local".into(),
            enable_prometheus_merge: true,
            default_config: Map::new(),
        }
    }
}

impl InjectConfig {
    /// Applies an injector config file (Istio ConfigMap, its `config` text, or Lateen's format).
    pub fn apply_inject_config_text(&mut self, text: &str, file: &str) -> Result<(), InjectError> {
        let doc = parse_yaml(text, file)?;
        let doc = match configmap_data(&doc, "config", file)? {
            Some(inner) => {
                if let Some(values) = configmap_data(&doc, "values", file)? {
                    self.values = Values::from_value(&values, file)?;
                }
                inner
            }
            None => doc,
        };
        let r = Reader { file };
        if let Some(policy) = r.string(&doc, "policy")? {
            self.policy = match policy.to_ascii_lowercase().as_str() {
                "enabled" => InjectionPolicy::Enabled,
                "disabled" => InjectionPolicy::Disabled,
                _ => {
                    return Err(r.err(
                        "policy",
                        format!("{policy:?} is not one of enabled, disabled"),
                    ));
                }
            };
        }
        if let Some(list) = r.array(&doc, "neverInjectSelector")? {
            self.never_inject_selector = parse_selectors(list, "neverInjectSelector", &r)?;
        }
        if let Some(list) = r.array(&doc, "alwaysInjectSelector")? {
            self.always_inject_selector = parse_selectors(list, "alwaysInjectSelector", &r)?;
        }
        if let Some(map) = r.string_map(&doc, "injectedAnnotations")? {
            self.injected_annotations = map;
        }
        if let Some(rev) = r.string(&doc, "revision")? {
            self.revision = rev;
        }
        if let Some(fp) = r.string(&doc, "failurePolicy")? {
            self.failure_policy = match fp.as_str() {
                "Fail" => FailurePolicy::Fail,
                "Ignore" => FailurePolicy::Ignore,
                _ => {
                    return Err(r.err(
                        "failurePolicy",
                        format!("{fp:?} is not one of Fail, Ignore"),
                    ));
                }
            };
        }
        if let Some(list) = r.array(&doc, "ignoredNamespaces")? {
            self.ignored_namespaces = r.strings(list, "ignoredNamespaces")?;
        }
        if let Some(values) = doc.get("values").filter(|v| !v.is_null()) {
            self.values = Values::from_value(values, file)?;
        }
        if let Some(mesh) = doc.get("meshConfig").filter(|v| !v.is_null()) {
            self.mesh = MeshConfig::from_value(mesh, file)?;
        }
        Ok(())
    }

    /// Applies a values file (JSON or YAML, or the ConfigMap holding it under `values`).
    pub fn apply_values_text(&mut self, text: &str, file: &str) -> Result<(), InjectError> {
        let doc = parse_yaml(text, file)?;
        let doc = configmap_data(&doc, "values", file)?.unwrap_or(doc);
        self.values = Values::from_value(&doc, file)?;
        Ok(())
    }

    /// Applies a MeshConfig file (YAML, or the `istio` ConfigMap holding it under `mesh`).
    pub fn apply_mesh_config_text(&mut self, text: &str, file: &str) -> Result<(), InjectError> {
        let doc = parse_yaml(text, file)?;
        let doc = configmap_data(&doc, "mesh", file)?.unwrap_or(doc);
        self.mesh = MeshConfig::from_value(&doc, file)?;
        Ok(())
    }

    /// The revision injected pods are labelled with: `--revision`, the config's, the values', or
    /// `default`.
    pub fn effective_revision(&self) -> &str {
        [self.revision.as_str(), self.values.revision.as_str()]
            .into_iter()
            .find(|r| !r.is_empty())
            .unwrap_or("default")
    }

    /// `lateend`'s xDS/CA address, unless the ProxyConfig names another: the revision's own
    /// service `lateend-<revision>` for a non-default revision (Istio: `istiod-<revision>`).
    pub fn default_discovery_address(&self) -> String {
        let ns = &self.values.istio_namespace;
        match self.effective_revision() {
            "default" => format!("lateend.{ns}.svc:15012"),
            rev => format!("lateend-{rev}.{ns}.svc:15012"),
        }
    }
}

impl Values {
    pub fn from_value(doc: &Value, file: &str) -> Result<Values, InjectError> {
        let r = Reader { file };
        let mut values = Values::default();
        if !doc.is_object() && !doc.is_null() {
            return Err(r.err("values", "expected a mapping"));
        }
        if let Some(rev) = r.string(doc, "revision")? {
            values.revision = rev;
        }
        if let Some(webhook) = r.object(doc, "sidecarInjectorWebhook")?
            && let Some(b) = r.boolean(webhook, "sidecarInjectorWebhook.rewriteAppHTTPProbe")?
        {
            values.rewrite_app_http_probe = b;
        }
        let Some(global) = r.object(doc, "global")? else {
            return Ok(values);
        };
        let set = |target: &mut String, key: &str| -> Result<(), InjectError> {
            if let Some(s) = r.string(global, key)? {
                *target = s;
            }
            Ok(())
        };
        set(&mut values.hub, "global.hub")?;
        set(&mut values.tag, "global.tag")?;
        set(&mut values.istio_namespace, "global.istioNamespace")?;
        set(&mut values.mesh_id, "global.meshID")?;
        set(&mut values.network, "global.network")?;
        if let Some(b) = r.boolean(global, "global.nativeSidecars")? {
            values.native_sidecars = b;
        }
        if let Some(mc) = r.object(global, "global.multiCluster")?
            && let Some(name) = r
                .string(mc, "global.multiCluster.clusterName")?
                .filter(|n| !n.is_empty())
        {
            values.cluster_id = name;
        }
        if let Some(list) = r.array(global, "global.imagePullSecrets")? {
            values.image_pull_secrets = r.strings(list, "global.imagePullSecrets")?;
        }
        if let Some(proxy) = r.object(global, "global.proxy")? {
            values.proxy.apply(proxy, &r)?;
        }
        Ok(values)
    }
}

impl ProxyValues {
    fn apply(&mut self, proxy: &Value, r: &Reader<'_>) -> Result<(), InjectError> {
        let strings: [(&mut String, &str); 10] = [
            (&mut self.image, "global.proxy.image"),
            (&mut self.log_level, "global.proxy.logLevel"),
            (
                &mut self.component_log_level,
                "global.proxy.componentLogLevel",
            ),
            (&mut self.include_ip_ranges, "global.proxy.includeIPRanges"),
            (&mut self.exclude_ip_ranges, "global.proxy.excludeIPRanges"),
            (
                &mut self.include_inbound_ports,
                "global.proxy.includeInboundPorts",
            ),
            (
                &mut self.exclude_inbound_ports,
                "global.proxy.excludeInboundPorts",
            ),
            (
                &mut self.include_outbound_ports,
                "global.proxy.includeOutboundPorts",
            ),
            (
                &mut self.exclude_outbound_ports,
                "global.proxy.excludeOutboundPorts",
            ),
            (&mut self.cluster_domain, "global.proxy.clusterDomain"),
        ];
        for (target, key) in strings {
            if let Some(s) = r.string(proxy, key)? {
                *target = s;
            }
        }
        if let Some(b) = r.boolean(proxy, "global.proxy.holdApplicationUntilProxyStarts")? {
            self.hold_application_until_proxy_starts = b;
        }
        if let Some(res) = r.object(proxy, "global.proxy.resources")? {
            self.resources = res.as_object().cloned().unwrap_or_default();
        }
        if let Some(port) = r.uint(proxy, "global.proxy.statusPort")? {
            self.status_port = u16::try_from(port)
                .map_err(|_| r.err("global.proxy.statusPort", "not a port number"))?;
        }
        let numbers: [(&mut u32, &str); 3] = [
            (
                &mut self.readiness_initial_delay_seconds,
                "global.proxy.readinessInitialDelaySeconds",
            ),
            (
                &mut self.readiness_period_seconds,
                "global.proxy.readinessPeriodSeconds",
            ),
            (
                &mut self.readiness_failure_threshold,
                "global.proxy.readinessFailureThreshold",
            ),
        ];
        for (target, key) in numbers {
            if let Some(n) = r.uint(proxy, key)? {
                *target = u32::try_from(n).map_err(|_| r.err(key, "number too large"))?;
            }
        }
        self.validate(r.file)
    }

    /// The same checks as the pod annotations these values are the defaults of.
    fn validate(&self, file: &str) -> Result<(), InjectError> {
        let checks: [(&str, &str, Check); 6] = [
            (
                "global.proxy.includeIPRanges",
                &self.include_ip_ranges,
                annotations::check_include_cidrs,
            ),
            (
                "global.proxy.excludeIPRanges",
                &self.exclude_ip_ranges,
                annotations::check_cidrs,
            ),
            (
                "global.proxy.includeInboundPorts",
                &self.include_inbound_ports,
                annotations::check_include_ports,
            ),
            (
                "global.proxy.excludeInboundPorts",
                &self.exclude_inbound_ports,
                annotations::check_ports,
            ),
            (
                "global.proxy.includeOutboundPorts",
                &self.include_outbound_ports,
                annotations::check_ports,
            ),
            (
                "global.proxy.excludeOutboundPorts",
                &self.exclude_outbound_ports,
                annotations::check_ports,
            ),
        ];
        for (key, value, check) in checks {
            check(value).map_err(|reason| InjectError::Config {
                file: file.to_string(),
                reason: format!("{key}: invalid value {value:?}: {reason}"),
            })?;
        }
        Ok(())
    }
}

/// A validator of one comma-list setting.
type Check = fn(&str) -> Result<(), String>;

impl MeshConfig {
    pub fn from_value(doc: &Value, file: &str) -> Result<MeshConfig, InjectError> {
        let r = Reader { file };
        let mut mesh = MeshConfig::default();
        if let Some(td) = r.string(doc, "trustDomain")?.filter(|t| !t.is_empty()) {
            mesh.trust_domain = td;
        }
        if let Some(b) = r.boolean(doc, "enablePrometheusMerge")? {
            mesh.enable_prometheus_merge = b;
        }
        if let Some(dc) = r.object(doc, "defaultConfig")? {
            mesh.default_config = dc.as_object().cloned().unwrap_or_default();
        }
        Ok(mesh)
    }
}

fn parse_yaml(text: &str, file: &str) -> Result<Value, InjectError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let doc: Value = serde_saphyr::from_str(text).map_err(|e| InjectError::Config {
        file: file.to_string(),
        reason: format!("cannot parse YAML: {e}"),
    })?;
    Ok(if doc.is_null() {
        Value::Object(Map::new())
    } else {
        doc
    })
}

/// If `doc` is a ConfigMap, returns its `data.<key>` parsed as YAML/JSON (None if absent).
fn configmap_data(doc: &Value, key: &str, file: &str) -> Result<Option<Value>, InjectError> {
    if doc.get("kind").and_then(Value::as_str) != Some("ConfigMap") {
        return Ok(None);
    }
    match doc.pointer(&format!("/data/{key}")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => parse_yaml(text, &format!("{file} (data.{key})")).map(Some),
        Some(_) => Err(InjectError::Config {
            file: file.to_string(),
            reason: format!("data.{key}: expected a string"),
        }),
    }
}

fn parse_selectors(
    list: &[Value],
    key: &str,
    r: &Reader<'_>,
) -> Result<Vec<LabelSelector>, InjectError> {
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{key}[{i}]");
            let mut sel = LabelSelector::default();
            if let Some(labels) = r.string_map(item, "matchLabels")? {
                sel.match_labels = labels;
            }
            for (j, expr) in r
                .array(item, "matchExpressions")?
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let epath = format!("{path}.matchExpressions[{j}]");
                let key = r
                    .string(expr, "key")?
                    .ok_or_else(|| r.err(&epath, "key is required"))?;
                let op = r.string(expr, "operator")?.unwrap_or_default();
                let operator = match op.as_str() {
                    "In" => SelectorOperator::In,
                    "NotIn" => SelectorOperator::NotIn,
                    "Exists" => SelectorOperator::Exists,
                    "DoesNotExist" => SelectorOperator::DoesNotExist,
                    _ => {
                        return Err(r.err(
                            &epath,
                            format!(
                                "operator {op:?} is not one of In, NotIn, Exists, DoesNotExist"
                            ),
                        ));
                    }
                };
                let values = r.strings(
                    r.array(expr, "values")?.unwrap_or_default(),
                    &format!("{epath}.values"),
                )?;
                sel.match_expressions.push(SelectorRequirement {
                    key,
                    operator,
                    values,
                });
            }
            Ok(sel)
        })
        .collect()
}

/// Typed reads from a parsed file, with errors that name the file and key.
struct Reader<'a> {
    file: &'a str,
}

impl Reader<'_> {
    fn err(&self, key: &str, reason: impl std::fmt::Display) -> InjectError {
        InjectError::Config {
            file: self.file.to_string(),
            reason: format!("{key}: {reason}"),
        }
    }

    fn get<'v>(&self, doc: &'v Value, key: &str) -> Option<&'v Value> {
        let leaf = key.rsplit('.').next().unwrap_or(key);
        doc.get(leaf).filter(|v| !v.is_null())
    }

    /// Strings, numbers and booleans all read as text (Helm values often hold `tag: 1.26`).
    fn string(&self, doc: &Value, key: &str) -> Result<Option<String>, InjectError> {
        match self.get(doc, key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(self.err(key, "expected a string")),
        }
    }

    fn uint(&self, doc: &Value, key: &str) -> Result<Option<u64>, InjectError> {
        match self.get(doc, key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.err(key, "expected a non-negative integer")),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| self.err(key, "expected a non-negative integer")),
            Some(_) => Err(self.err(key, "expected a non-negative integer")),
        }
    }

    fn boolean(&self, doc: &Value, key: &str) -> Result<Option<bool>, InjectError> {
        match self.get(doc, key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
            Some(_) => Err(self.err(key, "expected true or false")),
        }
    }

    fn object<'v>(&self, doc: &'v Value, key: &str) -> Result<Option<&'v Value>, InjectError> {
        match self.get(doc, key) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(v)),
            Some(_) => Err(self.err(key, "expected a mapping")),
        }
    }

    fn array<'v>(&self, doc: &'v Value, key: &str) -> Result<Option<&'v [Value]>, InjectError> {
        match self.get(doc, key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.as_slice())),
            Some(_) => Err(self.err(key, "expected a list")),
        }
    }

    fn strings(&self, list: &[Value], key: &str) -> Result<Vec<String>, InjectError> {
        list.iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                // imagePullSecrets may be written as `- name: secret`.
                Value::Object(o) => match o.get("name") {
                    Some(Value::String(s)) => Ok(s.clone()),
                    _ => Err(self.err(&format!("{key}[{i}]"), "expected a string")),
                },
                _ => Err(self.err(&format!("{key}[{i}]"), "expected a string")),
            })
            .collect()
    }

    fn string_map(
        &self,
        doc: &Value,
        key: &str,
    ) -> Result<Option<BTreeMap<String, String>>, InjectError> {
        let Some(obj) = self.object(doc, key)? else {
            return Ok(None);
        };
        let mut out = BTreeMap::new();
        for (k, v) in obj.as_object().into_iter().flatten() {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(self.err(&format!("{key}.{k}"), "expected a string")),
            };
            out.insert(k.clone(), text);
        }
        Ok(Some(out))
    }
}
