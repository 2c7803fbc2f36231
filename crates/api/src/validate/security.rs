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
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims[",
    "destination.ip",
    "destination.port",
    "connection.sni",
    "experimental.envoy.filters.",
];

fn check_selector_labels(issues: &mut Issues, path: &FieldPath, selector: Option<&LabelSelector>) {
    super::check_selector(
        issues,
        &path.field("matchLabels"),
        selector.map(|s| &s.match_labels),
    );
}

fn check_targets(
    issues: &mut Issues,
    spec: &FieldPath,
    selector: Option<&LabelSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    if target_ref.is_some() && !target_refs.is_empty() {
        issues.error(spec, "only one of targetRef or targetRefs can be set");
    }
    if selector.is_some() && (target_ref.is_some() || !target_refs.is_empty()) {
        issues.error(
            spec,
            "only one of targetRefs or workload selector can be set",
        );
    }
    let refs = target_ref.into_iter().chain(target_refs.iter());
    for (i, r) in refs.enumerate() {
        let p = if target_ref.is_some() && i == 0 {
            spec.field("targetRef")
        } else {
            spec.field("targetRefs")
                .index(i - usize::from(target_ref.is_some()))
        };
        if r.kind.is_empty() {
            issues.error(&p.field("kind"), "targetRef kind is required");
        }
        if r.name.is_empty() {
            issues.error(&p.field("name"), "targetRef name is required");
        }
    }
}

pub(super) fn check_peer(issues: &mut Issues, spec: &FieldPath, pa: &PeerAuthentication) {
    check_selector_labels(issues, &spec.field("selector"), pa.selector.as_ref());
    let has_selector = pa
        .selector
        .as_ref()
        .is_some_and(|s| !s.match_labels.is_empty());
    if !pa.port_level_mtls.is_empty() && !has_selector {
        issues.error(
            &spec.field("portLevelMtls"),
            "mesh/namespace peer authentication cannot have port level mTLS (portLevelMtls requires selector.matchLabels)",
        );
    }
    for port in pa.port_level_mtls.keys() {
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
    match (ap.action(), &ap.provider) {
        (AuthorizationAction::Custom, None) => {
            issues.error(&spec.field("provider"), "CUSTOM action requires a provider");
        }
        (AuthorizationAction::Custom, Some(p)) if p.name.is_empty() => {
            issues.error(
                &spec.field("provider").field("name"),
                "provider name is required",
            );
        }
        (AuthorizationAction::Custom, Some(_)) => {}
        (_, Some(_)) => issues.error(
            &spec.field("provider"),
            "provider may only be set with the CUSTOM action",
        ),
        (_, None) => {}
    }
    for (i, rule) in ap.rules.iter().enumerate() {
        let p = spec.field("rules").index(i);
        for (j, from) in rule.from.iter().enumerate() {
            let fp = p.field("from").index(j).field("source");
            match &from.source {
                Some(s) if !s.is_empty() => check_source(issues, &fp, s),
                _ => issues.error(&fp, "`from.source` must not be empty"),
            }
        }
        for (j, to) in rule.to.iter().enumerate() {
            let tp = p.field("to").index(j).field("operation");
            match &to.operation {
                Some(o) if !o.is_empty() => check_operation(issues, &tp, o),
                _ => issues.error(&tp, "`to.operation` must not be empty"),
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

fn check_source(issues: &mut Issues, path: &FieldPath, s: &Source) {
    for (field, values) in [
        ("principals", &s.principals),
        ("notPrincipals", &s.not_principals),
        ("requestPrincipals", &s.request_principals),
        ("notRequestPrincipals", &s.not_request_principals),
        ("namespaces", &s.namespaces),
        ("notNamespaces", &s.not_namespaces),
        ("serviceAccounts", &s.service_accounts),
        ("notServiceAccounts", &s.not_service_accounts),
    ] {
        check_non_empty_values(issues, &path.field(field), values);
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
    }
}
