//! One AuthorizationPolicy rule → one Envoy RBAC `Policy`, in the shapes istiod's
//! `pilot/pkg/security/authz/model` generates: permissions are one `and_rules` of the `to`
//! and `when` destination fields, principals one `and_ids` of the `from` and `when` source
//! fields; every field is an `or` of its values and a `not` of an `or` of its not-values.
//!
//! One difference from istiod, on purpose: request-authentication attributes
//! (`requestPrincipals`, `request.auth.*`) are matched against the JWT payload that
//! `envoy.filters.http.jwt_authn` writes into its own dynamic metadata (key
//! [`super::jwt::PAYLOAD_KEY`]) instead of the `istio_authn` metadata that only Istio's own
//! Envoy build (istio-proxy) writes. Upstream Envoy and lateen-proxy both enforce this form.

use lateen_api::security::{Condition, Operation, Rule, Source};
use lateen_xds::pb::envoy::config::core::v3::CidrRange;
use lateen_xds::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, permission, principal,
};
use lateen_xds::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use lateen_xds::pb::envoy::r#type::matcher::v3::{
    ListMatcher, MetadataMatcher, PathMatcher, StringMatcher, ValueMatcher, list_matcher,
    metadata_matcher, path_matcher, string_matcher, value_matcher,
};

use super::jwt::{JWT_FILTER, PAYLOAD_KEY};
use super::names;
use super::routes::regex;

/// Whether the policy is built for an HTTP chain or a TCP one (which never sees HTTP fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Tcp,
}

/// The rule as an RBAC policy; `None` when the rule cannot apply on this protocol (an ALLOW
/// rule with HTTP-only fields on TCP is dropped: it allows nothing there). `drop_http` (DENY
/// and AUDIT on TCP) removes HTTP-only fields instead, so the rule matches more, as istiod.
pub fn policy(rule: &Rule, namespace: &str, protocol: Protocol, drop_http: bool) -> Option<Policy> {
    let tcp = protocol == Protocol::Tcp;
    if tcp && !drop_http && has_http_only(rule) {
        return None;
    }
    let skip_http = tcp && drop_http;
    let mut principal_sets: Vec<Vec<Principal>> = Vec::new();
    for from in &rule.from {
        if let Some(source) = &from.source {
            principal_sets.push(source_ids(source, namespace, skip_http));
        }
    }
    let mut permission_sets: Vec<Vec<Permission>> = Vec::new();
    for to in &rule.to {
        if let Some(op) = &to.operation {
            permission_sets.push(operation_rules(op, skip_http));
        }
    }
    let (when_ids, when_rules) = conditions(&rule.when, namespace, skip_http);
    let principals = combine_ids(principal_sets, when_ids);
    let permissions = combine_rules(permission_sets, when_rules);
    Some(Policy {
        permissions,
        principals,
        ..Default::default()
    })
}

/// `from` entries are ORed: one `and_ids` per entry, each with the `when` source conditions.
fn combine_ids(sets: Vec<Vec<Principal>>, when: Vec<Principal>) -> Vec<Principal> {
    let sets = if sets.is_empty() {
        vec![Vec::new()]
    } else {
        sets
    };
    sets.into_iter()
        .map(|mut ids| {
            ids.extend(when.iter().cloned());
            if ids.is_empty() {
                ids.push(any_id());
            }
            id(principal::Identifier::AndIds(principal::Set { ids }))
        })
        .collect()
}

fn combine_rules(sets: Vec<Vec<Permission>>, when: Vec<Permission>) -> Vec<Permission> {
    let sets = if sets.is_empty() {
        vec![Vec::new()]
    } else {
        sets
    };
    sets.into_iter()
        .map(|mut rules| {
            rules.extend(when.iter().cloned());
            if rules.is_empty() {
                rules.push(perm(permission::Rule::Any(true)));
            }
            perm(permission::Rule::AndRules(permission::Set { rules }))
        })
        .collect()
}

