//! CustomResourceDefinitions (apiextensions.k8s.io/v1) for every Istio resource the control
//! plane reads, and for IstioOperator.
//!
//! Schemas are structural. VirtualService, DestinationRule, Gateway and ServiceEntry have real
//! schemas for their fields down to the parts Bookinfo-style configs use; deeper, rarely used
//! objects (CORS, redirects, connection pools, TLS settings of servers) and the specs of the
//! other kinds keep `x-kubernetes-preserve-unknown-fields`, which is what a full schema would be
//! too large for here.

use serde_json::{Map, Value, json};

/// A schema for a string.
fn string() -> Value {
    json!({"type": "string"})
}

fn int32() -> Value {
    json!({"type": "integer", "format": "int32"})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

fn number() -> Value {
    json!({"type": "number"})
}

fn list(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

fn strings() -> Value {
    list(string())
}

fn map_of(values: Value) -> Value {
    json!({"type": "object", "additionalProperties": values})
}

fn open() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

fn enumerated(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

fn object(properties: &[(&str, Value)]) -> Value {
    let props: Map<String, Value> = properties
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    json!({"type": "object", "properties": props})
}

fn require(mut schema: Value, fields: &[&str]) -> Value {
    schema["required"] = json!(fields);
    schema
}

fn duration() -> Value {
    json!({"type": "string", "description": "A duration such as 1s or 500ms."})
}

fn percent() -> Value {
    object(&[("value", number())])
}

fn string_match() -> Value {
    object(&[
        ("exact", string()),
        ("prefix", string()),
        ("regex", string()),
    ])
}

fn port_selector() -> Value {
    object(&[("number", int32())])
}

fn destination() -> Value {
    require(
        object(&[
            ("host", string()),
            ("subset", string()),
            ("port", port_selector()),
        ]),
        &["host"],
    )
}

fn headers_operations() -> Value {
    let ops = object(&[
        ("set", map_of(string())),
        ("add", map_of(string())),
        ("remove", strings()),
    ]);
    object(&[("request", ops.clone()), ("response", ops)])
}

fn http_match() -> Value {
    object(&[
        ("name", string()),
        ("uri", string_match()),
        ("scheme", string_match()),
        ("method", string_match()),
        ("authority", string_match()),
        ("headers", map_of(string_match())),
        ("withoutHeaders", map_of(string_match())),
        ("queryParams", map_of(string_match())),
        ("port", int32()),
        ("sourceLabels", map_of(string())),
        ("sourceNamespace", string()),
        ("gateways", strings()),
        ("ignoreUriCase", boolean()),
        ("statPrefix", string()),
    ])
}

fn http_route() -> Value {
    let route_destination = require(
        object(&[
            ("destination", destination()),
            ("weight", int32()),
            ("headers", headers_operations()),
        ]),
        &["destination"],
    );
    let fault = object(&[
        (
            "delay",
            object(&[
                ("fixedDelay", duration()),
                ("exponentialDelay", duration()),
                ("percentage", percent()),
                ("percent", int32()),
            ]),
        ),
        (
            "abort",
            object(&[
                ("httpStatus", int32()),
                ("grpcStatus", string()),
                ("http2Error", string()),
                ("percentage", percent()),
            ]),
        ),
    ]);
    let retries = object(&[
        ("attempts", int32()),
        ("perTryTimeout", duration()),
        ("retryOn", string()),
        ("retryRemoteLocalities", boolean()),
        ("backoff", duration()),
    ]);
    object(&[
        ("name", string()),
        ("match", list(http_match())),
        ("route", list(route_destination)),
        ("redirect", open()),
        ("directResponse", open()),
        (
            "delegate",
            object(&[("name", string()), ("namespace", string())]),
        ),
        (
            "rewrite",
            object(&[
                ("uri", string()),
                ("authority", string()),
                ("uriRegexRewrite", open()),
            ]),
        ),
        ("timeout", duration()),
        ("retries", retries),
        ("fault", fault),
        ("mirror", destination()),
        ("mirrors", list(open())),
        ("mirrorPercentage", percent()),
        ("corsPolicy", open()),
        ("headers", headers_operations()),
    ])
}

fn route_destinations() -> Value {
    list(require(
        object(&[("destination", destination()), ("weight", int32())]),
        &["destination"],
    ))
}

fn virtual_service_spec() -> Value {
    let l4_match = object(&[
        ("destinationSubnets", strings()),
        ("port", int32()),
        ("sourceLabels", map_of(string())),
        ("sourceNamespace", string()),
        ("gateways", strings()),
    ]);
    let tls_match = require(
        object(&[
            ("sniHosts", strings()),
            ("destinationSubnets", strings()),
            ("port", int32()),
            ("sourceLabels", map_of(string())),
            ("sourceNamespace", string()),
            ("gateways", strings()),
        ]),
        &["sniHosts"],
    );
    object(&[
        ("hosts", strings()),
        ("gateways", strings()),
        ("http", list(http_route())),
        (
            "tls",
            list(object(&[
                ("match", list(tls_match)),
                ("route", route_destinations()),
            ])),
        ),
        (
            "tcp",
            list(object(&[
                ("match", list(l4_match)),
                ("route", route_destinations()),
            ])),
        ),
        ("exportTo", strings()),
    ])
}

fn traffic_policy() -> Value {
    let client_tls = object(&[
        (
            "mode",
            enumerated(&["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]),
        ),
        ("clientCertificate", string()),
        ("privateKey", string()),
        ("caCertificates", string()),
        ("caCrl", string()),
        ("credentialName", string()),
        ("subjectAltNames", strings()),
        ("sni", string()),
        ("insecureSkipVerify", boolean()),
    ]);
    let load_balancer = object(&[
        (
            "simple",
            enumerated(&[
                "UNSPECIFIED",
                "RANDOM",
                "PASSTHROUGH",
                "ROUND_ROBIN",
                "LEAST_REQUEST",
                "LEAST_CONN",
            ]),
        ),
        ("consistentHash", open()),
        ("localityLbSetting", open()),
        ("warmupDurationSecs", duration()),
        ("warmup", open()),
    ]);
    let port_settings = object(&[
        ("port", port_selector()),
        ("loadBalancer", load_balancer.clone()),
        ("connectionPool", open()),
        ("outlierDetection", open()),
        ("tls", client_tls.clone()),
    ]);
    object(&[
        ("loadBalancer", load_balancer),
        ("connectionPool", open()),
        ("outlierDetection", open()),
        ("tls", client_tls),
        ("portLevelSettings", list(port_settings)),
        ("tunnel", open()),
        ("proxyProtocol", open()),
        ("retryBudget", open()),
    ])
}

fn destination_rule_spec() -> Value {
    let subset = require(
        object(&[
            ("name", string()),
            ("labels", map_of(string())),
            ("trafficPolicy", traffic_policy()),
        ]),
        &["name"],
    );
    require(
        object(&[
            ("host", string()),
            ("trafficPolicy", traffic_policy()),
            ("subsets", list(subset)),
            ("exportTo", strings()),
            (
                "workloadSelector",
                object(&[("matchLabels", map_of(string()))]),
            ),
        ]),
        &["host"],
    )
}

fn gateway_spec() -> Value {
    let port = require(
        object(&[
            ("number", int32()),
            ("protocol", string()),
            ("name", string()),
            ("targetPort", int32()),
        ]),
        &["number", "protocol", "name"],
    );
    let server = require(
        object(&[
            ("port", port),
            ("bind", string()),
            ("hosts", strings()),
            ("tls", open()),
            ("defaultEndpoint", string()),
            ("name", string()),
        ]),
        &["port", "hosts"],
    );
    object(&[("servers", list(server)), ("selector", map_of(string()))])
}

fn service_entry_spec() -> Value {
    let port = require(
        object(&[
            ("number", int32()),
            ("protocol", string()),
            ("name", string()),
            ("targetPort", int32()),
        ]),
        &["number", "name"],
    );
    require(
        object(&[
            ("hosts", strings()),
            ("addresses", strings()),
            ("ports", list(port)),
            ("location", enumerated(&["MESH_EXTERNAL", "MESH_INTERNAL"])),
            (
                "resolution",
                enumerated(&["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"]),
            ),
            ("endpoints", list(open())),
            ("workloadSelector", object(&[("labels", map_of(string()))])),
            ("exportTo", strings()),
            ("subjectAltNames", strings()),
        ]),
        &["hosts"],
    )
}

/// What one CRD needs.
struct Kind {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    /// Served versions, oldest first; the first is the storage version (as Istio stores).
    versions: &'static [&'static str],
    spec: fn() -> Value,
    columns: fn() -> Value,
}

const NETWORKING: &[&str] = &["v1alpha3", "v1beta1", "v1"];
const SECURITY: &[&str] = &["v1beta1", "v1"];
const ISTIO_IO: &[&str] = &["istio-io", "networking-istio-io"];
const SECURITY_CATEGORIES: &[&str] = &["istio-io", "security-istio-io"];

fn no_columns() -> Value {
    json!([age_column()])
}

fn age_column() -> Value {
    json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
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
        categories: ISTIO_IO,
        versions: NETWORKING,
        spec: virtual_service_spec,
        columns: virtual_service_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "DestinationRule",
        plural: "destinationrules",
        short_names: &["dr"],
        categories: ISTIO_IO,
        versions: NETWORKING,
        spec: destination_rule_spec,
        columns: destination_rule_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "Gateway",
        plural: "gateways",
        short_names: &["gw"],
        categories: ISTIO_IO,
        versions: NETWORKING,
        spec: gateway_spec,
        columns: no_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "ServiceEntry",
        plural: "serviceentries",
        short_names: &["se"],
        categories: ISTIO_IO,
        versions: NETWORKING,
        spec: service_entry_spec,
        columns: service_entry_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "WorkloadEntry",
        plural: "workloadentries",
        short_names: &["we"],
        categories: ISTIO_IO,
        versions: NETWORKING,
        spec: open,
        columns: no_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "WorkloadGroup",
        plural: "workloadgroups",
        short_names: &["wg"],
        categories: ISTIO_IO,
        versions: NETWORKING,
        spec: open,
        columns: no_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "Sidecar",
        plural: "sidecars",
        short_names: &[],
        categories: ISTIO_IO,
        versions: NETWORKING,
        spec: open,
        columns: no_columns,
    },
    Kind {
        group: "networking.istio.io",
        kind: "EnvoyFilter",
        plural: "envoyfilters",
        short_names: &[],
        categories: ISTIO_IO,
        versions: &["v1alpha3"],
        spec: open,
        columns: no_columns,
    },
    Kind {
        group: "security.istio.io",
        kind: "PeerAuthentication",
        plural: "peerauthentications",
        short_names: &["pa"],
        categories: SECURITY_CATEGORIES,
        versions: SECURITY,
        spec: open,
        columns: no_columns,
    },
    Kind {
        group: "security.istio.io",
        kind: "AuthorizationPolicy",
        plural: "authorizationpolicies",
        short_names: &["ap"],
        categories: SECURITY_CATEGORIES,
        versions: SECURITY,
        spec: open,
        columns: no_columns,
    },
    Kind {
        group: "security.istio.io",
        kind: "RequestAuthentication",
        plural: "requestauthentications",
        short_names: &["ra"],
        categories: SECURITY_CATEGORIES,
        versions: SECURITY,
        spec: open,
        columns: no_columns,
    },
    Kind {
        group: "telemetry.istio.io",
        kind: "Telemetry",
        plural: "telemetries",
        short_names: &["telemetry"],
        categories: &["istio-io", "telemetry-istio-io"],
        versions: &["v1alpha1", "v1"],
        spec: open,
        columns: no_columns,
    },
    Kind {
        group: "install.istio.io",
        kind: "IstioOperator",
        plural: "istiooperators",
        short_names: &["iop", "io"],
        categories: &["istio-io"],
        versions: &["v1alpha1"],
        spec: open,
        columns: istio_operator_columns,
    },
];

/// Every CRD of an install, in a fixed order.
pub fn all() -> Vec<Value> {
    KINDS.iter().map(definition).collect()
}

/// The CRD of `kind` in `group` (the operator installs the IstioOperator one on its own).
pub fn definition_of(group: &str, kind: &str) -> Option<Value> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.kind == kind)
        .map(definition)
}

/// The `openAPIV3Schema` Lateen gives `kind` in `group` (for tests and validation).
pub fn schema(group: &str, kind: &str) -> Option<Value> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.kind == kind)
        .map(version_schema)
}

