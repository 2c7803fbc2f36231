//! CustomResourceDefinitions (apiextensions.k8s.io/v1) for every Istio resource the control
//! plane reads, as Istio installs them, and for IstioOperator.
//!
//! Each CRD has Istio's served versions, storage version, names, printer columns and status
//! subresource, and a structural schema with Istio's field types, enums, formats, bounds,
//! required fields and `x-kubernetes-validations` CEL rules, so that an API server rejects
//! what Istio's CRDs reject and accepts what they accept (`tests/crd_corpus_kube.rs` checks
//! this against a real kube-apiserver). Field descriptions are left out; `kubectl explain`
//! shows the types. The schemas are spelt out per API group:
//!
//! - [`schema`]: the builders (`object`, `list`, `uint32`, `.rule(...)`, ...);
//! - [`common`]: status, workload selectors and target references shared by all groups;
//! - [`traffic`]: networking types several kinds share (destinations, connection pools,
//!   server TLS, workload entries);
//! - [`virtual_service`], [`destination_rule`], [`networking`]: networking.istio.io;
//! - [`security`]: security.istio.io; [`telemetry`]: telemetry.istio.io.

mod common;
mod destination_rule;
mod networking;
mod schema;
mod security;
mod telemetry;
mod traffic;
mod virtual_service;

use serde_json::{Map, Value, json};

use self::schema::preserved;

/// What one CRD needs.
struct Kind {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    /// Served versions, in the order Istio lists them.
    versions: &'static [&'static str],
    /// The version objects are stored as.
    storage: &'static str,
    /// The `istio` label Istio's chart puts on the CRD, if any.
    istio_label: Option<&'static str>,
    /// Whether `spec` must be present (Istio requires it where the spec has required fields).
    spec_required: bool,
    spec: fn() -> Value,
    columns: fn() -> Value,
}

const NETWORKING: &[&str] = &["v1", "v1alpha3", "v1beta1"];
const SECURITY: &[&str] = &["v1", "v1beta1"];
const NETWORKING_CATEGORIES: &[&str] = &["istio-io", "networking-istio-io"];
const SECURITY_CATEGORIES: &[&str] = &["istio-io", "security-istio-io"];

fn age_column() -> Value {
    json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "When the object was created."})
}

fn no_columns() -> Value {
    json!([])
}

fn age_only() -> Value {
    json!([age_column()])
}

fn virtual_service_columns() -> Value {
    json!([
        {"name": "Gateways", "type": "string", "jsonPath": ".spec.gateways", "description": "The names of gateways and sidecars that should apply these routes"},
        {"name": "Hosts", "type": "string", "jsonPath": ".spec.hosts", "description": "The destination hosts to which traffic is being sent"},
        age_column(),
    ])
}

fn destination_rule_columns() -> Value {
    json!([
        {"name": "Host", "type": "string", "jsonPath": ".spec.host", "description": "The name of a service from the service registry"},
        age_column(),
    ])
}

fn service_entry_columns() -> Value {
    json!([
        {"name": "Hosts", "type": "string", "jsonPath": ".spec.hosts", "description": "The hosts associated with the ServiceEntry"},
        {"name": "Location", "type": "string", "jsonPath": ".spec.location", "description": "Whether the service is external to the mesh or part of the mesh (MESH_EXTERNAL or MESH_INTERNAL)"},
        {"name": "Resolution", "type": "string", "jsonPath": ".spec.resolution", "description": "Service resolution mode for the hosts (NONE, STATIC, or DNS)"},
        age_column(),
    ])
}

fn workload_entry_columns() -> Value {
    json!([
        age_column(),
        {"name": "Address", "type": "string", "jsonPath": ".spec.address", "description": "Address associated with the network endpoint."},
    ])
}

fn peer_authentication_columns() -> Value {
    json!([
        {"name": "Mode", "type": "string", "jsonPath": ".spec.mtls.mode", "description": "Defines the mTLS mode used for peer authentication."},
        age_column(),
    ])
}

