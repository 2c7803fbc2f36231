//! Envoy v3 resource type URLs, their xDS short names, and the order in which the server pushes
//! them (Envoy's "eventual consistency considerations": CDS, then EDS, then LDS, then RDS).

/// `envoy.config.cluster.v3.Cluster` (CDS).
pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// `envoy.config.listener.v3.Listener` (LDS).
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// `envoy.config.route.v3.RouteConfiguration` (RDS).
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// `envoy.extensions.transport_sockets.tls.v3.Secret` (SDS).
pub const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
/// `envoy.service.runtime.v3.Runtime` (RTDS).
pub const RUNTIME: &str = "type.googleapis.com/envoy.service.runtime.v3.Runtime";

/// Push order. Secrets come first because clusters and listeners reference them; clusters
/// before their endpoints; listeners after the clusters they use; routes last.
pub const PUSH_ORDER: [&str; 6] = [SECRET, CLUSTER, ENDPOINT, LISTENER, ROUTE, RUNTIME];

/// Position of a type in [`PUSH_ORDER`]; unknown types go last.
pub fn push_rank(type_url: &str) -> usize {
    PUSH_ORDER
        .iter()
        .position(|t| *t == type_url)
        .unwrap_or(PUSH_ORDER.len())
}

/// Short xDS name of a type (`CDS`, `EDS`, ...), or the type URL itself when unknown.
pub fn short_name(type_url: &str) -> &str {
    match type_url {
        CLUSTER => "CDS",
        ENDPOINT => "EDS",
        LISTENER => "LDS",
        ROUTE => "RDS",
        SECRET => "SDS",
        RUNTIME => "RTDS",
        other => other,
    }
}

/// Types whose empty subscription means "everything" (wildcard) rather than "nothing".
pub fn is_wildcard_type(type_url: &str) -> bool {
    type_url == CLUSTER || type_url == LISTENER
}

/// Types whose SotW responses carry only the resources that changed since the last response
/// on the stream, not every subscribed one. The xDS protocol allows this for types that are
/// not wildcard ("the server need not resend unchanged resources"); Envoy hands each
/// ClusterLoadAssignment to its own cluster's watch and leaves the others alone, and istiod's
/// endpoint-only pushes send only the changed ones. Resending a thousand assignments to a
/// thousand proxies for each endpoint change is what this avoids. Routes stay whole (istiod
/// resends them too).
pub fn sotw_sends_changes_only(type_url: &str) -> bool {
    type_url == ENDPOINT
}

/// Types that must wait until every earlier type's last response was answered before they are
/// pushed, so a proxy never receives a reference to something it has not accepted yet.
/// Endpoints and secrets are only sent when asked for by name, which Envoy does after it has
/// taken the referencing cluster or listener, so they are not held back.
pub fn waits_for_earlier_types(type_url: &str) -> bool {
    type_url == LISTENER || type_url == ROUTE
}

/// Types whose removals wait until everything ranked after them (listeners, routes) is pushed
/// and answered: make before break, so nothing points at a cluster or endpoints that are gone.
pub fn defers_removal(type_url: &str) -> bool {
    type_url == CLUSTER || type_url == ENDPOINT
}