fn has_http_only(rule: &Rule) -> bool {
    let source = rule
        .from
        .iter()
        .filter_map(|f| f.source.as_ref())
        .any(|s| !s.request_principals.is_empty() || !s.not_request_principals.is_empty());
    let op = rule
        .to
        .iter()
        .filter_map(|t| t.operation.as_ref())
        .any(|o| {
            !o.hosts.is_empty()
                || !o.not_hosts.is_empty()
                || !o.methods.is_empty()
                || !o.not_methods.is_empty()
                || !o.paths.is_empty()
                || !o.not_paths.is_empty()
        });
    source || op || rule.when.iter().any(|c| is_http_key(&c.key))
}

fn is_http_key(key: &str) -> bool {
    key.starts_with("request.")
}

fn id(identifier: principal::Identifier) -> Principal {
    Principal {
        identifier: Some(identifier),
    }
}

fn any_id() -> Principal {
    id(principal::Identifier::Any(true))
}

fn perm(rule: permission::Rule) -> Permission {
    Permission { rule: Some(rule) }
}

/// `values` ORed, then `not_values` as NOT(OR), each only when non-empty.
fn or_not_ids<F>(out: &mut Vec<Principal>, values: &[String], not_values: &[String], f: F)
where
    F: Fn(&str) -> Option<Principal>,
{
    for (list, negate) in [(values, false), (not_values, true)] {
        let ids: Vec<Principal> = list.iter().filter_map(|v| f(v)).collect();
        if ids.is_empty() {
            continue;
        }
        let or = id(principal::Identifier::OrIds(principal::Set { ids }));
        out.push(if negate {
            id(principal::Identifier::NotId(Box::new(or)))
        } else {
            or
        });
    }
}

fn or_not_rules<F>(out: &mut Vec<Permission>, values: &[String], not_values: &[String], f: F)
where
    F: Fn(&str) -> Option<Permission>,
{
    for (list, negate) in [(values, false), (not_values, true)] {
        let rules: Vec<Permission> = list.iter().filter_map(|v| f(v)).collect();
        if rules.is_empty() {
            continue;
        }
        let or = perm(permission::Rule::OrRules(permission::Set { rules }));
        out.push(if negate {
            perm(permission::Rule::NotRule(Box::new(or)))
        } else {
            or
        });
    }
}

fn source_ids(s: &Source, namespace: &str, skip_http: bool) -> Vec<Principal> {
    let mut ids = Vec::new();
    or_not_ids(&mut ids, &s.principals, &s.not_principals, |v| {
        Some(principal_id(v))
    });
    if !skip_http {
        or_not_ids(
            &mut ids,
            &s.request_principals,
            &s.not_request_principals,
            |v| Some(request_principal(v)),
        );
    }
    or_not_ids(&mut ids, &s.namespaces, &s.not_namespaces, |v| {
        Some(namespace_id(v))
    });
    or_not_ids(
        &mut ids,
        &s.service_accounts,
        &s.not_service_accounts,
        |v| Some(service_account_id(v, namespace)),
    );
    or_not_ids(
        &mut ids,
        &s.remote_ip_blocks,
        &s.not_remote_ip_blocks,
        |v| cidr(v).map(|c| id(principal::Identifier::RemoteIp(c))),
    );
    or_not_ids(&mut ids, &s.ip_blocks, &s.not_ip_blocks, |v| {
        cidr(v).map(|c| id(principal::Identifier::DirectRemoteIp(c)))
    });
    ids
}

fn operation_rules(o: &Operation, skip_http: bool) -> Vec<Permission> {
    let mut rules = Vec::new();
    if !skip_http {
        or_not_rules(&mut rules, &o.hosts, &o.not_hosts, |v| {
            Some(perm(permission::Rule::Header(host_header(v))))
        });
        or_not_rules(&mut rules, &o.methods, &o.not_methods, |v| {
            Some(perm(permission::Rule::Header(header(":method", v, false))))
        });
        or_not_rules(&mut rules, &o.paths, &o.not_paths, |v| {
            Some(perm(permission::Rule::UrlPath(PathMatcher {
                rule: Some(path_matcher::Rule::Path(wildcard_string(v, "", false))),
            })))
        });
    }
    or_not_rules(&mut rules, &o.ports, &o.not_ports, port_rule);
    rules
}

