//! Reading configuration text: multi-document YAML (JSON is valid YAML and goes the same way),
//! `kind: List`, dispatch on apiVersion+kind, strict typed decoding.
//!
//! Policy for kinds:
//! - a supported kind in an accepted version is decoded; unknown fields are errors;
//! - an unknown kind, a kind in the wrong group, or an unaccepted version under
//!   `networking.istio.io`/`security.istio.io` is an **error** (most likely a typo);
//! - ProxyConfig is decoded and validated (errors reject it as Istio would) but not returned:
//!   lateen does not apply it yet, which a warning says;
//! - Istio kinds this crate does not model (EnvoyFilter, WasmPlugin...)
//!   and non-Istio objects (Deployments, Services...) are **skipped with a warning**, so a
//!   mixed manifest such as Bookinfo's still loads.
//!
//! Empty documents (and documents that are only comments or `null`) are skipped; document
//! indexes count the remaining ones from 0.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{
    ConfigError, ConfigErrors, FieldIssue, FieldPath, PathSegment, ResourceRef, Severity,
};
use crate::meta::{Kind, NETWORKING_GROUP, Object, SECURITY_GROUP, TELEMETRY_GROUP};
use crate::networking::proxy_config::ProxyConfigSpec;
use crate::node::Node;
use crate::resource::Resource;

/// One resource read from a source, with where it came from.
#[derive(Clone, Debug)]
pub struct Document {
    pub resource: Resource,
    /// The source name the caller passed.
    pub source_name: String,
    /// Index among the non-empty documents of the source, from 0.
    pub index: usize,
    /// Line where the resource starts.
    pub line: Option<u64>,
    /// Where the resource sits in its document: empty, or `items[i]` inside a `kind: List`.
    pub prefix: FieldPath,
    node: Node,
}

impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        self.resource == other.resource
            && self.source_name == other.source_name
            && self.index == other.index
    }
}

impl Document {
    /// Locates a validation issue of this document: adds source, document, line and resource.
    pub fn locate(&self, issue: FieldIssue) -> ConfigError {
        ConfigError {
            severity: issue.severity,
            source_name: self.source_name.clone(),
            document: Some(self.index),
            line: self.node.line_of(&issue.path).or(self.line),
            resource: Some(ResourceRef {
                kind: self.resource.kind().to_string(),
                namespace: self.resource.namespace().to_string(),
                name: self.resource.name().to_string(),
            }),
            path: extend(&self.prefix, &issue.path),
            message: issue.message,
        }
    }

    /// The line of a field of this resource (path relative to the resource), when known.
    pub fn line_of(&self, path: &FieldPath) -> Option<u64> {
        self.node.line_of(path)
    }
}

/// What [`parse`] found: the resources, and every error and warning.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub documents: Vec<Document>,
    /// Errors and warnings (see [`ConfigError::severity`]).
    pub problems: Vec<ConfigError>,
}

impl Parsed {
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.documents.iter().map(|d| &d.resource)
    }
}

/// Reads every document of `text` without validating semantics. Never fails as a whole: a
/// broken document becomes an error in `problems` and the others are still returned (except
/// for YAML syntax errors, which stop the reading of the whole text).
pub fn parse(text: &str, source_name: &str) -> Parsed {
    parse_in(text, source_name, None)
}

/// [`parse`], with `namespace` for resources that name none (instead of `default`), as
/// `kubectl apply -n` and `istioctl analyze --namespace` read files.
pub fn parse_in_namespace(text: &str, source_name: &str, namespace: &str) -> Parsed {
    parse_in(text, source_name, Some(namespace))
}

fn parse_in(text: &str, source_name: &str, namespace: Option<&str>) -> Parsed {
    let mut out = Parsed::default();
    let nodes = match read_nodes(text, source_name) {
        Ok(n) => n,
        Err(e) => {
            out.problems.push(e);
            return out;
        }
    };
    for (index, node) in nodes.into_iter().enumerate() {
        let mut ctx = DocContext {
            source_name,
            namespace,
            index,
            item_prefix: FieldPath::root(),
            out: &mut out,
        };
        ctx.dispatch(node, FieldPath::root());
    }
    out
}

