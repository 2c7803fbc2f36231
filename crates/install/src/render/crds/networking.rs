//! networking.istio.io kinds other than VirtualService and DestinationRule: Gateway,
//! ServiceEntry, WorkloadEntry, WorkloadGroup, Sidecar, EnvoyFilter and ProxyConfig.

use serde_json::Value;

use super::common::{labels_selector, match_labels_selector, target_refs};
use super::schema::{
    SchemaExt, enumeration, int32, list, map, non_empty, non_negative_int32, object, port_number,
    preserved, string, string_map, strings, uint32,
};
use super::traffic::{
    connection_pool, destination, listener_port, server_tls, workload_entry,
    workload_entry_template,
};

/// `networking.istio.io/Gateway`.
pub fn gateway_spec() -> Value {
    let server = object(&[
        ("bind", string()),
        ("defaultEndpoint", string()),
        ("hosts", strings()),
        ("name", string()),
        (
            "port",
            listener_port().required(&["number", "protocol", "name"]),
        ),
        ("tls", server_tls()),
    ])
    .required(&["port", "hosts"]);
    object(&[("selector", string_map()), ("servers", list(server))])
}

/// `networking.istio.io/ServiceEntry`.
pub fn service_entry_spec() -> Value {
    let port = object(&[
        ("name", string().max_len(256)),
        ("number", port_number()),
        ("protocol", string().max_len(256)),
        ("targetPort", port_number()),
    ])
    .required(&["number", "name"]);
    let ports = list(port).max_items(256).list_map(&["name"]).rule(
        "self.all(l1, self.exists_one(l2, l1.number == l2.number))",
        "port number cannot be duplicated",
    );
    let hosts = list(string().rule("self != \"*\"", "hostname cannot be wildcard"))
        .min_items(1)
        .max_items(256);
    object(&[
        ("addresses", list(string().max_len(64)).max_items(256)),
        ("endpoints", list(workload_entry()).max_items(4096)),
        ("exportTo", strings()),
        ("hosts", hosts),
        ("location", enumeration(&["MESH_EXTERNAL", "MESH_INTERNAL"])),
        ("ports", ports),
        (
            "resolution",
            enumeration(&["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", "DYNAMIC_DNS"]),
        ),
        ("subjectAltNames", strings()),
        ("workloadSelector", labels_selector()),
    ])
    .required(&["hosts"])
    .rule(
        "(has(self.workloadSelector) ? 1 : 0) + (has(self.endpoints) ? 1 : 0) <= 1",
        "only one of WorkloadSelector or Endpoints can be set",
    )
    .rule(
        "!((has(self.addresses) ? self.addresses : []).exists(k, k.contains(\"/\")) && !((has(self.resolution) ? self.resolution : \"NONE\") in [\"STATIC\", \"NONE\"]))",
        "CIDR addresses are allowed only for NONE/STATIC resolution types",
    )
    .rule(
        "((has(self.resolution) ? self.resolution : \"NONE\") == \"NONE\") ? !has(self.endpoints) : true",
        "NONE mode cannot set endpoints",
    )
    .rule(
        "((has(self.resolution) ? self.resolution : \"\") == \"DNS_ROUND_ROBIN\") ? ((has(self.endpoints) ? self.endpoints : []).size() <= 1) : true",
        "DNS_ROUND_ROBIN mode cannot have multiple endpoints",
    )
}

/// `networking.istio.io/WorkloadEntry`.
pub fn workload_entry_spec() -> Value {
    workload_entry()
}

fn probe() -> Value {
    let header = object(&[
        ("name", string().pattern("^[-_A-Za-z0-9]+$")),
        ("value", string()),
    ]);
    let http_get = object(&[
        ("host", string()),
        ("httpHeaders", list(header)),
        ("path", string()),
        ("port", port_number()),
        (
            "scheme",
            string().rule(
                "self in [\"\", \"HTTP\", \"HTTPS\"]",
                "scheme must be one of [HTTP, HTTPS]",
            ),
        ),
    ])
    .required(&["port"]);
    let tcp_socket = object(&[("host", string()), ("port", port_number())]).required(&["port"]);
    let exec = object(&[("command", list(non_empty()))]).required(&["command"]);
    let grpc = object(&[("port", port_number()), ("service", string())]);
    object(&[
        ("exec", exec),
        ("failureThreshold", non_negative_int32()),
        ("grpc", grpc),
        ("httpGet", http_get),
        ("initialDelaySeconds", non_negative_int32()),
        ("periodSeconds", non_negative_int32()),
        ("successThreshold", non_negative_int32()),
        ("tcpSocket", tcp_socket),
        ("timeoutSeconds", non_negative_int32()),
    ])
    .one_of(&["httpGet", "tcpSocket", "exec", "grpc"])
}

/// `networking.istio.io/WorkloadGroup`.
pub fn workload_group_spec() -> Value {
    let metadata = object(&[
        ("annotations", string_map().max_props(256)),
        ("labels", string_map().max_props(256)),
    ]);
    object(&[
        ("metadata", metadata),
        ("probe", probe()),
        ("template", workload_entry_template()),
    ])
    .required(&["template"])
}