fn port_rule(v: &str) -> Option<Permission> {
    v.parse::<u32>()
        .ok()
        .map(|p| perm(permission::Rule::DestinationPort(p)))
}

/// `when` conditions: source-side keys become principals, destination-side permissions.
fn conditions(
    when: &[Condition],
    namespace: &str,
    skip_http: bool,
) -> (Vec<Principal>, Vec<Permission>) {
    let mut ids = Vec::new();
    let mut rules = Vec::new();
    for c in when {
        if skip_http && is_http_key(&c.key) {
            continue;
        }
        let (values, not_values) = (&c.values, &c.not_values);
        let key = c.key.as_str();
        if let Some(name) = bracketed(key, "request.headers") {
            or_not_ids(&mut ids, values, not_values, |v| {
                Some(id(principal::Identifier::Header(header_list_value(
                    &name[0], v,
                ))))
            });
        } else if let Some(path) = bracketed(key, "request.auth.claims") {
            or_not_ids(&mut ids, values, not_values, |v| Some(claim(&path, v)));
        } else {
            match key {
                "source.ip" => or_not_ids(&mut ids, values, not_values, |v| {
                    cidr(v).map(|c| id(principal::Identifier::DirectRemoteIp(c)))
                }),
                "remote.ip" => or_not_ids(&mut ids, values, not_values, |v| {
                    cidr(v).map(|c| id(principal::Identifier::RemoteIp(c)))
                }),
                "source.namespace" => {
                    or_not_ids(&mut ids, values, not_values, |v| Some(namespace_id(v)))
                }
                "source.principal" => {
                    or_not_ids(&mut ids, values, not_values, |v| Some(principal_id(v)))
                }
                "source.serviceAccount" => or_not_ids(&mut ids, values, not_values, |v| {
                    Some(service_account_id(v, namespace))
                }),
                "request.auth.principal" => {
                    or_not_ids(&mut ids, values, not_values, |v| Some(request_principal(v)))
                }
                "request.auth.audiences" => or_not_ids(&mut ids, values, not_values, |v| {
                    Some(claim(&["aud".to_string()], v))
                }),
                "request.auth.presenter" => or_not_ids(&mut ids, values, not_values, |v| {
                    Some(claim(&["azp".to_string()], v))
                }),
                "destination.ip" => or_not_rules(&mut rules, values, not_values, |v| {
                    cidr(v).map(|c| perm(permission::Rule::DestinationIp(c)))
                }),
                "destination.port" => or_not_rules(&mut rules, values, not_values, port_rule),
                "connection.sni" => or_not_rules(&mut rules, values, not_values, |v| {
                    Some(perm(permission::Rule::RequestedServerName(
                        wildcard_string(v, "", false),
                    )))
                }),
                other => {
                    // Validation refuses unknown keys; one that gets here matches nothing.
                    tracing::warn!(
                        key = other,
                        "authorization condition not supported; it never matches"
                    );
                    or_not_ids(&mut ids, values, not_values, |_| {
                        Some(id(principal::Identifier::NotId(Box::new(any_id()))))
                    });
                }
            }
        }
    }
    (ids, rules)
}

/// `request.headers[x-user]` → `["x-user"]`; `request.auth.claims[a][b]` → `["a", "b"]`.
fn bracketed(key: &str, base: &str) -> Option<Vec<String>> {
    let rest = key.strip_prefix(base)?;
    let inner = rest.strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.split("][").map(str::to_string).collect())
}