/// Parses the YAML into line-aware trees, one per non-empty document.
#[allow(clippy::result_large_err)] // one error per call, on the failure path only
pub(crate) fn read_nodes(text: &str, source_name: &str) -> Result<Vec<Node>, ConfigError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut nodes = serde_saphyr::from_multiple_with_options::<Node>(text, yaml_options())
        .map_err(|e| ConfigError {
            severity: Severity::Error,
            source_name: source_name.to_string(),
            document: None,
            line: e.location().map(|l| l.line()).filter(|l| *l > 0),
            resource: None,
            path: FieldPath::root(),
            message: yaml_message(&e),
        })?;
    for node in &mut nodes {
        node.go_flow_scalars(&lines);
    }
    Ok(nodes)
}

/// Deepest nesting of mappings/sequences accepted. Istio resources need about 12 levels
/// (a `kind: List` adds 2); the limit keeps recursion well inside a 2 MiB thread stack (tokio's
/// worker default) even in debug builds.
pub const MAX_NESTING_DEPTH: usize = 32;

/// Most YAML documents (`---`-separated) one file may hold; a file with more is refused as a
/// whole (a guard against separator storms; split such a file).
pub const MAX_DOCUMENTS: usize = 1024;

fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_NESTING_DEPTH;
    budget.max_documents = MAX_DOCUMENTS;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

fn yaml_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = first_line(&text);
    if first.contains("Depth {") {
        return format!("invalid YAML: nesting is deeper than {MAX_NESTING_DEPTH} levels");
    }
    if first.contains("Documents {") {
        return format!(
            "invalid YAML: the file holds more than {MAX_DOCUMENTS} documents, the most one file may hold; split it into several files"
        );
    }
    // saphyr's other size limits (nodes, aliases, scalar length) name their Rust variant.
    if let Some(breach) = first.split("budget breached: ").nth(1) {
        return format!("invalid YAML: the file is over a size limit ({breach})");
    }
    format!(
        "invalid YAML: {}",
        first.replace(", set DuplicateKeyPolicy in Options if acceptable", "")
    )
}

/// saphyr's messages may carry a rendered snippet after the first line; ours carry the line.
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

struct DocContext<'a> {
    source_name: &'a str,
    /// For resources without `metadata.namespace`; `None`: leave unset (read as `default`).
    namespace: Option<&'a str>,
    index: usize,
    /// `items[i]` while dispatching an item of a `kind: List`.
    item_prefix: FieldPath,
    out: &'a mut Parsed,
}