fn authorization_policy_columns() -> Value {
    json!([
        {"name": "Action", "type": "string", "jsonPath": ".spec.action", "description": "The operation to take."},
        age_column(),
    ])
}

/// What `kubectl get istiooperators` shows: the revision, and the operator's status.
fn istio_operator_columns() -> Value {
    json!([
        {"name": "Revision", "type": "string", "jsonPath": ".spec.revision", "description": "Istio control plane revision"},
        {"name": "Status", "type": "string", "jsonPath": ".status.status", "description": "IOP current state"},
        age_column(),
    ])
}

const KINDS: &[Kind] = &[
    Kind {
        group: "networking.istio.io",
        kind: "VirtualService",
        plural: "virtualservices",
        short_names: &["vs"],
        categories: NETWORKING_CATEGORIES,
        versions: NETWORKING,
        storage: "v1",
        istio_label: None,
        spec_required: false,
        spec: virtual_service::virtual_service_spec,
        columns: virtual_service_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "DestinationRule",
        plural: "destinationrules",
        short_names: &["dr"],
        categories: NETWORKING_CATEGORIES,
        versions: NETWORKING,
        storage: "v1",
        istio_label: None,
        spec_required: false,
        spec: destination_rule::destination_rule_spec,
        columns: destination_rule_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "Gateway",
        plural: "gateways",
        short_names: &["gw"],
        categories: NETWORKING_CATEGORIES,
        versions: NETWORKING,
        storage: "v1",
        istio_label: None,
        spec_required: false,
        spec: networking::gateway_spec,
        columns: no_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "ServiceEntry",
        plural: "serviceentries",
        short_names: &["se"],
        categories: NETWORKING_CATEGORIES,
        versions: NETWORKING,
        storage: "v1",
        istio_label: None,
        spec_required: true,
        spec: networking::service_entry_spec,
        columns: service_entry_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "WorkloadEntry",
        plural: "workloadentries",
        short_names: &["we"],
        categories: NETWORKING_CATEGORIES,
        versions: NETWORKING,
        storage: "v1",
        istio_label: None,
        spec_required: true,
        spec: networking::workload_entry_spec,
        columns: workload_entry_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "WorkloadGroup",
        plural: "workloadgroups",
        short_names: &["wg"],
        categories: NETWORKING_CATEGORIES,
        versions: NETWORKING,
        storage: "v1",
        istio_label: None,
        spec_required: true,
        spec: networking::workload_group_spec,
        columns: age_only,
    },
    Kind {
        group: "networking.istio.io",
        kind: "Sidecar",
        plural: "sidecars",
        short_names: &[],
        categories: NETWORKING_CATEGORIES,
        versions: NETWORKING,
        storage: "v1",
        istio_label: None,
        spec_required: false,
        spec: networking::sidecar_spec,
        columns: no_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "EnvoyFilter",
        plural: "envoyfilters",
        short_names: &[],
        categories: NETWORKING_CATEGORIES,
        versions: &["v1alpha3"],
        storage: "v1alpha3",
        istio_label: None,
        spec_required: false,
        spec: networking::envoy_filter_spec,
        columns: no_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "ProxyConfig",
        plural: "proxyconfigs",
        short_names: &[],
        categories: NETWORKING_CATEGORIES,
        versions: &["v1beta1"],
        storage: "v1beta1",
        istio_label: None,
        spec_required: false,
        spec: networking::proxy_config_spec,
        columns: no_columns,
    },
    Kind {
        group: "security.istio.io",
        kind: "PeerAuthentication",
        plural: "peerauthentications",
        short_names: &["pa"],
        categories: SECURITY_CATEGORIES,
        versions: SECURITY,
        storage: "v1",
        istio_label: Some("security"),
        spec_required: false,
        spec: security::peer_authentication_spec,
        columns: peer_authentication_columns,
    },
    Kind {
        group: "security.istio.io",
        kind: "AuthorizationPolicy",
        plural: "authorizationpolicies",
        short_names: &["ap"],
        categories: SECURITY_CATEGORIES,
        versions: SECURITY,
        storage: "v1",
        istio_label: Some("security"),
        spec_required: false,
        spec: security::authorization_policy_spec,
        columns: authorization_policy_columns,
    },
    Kind {
        group: "security.istio.io",
        kind: "RequestAuthentication",
        plural: "requestauthentications",
        short_names: &["ra"],
        categories: SECURITY_CATEGORIES,
        versions: SECURITY,
        storage: "v1",
        istio_label: Some("security"),
        spec_required: false,
        spec: security::request_authentication_spec,
        columns: no_columns,
    },
    Kind {
        group: "telemetry.istio.io",
        kind: "Telemetry",
        plural: "telemetries",
        short_names: &["telemetry"],
        categories: &["istio-io", "telemetry-istio-io"],
        versions: &["v1", "v1alpha1"],
        // Istio still stores Telemetry as v1alpha1 while serving v1.
        storage: "v1alpha1",
        istio_label: Some("telemetry"),
        spec_required: false,
        spec: telemetry::telemetry_spec,
        columns: age_only,
    },
    Kind {
        group: "install.istio.io",
        kind: "IstioOperator",
        plural: "istiooperators",
        short_names: &["iop", "io"],
        categories: &["istio-io"],
        versions: &["v1alpha1"],
        storage: "v1alpha1",
        istio_label: None,
        spec_required: false,
        // The operator's values tree is open-ended, as Istio's own IstioOperator CRD had it.
        spec: preserved,
        columns: istio_operator_columns,
    },
];

