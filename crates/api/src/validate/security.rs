//! PeerAuthentication, AuthorizationPolicy and RequestAuthentication rules.

use super::{Issues, check_duration, check_header_name, check_ip_or_cidr, check_port_number};
use crate::error::FieldPath;
use crate::meta::LabelSelector;
use crate::security::{
    AuthorizationAction, AuthorizationPolicy, Operation, PeerAuthentication, PolicyTargetReference,
    RequestAuthentication, Source,
};

/// Condition keys Istio accepts in `when` (those ending in `[` take a `[name]` suffix).
const CONDITION_KEYS: &[&str] = &[
    "request.headers[",
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "source.serviceAccount",
    "source.trustDomain",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[",
    "destination.ip",
    "destination.port",
    "connection.sni",
    "experimental.envoy.filters.",
];

pub(super) fn check_selector_labels(
    issues: &mut Issues,
    path: &FieldPath,
    selector: Option<&LabelSelector>,
) {
    super::check_selector(
        issues,
        &path.field("matchLabels"),
        selector.map(|s| &s.match_labels),
    );
}

/// Kinds a policy may attach to, by (group, kind); the core group is written "".
const TARGET_KINDS: &[(&str, &str)] = &[
    ("", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

pub(super) fn check_targets(
    issues: &mut Issues,
    spec: &FieldPath,
    selector: Option<&LabelSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    let set = [
        selector.is_some(),
        target_ref.is_some(),
        !target_refs.is_empty(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if set > 1 {
        issues.error(
            spec,
            "only one of targetRefs or workloadSelector can be set",
        );
    }
    let single = target_ref.map(|r| (spec.field("targetRef"), r));
    let many = target_refs
        .iter()
        .enumerate()
        .map(|(i, r)| (spec.field("targetRefs").index(i), r));
    for (p, r) in single.into_iter().chain(many) {
        if r.name.is_empty() {
            issues.error(&p.field("name"), "targetRef name must be set");
        }
        if r.namespace.as_deref().is_some_and(|ns| !ns.is_empty()) {
            issues.error(
                &p.field("namespace"),
                "targetRef namespace must not be set; cross namespace referencing is not supported",
            );
        }
        let group = if r.group == "core" {
            ""
        } else {
            r.group.as_str()
        };
        if !TARGET_KINDS.contains(&(group, r.kind.as_str())) {
            issues.error(
                &p.field("kind"),
                format!(
                    "targetRef must be to a Service, ServiceEntry, Gateway (gateway.networking.k8s.io) or GatewayClass, but was {}/{}",
                    r.group, r.kind
                ),
            );
        }
    }
}

pub(super) fn check_peer(issues: &mut Issues, spec: &FieldPath, pa: &PeerAuthentication) {
    check_selector_labels(issues, &spec.field("selector"), pa.selector.as_ref());
    let has_selector = pa
        .selector
        .as_ref()
        .is_some_and(|s| !s.match_labels.is_empty());
    let Some(port_level) = &pa.port_level_mtls else {
        return;
    };
    if port_level.is_empty() {
        issues.error(
            &spec.field("portLevelMtls"),
            "portLevelMtls must name at least one port when set",
        );
    } else if !has_selector {
        issues.error(
            &spec.field("portLevelMtls"),
            "mesh/namespace peer authentication cannot have port level mTLS (portLevelMtls requires selector.matchLabels)",
        );
    }
    for port in port_level.keys() {
        check_port_number(
            issues,
            &spec.field("portLevelMtls").field(&port.to_string()),
            *port,
        );
    }
}

pub(super) fn check_authz(issues: &mut Issues, spec: &FieldPath, ap: &AuthorizationPolicy) {
    check_selector_labels(issues, &spec.field("selector"), ap.selector.as_ref());
    check_targets(
        issues,
        spec,
        ap.selector.as_ref(),
        ap.target_ref.as_ref(),
        &ap.target_refs,
    );
    let action = ap.action();
    let meaningless = |what: &str| {
        format!(
            "{what} action without `rules` is meaningless as it will never be triggered, add an empty rule `{{}}` if you want it be triggered for every request"
        )
    };
    match action {
        AuthorizationAction::Custom if ap.rules.is_empty() => {
            issues.error(&spec.field("rules"), meaningless("CUSTOM"));
        }
        AuthorizationAction::Custom => {
            if ap.provider.as_ref().is_none_or(|p| p.name.is_empty()) {
                issues.error(
                    &spec.field("provider").field("name"),
                    "`provider.name` must not be empty",
                );
            }
            check_custom_rules(issues, spec, ap);
        }
        AuthorizationAction::Deny if ap.rules.is_empty() => {
            issues.error(&spec.field("rules"), meaningless("DENY"));
        }
        _ => {}
    }
    if ap.provider.is_some() && action != AuthorizationAction::Custom {
        issues.error(
            &spec.field("provider"),
            format!(
                "`provider` must not be with non CUSTOM action, found {}",
                super::wire_name(&action)
            ),
        );
    }
    for (i, rule) in ap.rules.iter().enumerate() {
        let p = spec.field("rules").index(i);
        for (j, from) in rule.from.iter().enumerate() {
            let fp = p.field("from").index(j).field("source");
            match &from.source {
                None => issues.error(&fp, "`from.source` must not be nil"),
                Some(s) if s.is_empty() => issues.error(&fp, "`from.source` must not be empty"),
                Some(s) => check_source(issues, &fp, s),
            }
        }
        for (j, to) in rule.to.iter().enumerate() {
            let tp = p.field("to").index(j).field("operation");
            match &to.operation {
                None => issues.error(&tp, "`to.operation` must not be nil"),
                Some(o) if o.is_empty() => issues.error(&tp, "`to.operation` must not be empty"),
                Some(o) => check_operation(issues, &tp, o),
            }
        }
        for (j, cond) in rule.when.iter().enumerate() {
            let cp = p.field("when").index(j);
            let known = CONDITION_KEYS.iter().any(|k| match k.strip_suffix('[') {
                Some(base) => {
                    cond.key.starts_with(k)
                        && cond.key.ends_with(']')
                        && cond.key.len() > base.len() + 2
                }
                None if k.ends_with('.') => cond.key.starts_with(k),
                None => cond.key == *k,
            });
            if cond.key.is_empty() {
                issues.error(&cp.field("key"), "`key` must not be empty");
            } else if cond.key == "source.trustDomain" {
                issues.not_acted_on(&cp.field("key"));
            } else if !known {
                issues.error(
                    &cp.field("key"),
                    format!("unknown condition key {:?}", cond.key),
                );
            }
            if cond.values.is_empty() && cond.not_values.is_empty() {
                issues.error(
                    &cp,
                    format!(
                        "at least one of `values` or `notValues` must be set for key {}",
                        cond.key
                    ),
                );
            }
            let is_ip_key = matches!(
                cond.key.as_str(),
                "source.ip" | "remote.ip" | "destination.ip"
            );
            for (field, values) in [("values", &cond.values), ("notValues", &cond.not_values)] {
                for (k, v) in values.iter().enumerate() {
                    if is_ip_key {
                        check_ip_or_cidr(issues, &cp.field(field).index(k), v);
                    } else if cond.key == "destination.port" {
                        check_port_string(issues, &cp.field(field).index(k), v);
                    }
                }
            }
        }
    }
}

fn check_non_empty_values(issues: &mut Issues, path: &FieldPath, values: &[String]) {
    for (i, v) in values.iter().enumerate() {
        if v.is_empty() {
            issues.error(&path.index(i), "empty value is not allowed");
        }
    }
}

/// What the CUSTOM action cannot match on (Istio's list).
fn check_custom_rules(issues: &mut Issues, spec: &FieldPath, ap: &AuthorizationPolicy) {
    for (i, rule) in ap.rules.iter().enumerate() {
        let p = spec.field("rules").index(i);
        for (j, from) in rule.from.iter().enumerate() {
            let Some(src) = &from.source else { continue };
            for (field, set) in [
                ("namespaces", !src.namespaces.is_empty()),
                ("notNamespaces", !src.not_namespaces.is_empty()),
                ("serviceAccounts", !src.service_accounts.is_empty()),
                ("notServiceAccounts", !src.not_service_accounts.is_empty()),
                ("principals", !src.principals.is_empty()),
                ("notPrincipals", !src.not_principals.is_empty()),
                ("requestPrincipals", !src.request_principals.is_empty()),
                (
                    "notRequestPrincipals",
                    !src.not_request_principals.is_empty(),
                ),
            ] {
                if set {
                    issues.error(
                        &p.field("from").index(j).field("source").field(field),
                        format!(
                            "from.source.{field} is currently not supported with CUSTOM action"
                        ),
                    );
                }
            }
        }
        for (j, cond) in rule.when.iter().enumerate() {
            let unsupported = matches!(
                cond.key.as_str(),
                "source.namespace" | "source.serviceAccount" | "source.principal"
            ) || cond.key.starts_with("request.auth.");
            if unsupported {
                issues.error(
                    &p.field("when").index(j).field("key"),
                    format!("{} is currently not supported with CUSTOM action", cond.key),
                );
            }
        }
    }
}

fn check_source(issues: &mut Issues, path: &FieldPath, s: &Source) {
    let identities =
        s.principals.len() + s.not_principals.len() + s.namespaces.len() + s.not_namespaces.len();
    if identities > 0 && s.service_accounts.len() + s.not_service_accounts.len() > 0 {
        issues.error(
            path,
            "cannot set serviceAccounts with namespaces or principals",
        );
    }
    for (field, values) in [
        ("principals", &s.principals),
        ("notPrincipals", &s.not_principals),
        ("requestPrincipals", &s.request_principals),
        ("notRequestPrincipals", &s.not_request_principals),
        ("namespaces", &s.namespaces),
        ("notNamespaces", &s.not_namespaces),
        ("serviceAccounts", &s.service_accounts),
        ("notServiceAccounts", &s.not_service_accounts),
        ("trustDomains", &s.trust_domains),
        ("notTrustDomains", &s.not_trust_domains),
    ] {
        check_non_empty_values(issues, &path.field(field), values);
    }
    for (field, values) in [
        ("trustDomains", &s.trust_domains),
        ("notTrustDomains", &s.not_trust_domains),
    ] {
        if !values.is_empty() {
            issues.not_acted_on(&path.field(field));
        }
    }
    for (field, values) in [
        ("ipBlocks", &s.ip_blocks),
        ("notIpBlocks", &s.not_ip_blocks),
        ("remoteIpBlocks", &s.remote_ip_blocks),
        ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
    ] {
        for (i, v) in values.iter().enumerate() {
            check_ip_or_cidr(issues, &path.field(field).index(i), v);
        }
    }
}

fn check_port_string(issues: &mut Issues, path: &FieldPath, text: &str) {
    match text.parse::<u32>() {
        Ok(n) => check_port_number(issues, path, n),
        Err(_) => issues.error(path, format!("invalid port {text:?}")),
    }
}

fn check_operation(issues: &mut Issues, path: &FieldPath, o: &Operation) {
    for (field, values) in [
        ("hosts", &o.hosts),
        ("notHosts", &o.not_hosts),
        ("methods", &o.methods),
        ("notMethods", &o.not_methods),
        ("paths", &o.paths),
        ("notPaths", &o.not_paths),
    ] {
        check_non_empty_values(issues, &path.field(field), values);
    }
    for (field, values) in [("ports", &o.ports), ("notPorts", &o.not_ports)] {
        for (i, v) in values.iter().enumerate() {
            check_port_string(issues, &path.field(field).index(i), v);
        }
    }
    for (field, values) in [("paths", &o.paths), ("notPaths", &o.not_paths)] {
        for (i, v) in values.iter().enumerate() {
            if !v.is_empty() && !v.starts_with('/') && !v.starts_with('*') {
                issues.error(
                    &path.field(field).index(i),
                    format!("path {v:?} must start with '/' or '*'"),
                );
            }
        }
    }
}

pub(super) fn check_request_authn(
    issues: &mut Issues,
    spec: &FieldPath,
    ra: &RequestAuthentication,
) {
    check_selector_labels(issues, &spec.field("selector"), ra.selector.as_ref());
    check_targets(
        issues,
        spec,
        ra.selector.as_ref(),
        ra.target_ref.as_ref(),
        &ra.target_refs,
    );
    for (i, rule) in ra.jwt_rules.iter().enumerate() {
        let p = spec.field("jwtRules").index(i);
        if rule.issuer.is_empty() && rule.jwks_uri.as_deref().unwrap_or("").is_empty() {
            issues.error(
                &p.field("issuer"),
                "issuer or jwksUri must be non-empty string",
            );
        }
        if let Some(jwks) = &rule.jwks {
            match serde_json::from_str::<serde_json::Value>(jwks) {
                Ok(v) if v.get("keys").is_some_and(|k| k.is_array()) || v.get("kty").is_some() => {}
                Ok(_) => issues.error(
                    &p.field("jwks"),
                    "jwks parse error: expected a JWK or a JWK set with \"keys\"",
                ),
                Err(e) => issues.error(&p.field("jwks"), format!("jwks parse error: {e}")),
            }
        }
        if let Some(uri) = &rule.jwks_uri {
            let scheme_ok = uri.starts_with("https://") || uri.starts_with("http://");
            let host_part = uri.split_once("://").map_or("", |(_, rest)| rest);
            if !scheme_ok || host_part.is_empty() || host_part.starts_with('/') {
                issues.error(
                    &p.field("jwksUri"),
                    format!("invalid jwksUri {uri:?}: must be an http(s) URL"),
                );
            }
        }
        for (j, h) in rule.from_headers.iter().enumerate() {
            check_header_name(
                issues,
                &p.field("fromHeaders").index(j).field("name"),
                &h.name,
            );
        }
        check_non_empty_values(issues, &p.field("fromParams"), &rule.from_params);
        check_non_empty_values(issues, &p.field("fromCookies"), &rule.from_cookies);
        check_non_empty_values(issues, &p.field("audiences"), &rule.audiences);
        if let Some(h) = &rule.output_payload_to_header {
            check_header_name(issues, &p.field("outputPayloadToHeader"), h);
        }
        for (j, c) in rule.output_claim_to_headers.iter().enumerate() {
            let cp = p.field("outputClaimToHeaders").index(j);
            check_header_name(issues, &cp.field("header"), &c.header);
            if c.claim.is_empty() {
                issues.error(&cp.field("claim"), "claim is required");
            }
        }
        check_duration(issues, &p.field("timeout"), rule.timeout);
        let claims = p.field("spaceDelimitedClaims");
        check_non_empty_values(issues, &claims, &rule.space_delimited_claims);
        if rule.space_delimited_claims.len() > MAX_SPACE_DELIMITED_CLAIMS {
            issues.error(
                &claims,
                format!("at most {MAX_SPACE_DELIMITED_CLAIMS} spaceDelimitedClaims are allowed"),
            );
        }
        if !rule.space_delimited_claims.is_empty() {
            issues.not_acted_on(&claims);
        }
        if rule.presence.is_some() {
            issues.not_acted_on(&p.field("presence"));
        }
    }
}

/// Istio's CRD bound on `jwtRules[].spaceDelimitedClaims`.
const MAX_SPACE_DELIMITED_CLAIMS: usize = 64;