impl DocContext<'_> {
    fn problem(
        &mut self,
        severity: Severity,
        node: &Node,
        resource: Option<ResourceRef>,
        path: FieldPath,
        message: String,
    ) {
        self.out.problems.push(ConfigError {
            severity,
            source_name: self.source_name.to_string(),
            document: Some(self.index),
            line: node.line_of(&path),
            resource,
            path,
            message,
        });
    }

    /// `prefix` is the path of this object inside its document (`items[2]` inside a List).
    fn dispatch(&mut self, node: Node, prefix: FieldPath) {
        let json = node.to_json();
        let Value::Object(map) = &json else {
            let msg = "document is not a mapping (expected an object with apiVersion and kind)";
            self.problem(Severity::Error, &node, None, prefix, msg.into());
            return;
        };
        let text = |key: &str| {
            map.get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        let resource = resource_ref(&json, &kind, self.namespace);
        if api_version.is_empty() || kind.is_empty() {
            let field = if api_version.is_empty() {
                "apiVersion"
            } else {
                "kind"
            };
            let msg = format!("missing or non-string {field}");
            self.problem(Severity::Error, &node, resource, prefix.field(field), msg);
            return;
        }
        if kind == "List" && !api_version.contains('/') {
            return self.dispatch_list(node, prefix);
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        if group == NETWORKING_GROUP && kind == PROXY_CONFIG_KIND {
            return self.check_proxy_config(&node, &json, resource, &prefix, &api_version);
        }
        let Some(kind_enum) = known_kind(group, &kind) else {
            let (severity, msg) = unknown_kind_verdict(group, &kind, &api_version);
            self.problem(severity, &node, resource, prefix.field("kind"), msg);
            return;
        };
        if !kind_enum.versions().contains(&version) {
            let msg = format!(
                "unsupported apiVersion {api_version} for {kind} (accepted: {})",
                kind_enum
                    .versions()
                    .iter()
                    .map(|v| format!("{group}/{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.problem(
                Severity::Error,
                &node,
                resource,
                prefix.field("apiVersion"),
                msg,
            );
            return;
        }
        match decode(kind_enum, &json) {
            Ok(mut resource) => {
                if let Some(ns) = self.namespace {
                    let meta = resource.metadata_mut();
                    if meta.namespace.as_deref().is_none_or(str::is_empty) {
                        meta.namespace = Some(ns.to_string());
                    }
                }
                // Paths inside the resource are relative to the object, so keep its subtree.
                let object_node = node.deepest(&prefix).clone();
                let line = (object_node.line > 0).then_some(object_node.line);
                self.out.documents.push(Document {
                    resource,
                    source_name: self.source_name.to_string(),
                    index: self.index,
                    line,
                    prefix: self.item_prefix.clone(),
                    node: object_node,
                });
            }
            Err((path, message)) => {
                let full = extend(&prefix, &path);
                self.problem(Severity::Error, &node, resource, full, message);
            }
        }
    }

    /// ProxyConfig is validated like a modelled kind (so a bad one is rejected as Istio
    /// does) but not returned as a document: lateen does not apply it yet, and says so.
    fn check_proxy_config(
        &mut self,
        node: &Node,
        json: &Value,
        resource: Option<ResourceRef>,
        prefix: &FieldPath,
        api_version: &str,
    ) {
        if !api_version.ends_with("/v1beta1") {
            let msg = format!(
                "unsupported apiVersion {api_version} for {PROXY_CONFIG_KIND} (accepted: {NETWORKING_GROUP}/v1beta1)"
            );
            let path = prefix.field("apiVersion");
            self.problem(Severity::Error, node, resource, path, msg);
            return;
        }
        match decode_typed::<Object<ProxyConfigSpec>>(json) {
            Ok(object) => {
                for issue in crate::validate::validate_proxy_config(&object.spec) {
                    let path = extend(prefix, &issue.path);
                    self.problem(issue.severity, node, resource.clone(), path, issue.message);
                }
            }
            Err((path, message)) => {
                let full = extend(prefix, &path);
                self.problem(Severity::Error, node, resource, full, message);
            }
        }
    }

    fn dispatch_list(&mut self, node: Node, prefix: FieldPath) {
        let items = match node.get("items") {
            Some(items) => items.clone(),
            None => return,
        };
        match items.value {
            crate::node::NodeValue::Seq(children) => {
                for (i, child) in children.into_iter().enumerate() {
                    // Re-root each item so its paths read `items[i].spec...` in messages.
                    let item_prefix = prefix.field("items").index(i);
                    self.dispatch_item(child, item_prefix);
                }
            }
            crate::node::NodeValue::Null => {}
            _ => {
                let msg = "List items must be a sequence".to_string();
                self.problem(Severity::Error, &node, None, prefix.field("items"), msg);
            }
        }
    }

    /// Dispatches a List item: errors carry the `items[i].` prefix, documents keep the item.
    fn dispatch_item(&mut self, item: Node, item_prefix: FieldPath) {
        let before = self.out.problems.len();
        let outer = std::mem::replace(&mut self.item_prefix, item_prefix.clone());
        self.dispatch(item, FieldPath::root());
        self.item_prefix = outer;
        for problem in &mut self.out.problems[before..] {
            problem.path = extend(&item_prefix, &problem.path);
        }
    }
}

fn extend(prefix: &FieldPath, path: &FieldPath) -> FieldPath {
    let mut segments = prefix.segments().to_vec();
    segments.extend_from_slice(path.segments());
    FieldPath::from_segments(segments)
}

/// Kind/namespace/name from the raw JSON, for messages about objects that did not decode.
fn resource_ref(json: &Value, kind: &str, namespace: Option<&str>) -> Option<ResourceRef> {
    if kind.is_empty() {
        return None;
    }
    let meta = json.get("metadata");
    let get = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let namespace = match get("namespace") {
        ns if ns.is_empty() => namespace
            .unwrap_or(crate::meta::DEFAULT_NAMESPACE)
            .to_string(),
        ns => ns,
    };
    Some(ResourceRef {
        kind: kind.to_string(),
        namespace,
        name: get("name"),
    })
}

fn known_kind(group: &str, kind: &str) -> Option<Kind> {
    Kind::from_kind_str(kind).filter(|k| k.group() == group)
}

/// How the warning about a skipped document starts.
pub const SKIPPED_PREFIX: &str = "skipped: ";

/// How the warning about a skipped non-Istio object (a Service, a Deployment) ends.
pub const NOT_ISTIO: &str = "is not an Istio configuration resource";

/// Real Istio kinds this crate does not model; skipped with a warning.
const UNMODELLED_ISTIO_KINDS: &[&str] = &["EnvoyFilter"];

/// Validated but not applied (see [`crate::networking::proxy_config`]).
const PROXY_CONFIG_KIND: &str = "ProxyConfig";

fn unknown_kind_verdict(group: &str, kind: &str, api_version: &str) -> (Severity, String) {
    let istio_group = [NETWORKING_GROUP, SECURITY_GROUP, TELEMETRY_GROUP].contains(&group);
    if istio_group {
        if UNMODELLED_ISTIO_KINDS.contains(&kind) {
            return (
                Severity::Warning,
                format!("{SKIPPED_PREFIX}{kind} ({api_version}) is not supported by lateen"),
            );
        }
        if let Some(k) = Kind::from_kind_str(kind) {
            return (
                Severity::Error,
                format!("{kind} belongs to API group {}, not {group}", k.group()),
            );
        }
        return (
            Severity::Error,
            format!("unknown kind {kind:?} in API group {group}"),
        );
    }
    if group.ends_with(".istio.io") {
        return (
            Severity::Warning,
            format!("{SKIPPED_PREFIX}{kind} ({api_version}) is not supported by lateen"),
        );
    }
    (
        Severity::Warning,
        format!("{SKIPPED_PREFIX}{kind} ({api_version}) {NOT_ISTIO}"),
    )
}

fn decode(kind: Kind, json: &Value) -> Result<Resource, (FieldPath, String)> {
    Ok(match kind {
        Kind::VirtualService => Resource::VirtualService(decode_object(json)?),
        Kind::DestinationRule => Resource::DestinationRule(decode_object(json)?),
        Kind::Gateway => Resource::Gateway(decode_object(json)?),
        Kind::ServiceEntry => Resource::ServiceEntry(decode_object(json)?),
        Kind::WorkloadEntry => Resource::WorkloadEntry(decode_object(json)?),
        Kind::WorkloadGroup => Resource::WorkloadGroup(decode_object(json)?),
        Kind::Sidecar => Resource::Sidecar(decode_object(json)?),
        Kind::PeerAuthentication => Resource::PeerAuthentication(decode_object(json)?),
        Kind::AuthorizationPolicy => Resource::AuthorizationPolicy(decode_object(json)?),
        Kind::RequestAuthentication => Resource::RequestAuthentication(decode_object(json)?),
        Kind::Telemetry => Resource::Telemetry(decode_object(json)?),
    })
}

fn decode_object<S: DeserializeOwned>(json: &Value) -> Result<Object<S>, (FieldPath, String)> {
    decode_typed(json)
}

/// Strict typed decoding with the failing field's path.
pub(crate) fn decode_typed<T: DeserializeOwned>(json: &Value) -> Result<T, (FieldPath, String)> {
    serde_path_to_error::deserialize::<_, T>(json).map_err(|e| {
        let segments: Vec<PathSegment> = e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Some(PathSegment::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(PathSegment::Field(key.clone())),
                serde_path_to_error::Segment::Enum { variant } => {
                    Some(PathSegment::Field(variant.clone()))
                }
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        (FieldPath::from_segments(segments), e.inner().to_string())
    })
}

/// The result of [`load`]: valid documents plus the warnings found on the way.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub documents: Vec<Document>,
    pub warnings: Vec<ConfigError>,
}

impl Loaded {
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.documents.iter().map(|d| &d.resource)
    }
}

/// Parses and validates: `Ok` when there is no error (warnings are returned alongside),
/// otherwise every error (and warning) of every document.
pub fn load(text: &str, source_name: &str) -> Result<Loaded, ConfigErrors> {
    let mut parsed = parse(text, source_name);
    for doc in &parsed.documents {
        let issues = crate::validate::validate(&doc.resource);
        parsed
            .problems
            .extend(issues.into_iter().map(|i| doc.locate(i)));
    }
    // Reading order: by document, then by line (problems without a line first).
    parsed.problems.sort_by_key(|p| (p.document, p.line));
    if parsed.has_errors() {
        return Err(ConfigErrors {
            errors: parsed.problems,
        });
    }
    Ok(Loaded {
        documents: parsed.documents,
        warnings: parsed.problems,
    })
}

/// Validates already parsed documents; returns located errors and warnings.
pub fn validate_documents(documents: &[Document]) -> Vec<ConfigError> {
    documents
        .iter()
        .flat_map(|doc| {
            crate::validate::validate(&doc.resource)
                .into_iter()
                .map(|i| doc.locate(i))
        })
        .collect()
}
