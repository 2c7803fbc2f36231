//! security.istio.io: PeerAuthentication, RequestAuthentication and AuthorizationPolicy, with
//! the bounds and CEL rules of Istio's CRDs (ports in range, JWKS URLs with a scheme, one way
//! to select workloads, service accounts not mixed with principals).

use serde_json::Value;

use super::common::{match_labels_selector, one_way_to_select, target_ref, target_refs};
use super::schema::{
    SchemaExt, boolean, duration, enumeration, list, map, non_empty, object, string, strings,
};

fn mtls_mode() -> Value {
    object(&[(
        "mode",
        enumeration(&["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]),
    )])
}

/// `security.istio.io/PeerAuthentication`.
pub fn peer_authentication_spec() -> Value {
    let port_level = map(mtls_mode()).min_props(1).rule(
        "self.all(key, 0 < int(key) && int(key) <= 65535)",
        "port must be between 1-65535",
    );
    object(&[
        ("mtls", mtls_mode()),
        ("portLevelMtls", port_level),
        ("selector", match_labels_selector()),
    ])
    .rule(
        "has(self.portLevelMtls) ? (((has(self.selector) && has(self.selector.matchLabels)) ? self.selector.matchLabels : {}).size() > 0) : true",
        "portLevelMtls requires selector",
    )
}

fn jwks_uri() -> Value {
    non_empty().max_len(2048).rule(
        "url(self).getScheme() in [\"http\", \"https\"]",
        "url must have scheme http:// or https://",
    )
}

fn jwt_rule() -> Value {
    let from_header = object(&[("name", non_empty()), ("prefix", string())]).required(&["name"]);
    let claim_to_header = object(&[
        ("claim", non_empty()),
        ("header", non_empty().pattern("^[-_A-Za-z0-9]+$")),
    ])
    .required(&["header", "claim"]);
    object(&[
        ("audiences", list(non_empty())),
        ("forwardOriginalToken", boolean()),
        ("fromCookies", list(non_empty())),
        ("fromHeaders", list(from_header)),
        ("fromParams", list(non_empty())),
        ("issuer", non_empty()),
        ("jwks", string()),
        ("jwksUri", jwks_uri()),
        ("jwks_uri", jwks_uri()),
        ("outputClaimToHeaders", list(claim_to_header)),
        ("outputPayloadToHeader", string()),
        ("presence", enumeration(&["OPTIONAL", "REQUIRED"])),
        ("spaceDelimitedClaims", list(non_empty()).max_items(64)),
        ("timeout", duration()),
    ])
    .rule(
        "(has(self.jwksUri) ? 1 : 0) + (has(self.jwks_uri) ? 1 : 0) + (has(self.jwks) ? 1 : 0) <= 1",
        "only one of jwks or jwksUri can be set",
    )
}

/// `security.istio.io/RequestAuthentication`.
pub fn request_authentication_spec() -> Value {
    one_way_to_select(object(&[
        ("jwtRules", list(jwt_rule()).max_items(4096)),
        ("selector", match_labels_selector()),
        ("targetRef", target_ref()),
        ("targetRefs", target_refs()),
    ]))
}

fn service_accounts() -> Value {
    list(string().max_len(320)).max_items(16)
}

fn source() -> Value {
    object(&[
        ("ipBlocks", strings()),
        ("namespaces", strings()),
        ("notIpBlocks", strings()),
        ("notNamespaces", strings()),
        ("notPrincipals", strings()),
        ("notRemoteIpBlocks", strings()),
        ("notRequestPrincipals", strings()),
        ("notServiceAccounts", service_accounts()),
        ("notTrustDomains", strings()),
        ("principals", strings()),
        ("remoteIpBlocks", strings()),
        ("requestPrincipals", strings()),
        ("serviceAccounts", service_accounts()),
        ("trustDomains", strings()),
    ])
    .rule(
        "(has(self.serviceAccounts) || has(self.notServiceAccounts)) ? (!has(self.principals) &&\n!has(self.notPrincipals) && !has(self.namespaces) && !has(self.notNamespaces)) : true",
        "Cannot set serviceAccounts with namespaces or principals",
    )
}

fn operation() -> Value {
    object(&[
        ("hosts", strings()),
        ("methods", strings()),
        ("notHosts", strings()),
        ("notMethods", strings()),
        ("notPaths", strings()),
        ("notPorts", strings()),
        ("paths", strings()),
        ("ports", strings()),
    ])
}

fn rule() -> Value {
    let condition = object(&[
        ("key", string()),
        ("notValues", strings()),
        ("values", strings()),
    ])
    .required(&["key"]);
    object(&[
        ("from", list(object(&[("source", source())])).max_items(512)),
        ("to", list(object(&[("operation", operation())]))),
        ("when", list(condition)),
    ])
}

/// `security.istio.io/AuthorizationPolicy`.
pub fn authorization_policy_spec() -> Value {
    one_way_to_select(
        object(&[
            ("action", enumeration(&["ALLOW", "DENY", "AUDIT", "CUSTOM"])),
            ("provider", object(&[("name", string())])),
            ("rules", list(rule()).max_items(512)),
            ("selector", match_labels_selector()),
            ("targetRef", target_ref()),
            ("targetRefs", target_refs()),
        ])
        .one_of(&["provider"]),
    )
}