/// Istio's value syntax: `*` anything present, `x*` prefix, `*x` suffix, else exact.
enum Wildcard<'a> {
    Any,
    Prefix(&'a str),
    Suffix(&'a str),
    Exact(&'a str),
}

fn wildcard(v: &str) -> Wildcard<'_> {
    if v == "*" {
        Wildcard::Any
    } else if let Some(p) = v.strip_suffix('*') {
        Wildcard::Prefix(p)
    } else if let Some(s) = v.strip_prefix('*') {
        Wildcard::Suffix(s)
    } else {
        Wildcard::Exact(v)
    }
}

fn string(pattern: string_matcher::MatchPattern, ignore_case: bool) -> StringMatcher {
    StringMatcher {
        ignore_case,
        match_pattern: Some(pattern),
    }
}

/// A value with `prefix` put before it (`spiffe://` for principals); `*` is `.+`.
fn wildcard_string(v: &str, prefix: &str, ignore_case: bool) -> StringMatcher {
    use string_matcher::MatchPattern as P;
    match wildcard(v) {
        Wildcard::Any => string(P::SafeRegex(regex(".+")), false),
        Wildcard::Prefix(p) => string(P::Prefix(format!("{prefix}{p}")), ignore_case),
        Wildcard::Suffix(s) if prefix.is_empty() => string(P::Suffix(s.to_string()), ignore_case),
        Wildcard::Suffix(s) => string(
            P::SafeRegex(regex(&format!("{}.*{}", escape(prefix), escape(s)))),
            false,
        ),
        Wildcard::Exact(e) => string(P::Exact(format!("{prefix}{e}")), ignore_case),
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn authenticated(name: StringMatcher) -> Principal {
    id(principal::Identifier::Authenticated(
        principal::Authenticated {
            principal_name: Some(name),
        },
    ))
}

/// `cluster.local/ns/foo/sa/bar` → the peer certificate's URI SAN `spiffe://…`.
fn principal_id(v: &str) -> Principal {
    authenticated(wildcard_string(v, "spiffe://", false))
}

/// Namespaces are matched inside the principal: `.*/ns/NS/.*`.
fn namespace_id(v: &str) -> Principal {
    let pattern = match wildcard(v) {
        Wildcard::Any => ".*/ns/.*/.*".to_string(),
        Wildcard::Prefix(p) => format!(".*/ns/{}.*/.*", escape(p)),
        Wildcard::Suffix(s) => format!(".*/ns/.*{}/.*", escape(s)),
        Wildcard::Exact(e) => format!(".*/ns/{}/.*", escape(e)),
    };
    authenticated(string(
        string_matcher::MatchPattern::SafeRegex(regex(&pattern)),
        false,
    ))
}

/// `ns/sa`, or `sa` in the policy's namespace.
fn service_account_id(v: &str, namespace: &str) -> Principal {
    let (ns, sa) = v.split_once('/').unwrap_or((namespace, v));
    let pattern = format!("spiffe://.*/ns/{}/sa/{}", escape(ns), escape(sa));
    authenticated(string(
        string_matcher::MatchPattern::SafeRegex(regex(&pattern)),
        false,
    ))
}

fn cidr(v: &str) -> Option<CidrRange> {
    let (address, len) = match v.split_once('/') {
        Some((a, l)) => (a, l.parse::<u32>().ok()?),
        None => {
            let ip: std::net::IpAddr = v.parse().ok()?;
            (v, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    address.parse::<std::net::IpAddr>().ok()?;
    Some(CidrRange {
        address_prefix: address.to_string(),
        prefix_len: Some(names::uint32(len)),
    })
}

fn header(name: &str, v: &str, ignore_case: bool) -> HeaderMatcher {
    let spec = match wildcard(v) {
        Wildcard::Any => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
        _ => header_matcher::HeaderMatchSpecifier::StringMatch(wildcard_string(v, "", ignore_case)),
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

/// Hosts compare without case, as the `:authority` they match.
fn host_header(v: &str) -> HeaderMatcher {
    header(":authority", v, true)
}

/// `request.headers[...]`: the value may be one of a comma-separated list, as istiod's
/// `^v$|^v,.*|.*,v,.*|.*,v$`.
fn header_list_value(name: &str, v: &str) -> HeaderMatcher {
    let inner = match wildcard(v) {
        Wildcard::Any => None,
        Wildcard::Prefix(p) => Some(format!("{}.*", escape(p))),
        Wildcard::Suffix(s) => Some(format!(".*{}", escape(s))),
        Wildcard::Exact(e) => Some(escape(e)),
    };
    let spec = match inner {
        None => header_matcher::HeaderMatchSpecifier::PresentMatch(true),
        Some(inner) => header_matcher::HeaderMatchSpecifier::StringMatch(string(
            string_matcher::MatchPattern::SafeRegex(regex(&format!(
                "^{inner}$|^{inner},.*|.*,{inner},.*|.*,{inner}$"
            ))),
            false,
        )),
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(spec),
        ..Default::default()
    }
}

// istiod's form; upstream Envoy 1.40 still accepts it.
#[allow(deprecated)]
fn metadata(path: &[String], value: ValueMatcher) -> Principal {
    let mut segments = vec![PAYLOAD_KEY.to_string()];
    segments.extend(path.iter().cloned());
    id(principal::Identifier::Metadata(MetadataMatcher {
        filter: JWT_FILTER.to_string(),
        path: segments
            .into_iter()
            .map(|key| metadata_matcher::PathSegment {
                segment: Some(metadata_matcher::path_segment::Segment::Key(key)),
            })
            .collect(),
        value: Some(value),
        invert: false,
    }))
}

fn string_value(m: StringMatcher) -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::StringMatch(m)),
    }
}

/// A claim matches as a string or as one element of a list (`aud`, `groups`).
fn claim(path: &[String], v: &str) -> Principal {
    let m = wildcard_string(v, "", false);
    let list = ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(
            ListMatcher {
                match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(string_value(
                    m.clone(),
                )))),
            },
        ))),
    };
    id(principal::Identifier::OrIds(principal::Set {
        ids: vec![metadata(path, string_value(m)), metadata(path, list)],
    }))
}

