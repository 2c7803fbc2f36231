//! networking.istio.io message types that several kinds share: destinations, ports, the
//! connection pool, server TLS settings and a workload entry.

use serde_json::Value;

use super::schema::{
    SchemaExt, any_duration, boolean, duration, enumeration, int32, list, map, nullable_boolean,
    object, port_number, string, string_map, strings, uint32,
};

/// `PortSelector`: a port by number.
pub fn port_selector() -> Value {
    object(&[("number", uint32())])
}

/// `Destination`: a host, optionally a subset and a port.
pub fn destination() -> Value {
    object(&[
        ("host", string()),
        ("port", port_selector()),
        ("subset", string()),
    ])
    .required(&["host"])
}

/// `Port` of a Gateway server or a Sidecar listener.
pub fn listener_port() -> Value {
    object(&[
        ("name", string()),
        ("number", uint32()),
        ("protocol", string()),
        ("targetPort", uint32()),
    ])
}

/// `ConnectionPoolSettings` of a DestinationRule and of a Sidecar's inbound side.
pub fn connection_pool() -> Value {
    let keepalive = object(&[
        ("interval", duration()),
        ("probes", uint32()),
        ("time", duration()),
    ]);
    let tcp = object(&[
        ("connectTimeout", duration()),
        ("idleTimeout", any_duration()),
        ("maxConnectionDuration", duration()),
        ("maxConnections", int32()),
        ("tcpKeepalive", keepalive),
    ]);
    let http = object(&[
        (
            "h2UpgradePolicy",
            enumeration(&["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"]),
        ),
        ("http1MaxPendingRequests", int32()),
        (
            "http2KeepAlive",
            object(&[("interval", duration()), ("timeout", duration())]),
        ),
        ("http2MaxRequests", int32()),
        ("idleTimeout", duration()),
        ("maxConcurrentStreams", int32()),
        ("maxRequestsPerConnection", int32()),
        ("maxRetries", int32()),
        ("useClientProtocol", boolean()),
    ]);
    object(&[("http", http), ("tcp", tcp)])
}

/// `ServerTLSSettings` of a Gateway server or a Sidecar ingress listener.
pub fn server_tls() -> Value {
    let versions = ["TLS_AUTO", "TLSV1_0", "TLSV1_1", "TLSV1_2", "TLSV1_3"];
    let certificate = object(&[
        ("caCertificates", string()),
        ("privateKey", string()),
        ("serverCertificate", string()),
    ]);
    object(&[
        ("caCertCredentialName", string()),
        ("caCertificates", string()),
        ("caCrl", string()),
        ("cipherSuites", strings()),
        ("credentialName", string()),
        ("credentialNames", strings().min_items(1).max_items(2)),
        ("ecdhCurves", strings()),
        ("httpsRedirect", boolean()),
        ("insecureSkipVerify", nullable_boolean()),
        ("maxProtocolVersion", enumeration(&versions)),
        ("minProtocolVersion", enumeration(&versions)),
        (
            "mode",
            enumeration(&[
                "PASSTHROUGH",
                "SIMPLE",
                "MUTUAL",
                "AUTO_PASSTHROUGH",
                "ISTIO_MUTUAL",
                "OPTIONAL_MUTUAL",
            ]),
        ),
        ("privateKey", string()),
        ("serverCertificate", string()),
        ("subjectAltNames", strings()),
        (
            "tlsCertificates",
            list(certificate).min_items(1).max_items(2),
        ),
        ("verifyCertificateHash", strings()),
        ("verifyCertificateSpki", strings()),
    ])
    .rule(
        "(has(self.tlsCertificates) ? 1 : 0) + (has(self.credentialNames) ? 1 : 0) <= 1",
        "only one of credentialNames or tlsCertificates can be set",
    )
    .rule(
        "(has(self.credentialName) ? 1 : 0) + (has(self.credentialNames) ? 1 : 0) <= 1",
        "only one of credentialName or credentialNames can be set",
    )
    // Istio's rule checks credentialNames here although its message names credentialName.
    .rule(
        "(has(self.credentialNames) ? 1 : 0) + (has(self.tlsCertificates) ? 1 : 0) <= 1",
        "only one of credentialName or tlsCertificates can be set",
    )
}

/// The fields of a `WorkloadEntry`, with their own checks (port names and ranges, UDS paths).
fn workload_entry_fields() -> Value {
    let ports = map(port_number()).max_props(128).rule(
        "self.all(key, size(key) < 63 && key.matches(\"^[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?$\"))",
        "port name must be valid",
    );
    let address = string()
        .max_len(256)
        .rule(
            "self.startsWith(\"unix://\") ? (self.substring(7, 8) == \"/\" || self.substring(7, 8) == \"@\") : true",
            "UDS must be an absolute path or abstract socket",
        )
        .rule(
            "self.startsWith(\"unix://\") ? !self.endsWith(\"/\") : true",
            "UDS may not be a dir",
        );
    object(&[
        ("address", address),
        ("labels", string_map().max_props(256)),
        ("locality", string().max_len(2048)),
        ("network", string().max_len(2048)),
        ("ports", ports),
        ("serviceAccount", string().max_len(253)),
        ("weight", uint32()),
    ])
}

/// A Unix socket address carries no ports.
fn no_ports_with_uds(entry: Value) -> Value {
    entry.rule(
        "(has(self.address) ? self.address : \"\").startsWith(\"unix://\") ? !has(self.ports) : true",
        "UDS may not include ports",
    )
}

/// `WorkloadEntry` as a WorkloadGroup template holds it: an address is not required (each
/// instance of the group brings its own).
pub fn workload_entry_template() -> Value {
    no_ports_with_uds(workload_entry_fields())
}

/// `WorkloadEntry` as a resource and as a ServiceEntry endpoint: an address or a network is
/// required.
pub fn workload_entry() -> Value {
    no_ports_with_uds(workload_entry_fields().rule(
        "has(self.address) || has(self.network)",
        "Address is required",
    ))
}

/// A list of `Destination`s with weights, as TCP and TLS routes hold them.
pub fn weighted_destinations() -> Value {
    list(object(&[("destination", destination()), ("weight", int32())]).required(&["destination"]))
}