/// Every CRD of an install, in a fixed order.
pub fn all() -> Vec<Value> {
    KINDS.iter().map(definition).collect()
}

/// The CRD of `kind` in `group` (the operator installs the IstioOperator one on its own).
pub fn definition_of(group: &str, kind: &str) -> Option<Value> {
    find(group, kind).map(definition)
}

/// The `openAPIV3Schema` Lateen gives `kind` in `group` (for tests and validation).
pub fn schema(group: &str, kind: &str) -> Option<Value> {
    find(group, kind).map(version_schema)
}

fn find(group: &str, kind: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.group == group && k.kind == kind)
}

fn version_schema(kind: &Kind) -> Value {
    let mut spec = (kind.spec)();
    spec["description"] = json!(format!(
        "Configuration of a {}; see Istio's reference of {}.{}.",
        kind.kind, kind.group, kind.kind
    ));
    let mut properties = Map::new();
    properties.insert("spec".into(), spec);
    properties.insert("status".into(), common::status());
    let mut schema = json!({"type": "object", "properties": properties});
    if kind.spec_required {
        schema["required"] = json!(["spec"]);
    }
    schema
}

fn definition(kind: &Kind) -> Value {
    // One schema serves every version: Istio's are identical across versions.
    let schema = version_schema(kind);
    let versions: Vec<Value> = kind
        .versions
        .iter()
        .map(|version| {
            let mut entry = json!({
                "name": version,
                "served": true,
                "storage": *version == kind.storage,
                "schema": {"openAPIV3Schema": schema.clone()},
                "subresources": {"status": {}},
            });
            let columns = (kind.columns)();
            if columns.as_array().is_some_and(|c| !c.is_empty()) {
                entry["additionalPrinterColumns"] = columns;
            }
            entry
        })
        .collect();
    let mut names = json!({
        "kind": kind.kind,
        "listKind": format!("{}List", kind.kind),
        "plural": kind.plural,
        "singular": kind.kind.to_lowercase(),
        "categories": kind.categories,
    });
    if !kind.short_names.is_empty() {
        names["shortNames"] = json!(kind.short_names);
    }
    // The labels Istio's base chart puts on its CRDs, which Istio's tooling selects on.
    let mut labels =
        json!({"app": "istio-pilot", "chart": "istio", "heritage": "Tiller", "release": "istio"});
    if let Some(istio) = kind.istio_label {
        labels["istio"] = json!(istio);
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{}.{}", kind.plural, kind.group),
            "labels": labels,
        },
        "spec": {
            "group": kind.group,
            "names": names,
            "scope": "Namespaced",
            "versions": versions,
        },
    })
}