/// `iss/sub` of the verified token: the issuer and subject claims matched apart, split at
/// the last `/` (issuers are URLs). `*` needs only a verified token.
fn request_principal(v: &str) -> Principal {
    let iss = ["iss".to_string()];
    let sub = ["sub".to_string()];
    let present = |path: &[String]| {
        metadata(
            path,
            ValueMatcher {
                match_pattern: Some(value_matcher::MatchPattern::PresentMatch(true)),
            },
        )
    };
    let and = |ids| id(principal::Identifier::AndIds(principal::Set { ids }));
    match wildcard(v) {
        Wildcard::Any => present(&iss),
        Wildcard::Prefix(p) => match p.rsplit_once('/') {
            Some((i, s)) => and(vec![
                metadata(&iss, string_value(exact(i))),
                metadata(
                    &sub,
                    string_value(wildcard_string(&format!("{s}*"), "", false)),
                ),
            ]),
            None => metadata(&iss, string_value(wildcard_string(v, "", false))),
        },
        Wildcard::Suffix(s) => match s.split_once('/') {
            Some((i, sb)) => and(vec![
                metadata(
                    &iss,
                    string_value(wildcard_string(&format!("*{i}"), "", false)),
                ),
                metadata(&sub, string_value(exact(sb))),
            ]),
            None => and(vec![
                present(&iss),
                metadata(&sub, string_value(wildcard_string(v, "", false))),
            ]),
        },
        Wildcard::Exact(e) => match e.rsplit_once('/') {
            Some((i, s)) => and(vec![
                metadata(&iss, string_value(exact(i))),
                metadata(&sub, string_value(exact(s))),
            ]),
            None => metadata(&iss, string_value(exact(e))),
        },
    }
}

fn exact(v: &str) -> StringMatcher {
    string(string_matcher::MatchPattern::Exact(v.to_string()), false)
}