/// `networking.istio.io/Sidecar`.
pub fn sidecar_spec() -> Value {
    let capture_mode = || enumeration(&["DEFAULT", "IPTABLES", "NONE"]);
    let egress = object(&[
        ("bind", string()),
        ("captureMode", capture_mode()),
        ("hosts", strings()),
        ("port", listener_port()),
    ])
    .required(&["hosts"]);
    let ingress = object(&[
        ("bind", string()),
        ("captureMode", capture_mode()),
        ("connectionPool", connection_pool()),
        ("defaultEndpoint", string()),
        ("port", listener_port()),
        ("tls", server_tls()),
    ])
    .required(&["port"]);
    let outbound = object(&[
        ("egressProxy", destination()),
        ("mode", enumeration(&["REGISTRY_ONLY", "ALLOW_ANY"])),
    ]);
    object(&[
        ("egress", list(egress)),
        ("inboundConnectionPool", connection_pool()),
        ("ingress", list(ingress)),
        ("outboundTrafficPolicy", outbound),
        ("workloadSelector", labels_selector()),
    ])
}

/// `networking.istio.io/ProxyConfig`.
pub fn proxy_config_spec() -> Value {
    object(&[
        ("concurrency", non_negative_int32().nullable()),
        ("environmentVariables", map(string().max_len(2048))),
        ("image", object(&[("imageType", string())])),
        ("selector", match_labels_selector()),
    ])
}

fn filter_match() -> Value {
    object(&[
        ("name", string()),
        ("subFilter", object(&[("name", string())])),
    ])
}

fn envoy_filter_match() -> Value {
    let cluster = object(&[
        ("name", string()),
        ("portNumber", uint32()),
        ("service", string()),
        ("subset", string()),
    ]);
    let filter_chain = object(&[
        ("applicationProtocols", string()),
        ("destinationPort", uint32()),
        ("filter", filter_match()),
        ("name", string()),
        ("sni", string()),
        ("transportProtocol", string()),
        ("transportSocket", string()),
    ]);
    let listener = object(&[
        ("filterChain", filter_chain),
        ("listenerFilter", string()),
        ("name", string()),
        ("portName", string()),
        ("portNumber", uint32()),
    ]);
    let proxy = object(&[("metadata", string_map()), ("proxyVersion", string())]);
    let route = object(&[
        (
            "action",
            enumeration(&["ANY", "ROUTE", "REDIRECT", "DIRECT_RESPONSE"]),
        ),
        ("name", string()),
    ]);
    let route_configuration = object(&[
        ("gateway", string()),
        ("name", string()),
        ("portName", string()),
        ("portNumber", uint32()),
        (
            "vhost",
            object(&[
                ("domainName", string()),
                ("name", string()),
                ("route", route),
            ]),
        ),
    ]);
    let waypoint = object(&[
        ("filter", filter_match()),
        ("portNumber", port_number()),
        ("route", object(&[("name", string())])),
    ]);
    object(&[
        ("cluster", cluster),
        (
            "context",
            enumeration(&[
                "ANY",
                "SIDECAR_INBOUND",
                "SIDECAR_OUTBOUND",
                "GATEWAY",
                "WAYPOINT",
            ]),
        ),
        ("listener", listener),
        ("proxy", proxy),
        ("routeConfiguration", route_configuration),
        ("waypoint", waypoint),
    ])
    .one_of(&["listener", "routeConfiguration", "cluster", "waypoint"])
    .rule(
        "has(self.context) ? ((self.context == \"WAYPOINT\") ? has(self.waypoint) : !has(self.waypoint)) : !has(self.waypoint)",
        "only support waypointMatch when context is WAYPOINT",
    )
}

/// `networking.istio.io/EnvoyFilter`.
pub fn envoy_filter_spec() -> Value {
    let patch = object(&[
        (
            "filterClass",
            enumeration(&["UNSPECIFIED", "AUTHN", "AUTHZ", "STATS"]),
        ),
        (
            "operation",
            enumeration(&[
                "INVALID",
                "MERGE",
                "ADD",
                "REMOVE",
                "INSERT_BEFORE",
                "INSERT_AFTER",
                "INSERT_FIRST",
                "REPLACE",
                "MERGE_AND_REPLACE_LIST",
            ]),
        ),
        ("value", preserved()),
    ]);
    let config_patch = object(&[
        (
            "applyTo",
            enumeration(&[
                "INVALID",
                "LISTENER",
                "FILTER_CHAIN",
                "NETWORK_FILTER",
                "HTTP_FILTER",
                "ROUTE_CONFIGURATION",
                "VIRTUAL_HOST",
                "HTTP_ROUTE",
                "CLUSTER",
                "EXTENSION_CONFIG",
                "BOOTSTRAP",
                "LISTENER_FILTER",
            ]),
        ),
        ("match", envoy_filter_match()),
        ("patch", patch),
    ]);
    object(&[
        ("configPatches", list(config_patch)),
        ("priority", int32()),
        ("targetRefs", target_refs()),
        ("workloadSelector", labels_selector()),
    ])
    .rule(
        "(has(self.workloadSelector) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1",
        "only one of targetRefs or workloadSelector can be set",
    )
}