fn version_schema(kind: &Kind) -> Value {
    let mut spec = (kind.spec)();
    spec["description"] = json!(format!(
        "Configuration of a {}; see Istio's reference of {}.{}.",
        kind.kind, kind.group, kind.kind
    ));
    let mut properties = Map::new();
    properties.insert("spec".into(), spec);
    properties.insert("status".into(), open());
    json!({"type": "object", "properties": properties})
}

fn definition(kind: &Kind) -> Value {
    let singular = kind.kind.to_lowercase();
    let versions: Vec<Value> = kind
        .versions
        .iter()
        .enumerate()
        .map(|(index, version)| {
            json!({
                "name": version,
                "served": true,
                "storage": index == 0,
                "schema": {"openAPIV3Schema": version_schema(kind)},
                "subresources": {"status": {}},
                "additionalPrinterColumns": (kind.columns)(),
            })
        })
        .collect();
    let mut names = json!({
        "kind": kind.kind,
        "listKind": format!("{}List", kind.kind),
        "plural": kind.plural,
        "singular": singular,
        "categories": kind.categories,
    });
    if !kind.short_names.is_empty() {
        names["shortNames"] = json!(kind.short_names);
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{}.{}", kind.plural, kind.group),
        },
        "spec": {
            "group": kind.group,
            "names": names,
            "scope": "Namespaced",
            "versions": versions,
        },
    })
}
