//! Envoy's `envoy.filters.http.jwt_authn`, `envoy.filters.http.rbac` and
//! `envoy.filters.network.rbac` → [`crate::authz`]. Every matcher lateend (and istiod)
//! generates is understood; anything else is refused with its field path, so a policy is
//! never enforced partly.

use lateen_xds::pb::envoy::config::core::v3::{CidrRange, data_source};
use lateen_xds::pb::envoy::config::rbac::v3::{self as rbac_pb, permission, principal};
use lateen_xds::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use lateen_xds::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtRequirement, jwt_provider, jwt_requirement, requirement_rule,
};
use lateen_xds::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use lateen_xds::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use lateen_xds::pb::envoy::r#type::matcher::v3::{
    MetadataMatcher, StringMatcher, ValueMatcher, list_matcher, metadata_matcher, path_matcher,
    string_matcher, value_matcher,
};

use crate::authz::jwt::{Jwks, JwtAuthn, Provider, TokenHeader};
use crate::authz::matcher::{
    Cidr, HeaderMatch, HeaderTest, MetadataMatch, Pattern, Permission, Principal, StringMatch,
    ValueMatch,
};
use crate::authz::rbac::{Action, Policy, Rbac, Rules};

/// The only dynamic metadata the proxy has: what the JWT filter wrote.
const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";

type Result<T> = std::result::Result<T, (String, String)>;

fn err<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T> {
    Err((field.into(), reason.into()))
}

fn at(prefix: &str, field: &str) -> String {
    super::join(prefix, field)
}

pub fn http_rbac(config: &HttpRbac, path: &str) -> Result<Rbac> {
    let rest = HttpRbac {
        rules: None,
        shadow_rules: None,
        shadow_rules_stat_prefix: String::new(),
        rules_stat_prefix: String::new(),
        ..config.clone()
    };
    leftover(path, &rest)?;
    filter(config.rules.as_ref(), config.shadow_rules.as_ref(), path)
}

pub fn network_rbac(config: &NetworkRbac, path: &str) -> Result<Rbac> {
    let rest = NetworkRbac {
        rules: None,
        shadow_rules: None,
        shadow_rules_stat_prefix: String::new(),
        stat_prefix: String::new(),
        ..config.clone()
    };
    leftover(path, &rest)?;
    filter(config.rules.as_ref(), config.shadow_rules.as_ref(), path)
}

/// The enforced and shadow rules both RBAC filters have.
fn filter(
    enforced: Option<&rbac_pb::Rbac>,
    shadow: Option<&rbac_pb::Rbac>,
    path: &str,
) -> Result<Rbac> {
    Ok(Rbac {
        rules: enforced.map(|r| rules(r, &at(path, "rules"))).transpose()?,
        shadow_rules: shadow
            .map(|r| rules(r, &at(path, "shadow_rules")))
            .transpose()?,
    })
}

fn leftover<M: std::fmt::Debug + Default + PartialEq>(path: &str, rest: &M) -> Result<()> {
    let left = super::fields::leftover(rest);
    if left.is_empty() {
        Ok(())
    } else {
        err(
            path,
            format!("fields {} are not supported", left.join(", ")),
        )
    }
}

fn rules(r: &rbac_pb::Rbac, path: &str) -> Result<Rules> {
    leftover(
        path,
        &rbac_pb::Rbac {
            action: 0,
            policies: Default::default(),
            ..r.clone()
        },
    )?;
    let action = match r.action {
        0 => Action::Allow,
        1 => Action::Deny,
        2 => Action::Log,
        other => return err(at(path, "action"), format!("unknown action {other}")),
    };
    // Sorted by name so evaluation (and the first matching policy reported) is stable.
    let mut names: Vec<&String> = r.policies.keys().collect();
    names.sort();
    let mut policies = Vec::new();
    for name in names {
        let p = &r.policies[name];
        let p_path = format!("{path}.policies[{name}]");
        leftover(
            &p_path,
            &rbac_pb::Policy {
                permissions: Vec::new(),
                principals: Vec::new(),
                ..p.clone()
            },
        )?;
        policies.push(Policy {
            name: name.clone(),
            permissions: p
                .permissions
                .iter()
                .enumerate()
                .map(|(i, x)| permission(x, &format!("{p_path}.permissions[{i}]")))
                .collect::<Result<_>>()?,
            principals: p
                .principals
                .iter()
                .enumerate()
                .map(|(i, x)| principal_of(x, &format!("{p_path}.principals[{i}]")))
                .collect::<Result<_>>()?,
        });
    }
    Ok(Rules { action, policies })
}

// istiod still sends the deprecated `metadata`, `source_ip` and header match forms.
#[allow(deprecated)]
fn permission(p: &rbac_pb::Permission, path: &str) -> Result<Permission> {
    use permission::Rule as R;
    let set = |rules: &[rbac_pb::Permission], field: &str| -> Result<Vec<Permission>> {
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| permission(r, &format!("{path}.{field}[{i}]")))
            .collect()
    };
    Ok(match &p.rule {
        None => return err(path, "a permission needs a rule"),
        Some(R::Any(true)) => Permission::Any,
        Some(R::Any(false)) => return err(at(path, "any"), "must be true"),
        Some(R::AndRules(s)) => Permission::And(set(&s.rules, "and_rules.rules")?),
        Some(R::OrRules(s)) => Permission::Or(set(&s.rules, "or_rules.rules")?),
        Some(R::NotRule(inner)) => {
            Permission::Not(Box::new(permission(inner, &at(path, "not_rule"))?))
        }
        Some(R::Header(h)) => Permission::Header(header(h, &at(path, "header"))?),
        Some(R::UrlPath(m)) => match &m.rule {
            Some(path_matcher::Rule::Path(s)) => {
                Permission::Path(string(s, &at(path, "url_path.path"))?)
            }
            None => return err(at(path, "url_path"), "missing path"),
        },
        Some(R::DestinationIp(c)) => {
            Permission::DestinationIp(cidr(c, &at(path, "destination_ip"))?)
        }
        Some(R::DestinationPort(port)) => match u16::try_from(*port) {
            Ok(port) => Permission::DestinationPort(port),
            Err(_) => return err(at(path, "destination_port"), "out of range"),
        },
        Some(R::RequestedServerName(s)) => {
            Permission::Sni(string(s, &at(path, "requested_server_name"))?)
        }
        Some(R::Metadata(m)) => Permission::Metadata(metadata(m, &at(path, "metadata"))?),
        Some(_) => {
            return err(
                path,
                "this permission rule is not supported by lateen-proxy",
            );
        }
    })
}

// istiod still sends the deprecated `metadata`, `source_ip` and header match forms.
#[allow(deprecated)]
fn principal_of(p: &rbac_pb::Principal, path: &str) -> Result<Principal> {
    use principal::Identifier as I;
    let set = |ids: &[rbac_pb::Principal], field: &str| -> Result<Vec<Principal>> {
        ids.iter()
            .enumerate()
            .map(|(i, x)| principal_of(x, &format!("{path}.{field}[{i}]")))
            .collect()
    };
    Ok(match &p.identifier {
        None => return err(path, "a principal needs an identifier"),
        Some(I::Any(true)) => Principal::Any,
        Some(I::Any(false)) => return err(at(path, "any"), "must be true"),
        Some(I::AndIds(s)) => Principal::And(set(&s.ids, "and_ids.ids")?),
        Some(I::OrIds(s)) => Principal::Or(set(&s.ids, "or_ids.ids")?),
        Some(I::NotId(inner)) => {
            Principal::Not(Box::new(principal_of(inner, &at(path, "not_id"))?))
        }
        Some(I::Authenticated(a)) => Principal::Authenticated(
            a.principal_name
                .as_ref()
                .map(|s| string(s, &at(path, "authenticated.principal_name")))
                .transpose()?,
        ),
        Some(I::DirectRemoteIp(c)) => {
            Principal::DirectRemoteIp(cidr(c, &at(path, "direct_remote_ip"))?)
        }
        Some(I::RemoteIp(c)) => Principal::RemoteIp(cidr(c, &at(path, "remote_ip"))?),
        // `source_ip` is deprecated; without a PROXY protocol it is the peer address.
        Some(I::SourceIp(c)) => Principal::DirectRemoteIp(cidr(c, &at(path, "source_ip"))?),
        Some(I::Header(h)) => Principal::Header(header(h, &at(path, "header"))?),
        Some(I::Metadata(m)) => Principal::Metadata(metadata(m, &at(path, "metadata"))?),
        Some(_) => {
            return err(
                path,
                "this principal identifier is not supported by lateen-proxy",
            );
        }
    })
}

fn string(s: &StringMatcher, path: &str) -> Result<StringMatch> {
    use string_matcher::MatchPattern as P;
    let ic = s.ignore_case;
    Ok(match &s.match_pattern {
        Some(P::Exact(v)) => StringMatch::Exact {
            value: v.clone(),
            ignore_case: ic,
        },
        Some(P::Prefix(v)) => StringMatch::Prefix {
            value: v.clone(),
            ignore_case: ic,
        },
        Some(P::Suffix(v)) => StringMatch::Suffix {
            value: v.clone(),
            ignore_case: ic,
        },
        Some(P::Contains(v)) => StringMatch::Contains {
            value: v.clone(),
            ignore_case: ic,
        },
        Some(P::SafeRegex(r)) => StringMatch::Regex(
            Pattern::new(&r.regex)
                .map_err(|e| (at(path, "safe_regex.regex"), format!("invalid regex: {e}")))?,
        ),
        _ => return err(path, "string matcher not supported"),
    })
}

// istiod still sends the deprecated `metadata`, `source_ip` and header match forms.
#[allow(deprecated)]
fn header(h: &HeaderMatcher, path: &str) -> Result<HeaderMatch> {
    use header_matcher::HeaderMatchSpecifier as H;
    let plain =
        |value: &String, make: fn(String) -> StringMatch| HeaderTest::String(make(value.clone()));
    let test = match &h.header_match_specifier {
        Some(H::ExactMatch(v)) => plain(v, |value| StringMatch::Exact {
            value,
            ignore_case: false,
        }),
        Some(H::PrefixMatch(v)) => plain(v, |value| StringMatch::Prefix {
            value,
            ignore_case: false,
        }),
        Some(H::SuffixMatch(v)) => plain(v, |value| StringMatch::Suffix {
            value,
            ignore_case: false,
        }),
        Some(H::ContainsMatch(v)) => plain(v, |value| StringMatch::Contains {
            value,
            ignore_case: false,
        }),
        Some(H::SafeRegexMatch(r)) => {
            HeaderTest::String(StringMatch::Regex(Pattern::new(&r.regex).map_err(|e| {
                (
                    at(path, "safe_regex_match.regex"),
                    format!("invalid regex: {e}"),
                )
            })?))
        }
        Some(H::PresentMatch(want)) => HeaderTest::Present(*want),
        Some(H::StringMatch(s)) => HeaderTest::String(string(s, &at(path, "string_match"))?),
        Some(_) => return err(path, "header matcher not supported"),
        None => HeaderTest::Present(true),
    };
    if h.treat_missing_header_as_empty {
        return err(at(path, "treat_missing_header_as_empty"), "not supported");
    }
    Ok(HeaderMatch {
        name: h.name.to_ascii_lowercase(),
        test,
        invert: h.invert_match,
    })
}

fn cidr(c: &CidrRange, path: &str) -> Result<Cidr> {
    let address = c.address_prefix.parse().map_err(|_| {
        (
            at(path, "address_prefix"),
            format!("{:?} is not an IP address", c.address_prefix),
        )
    })?;
    let max = if matches!(address, std::net::IpAddr::V4(_)) {
        32
    } else {
        128
    };
    let len = c.prefix_len.as_ref().map_or(max, |l| l.value);
    if len > max {
        return err(
            at(path, "prefix_len"),
            format!("{len} is longer than the address"),
        );
    }
    Ok(Cidr {
        address,
        prefix_len: len as u8,
    })
}

fn metadata(m: &MetadataMatcher, path: &str) -> Result<MetadataMatch> {
    if m.filter != JWT_FILTER {
        return err(
            at(path, "filter"),
            format!(
                "only {JWT_FILTER} metadata is available in lateen-proxy, not {:?}",
                m.filter
            ),
        );
    }
    let keys = m
        .path
        .iter()
        .map(|s| match &s.segment {
            Some(metadata_matcher::path_segment::Segment::Key(k)) => Ok(k.clone()),
            None => err(at(path, "path"), "empty segment"),
        })
        .collect::<Result<Vec<_>>>()?;
    let Some(value) = &m.value else {
        return err(at(path, "value"), "missing");
    };
    Ok(MetadataMatch {
        path: keys,
        value: value_match(value, &at(path, "value"))?,
        invert: m.invert,
    })
}

fn value_match(v: &ValueMatcher, path: &str) -> Result<ValueMatch> {
    use value_matcher::MatchPattern as V;
    Ok(match &v.match_pattern {
        Some(V::StringMatch(s)) => ValueMatch::String(string(s, &at(path, "string_match"))?),
        Some(V::PresentMatch(p)) => ValueMatch::Present(*p),
        Some(V::ListMatch(l)) => match &l.match_pattern {
            Some(list_matcher::MatchPattern::OneOf(inner)) => ValueMatch::OneOf(Box::new(
                value_match(inner, &at(path, "list_match.one_of"))?,
            )),
            None => return err(at(path, "list_match"), "missing one_of"),
        },
        _ => return err(path, "value matcher not supported"),
    })
}

/// Istio's shape: one rule for `/` requiring one provider of a list, or none at all.
pub fn jwt_authn(config: &JwtAuthentication, path: &str) -> Result<JwtAuthn> {
    leftover(
        path,
        &JwtAuthentication {
            providers: Default::default(),
            rules: Vec::new(),
            bypass_cors_preflight: false,
            ..config.clone()
        },
    )?;
    let [rule] = config.rules.as_slice() else {
        return err(
            at(path, "rules"),
            "exactly one rule (prefix /) is supported",
        );
    };
    let prefix_slash = rule.r#match.as_ref().is_some_and(|m| {
        matches!(&m.path_specifier, Some(lateen_xds::pb::envoy::config::route::v3::route_match::PathSpecifier::Prefix(p)) if p == "/")
    });
    if !prefix_slash {
        return err(at(path, "rules[0].match"), "only prefix \"/\" is supported");
    }
    let Some(requirement_rule::RequirementType::Requires(requires)) = &rule.requirement_type else {
        return err(at(path, "rules[0].requires"), "missing");
    };
    let mut names = Vec::new();
    let mut allow_missing = false;
    let mut add = |r: &JwtRequirement, p: &str| -> Result<()> {
        match &r.requires_type {
            Some(jwt_requirement::RequiresType::ProviderName(n)) => names.push(n.clone()),
            Some(jwt_requirement::RequiresType::AllowMissing(_)) => allow_missing = true,
            _ => return err(p, "only provider_name and allow_missing are supported here"),
        }
        Ok(())
    };
    let r_path = at(path, "rules[0].requires");
    match &requires.requires_type {
        Some(jwt_requirement::RequiresType::RequiresAny(list)) => {
            for (i, r) in list.requirements.iter().enumerate() {
                add(r, &format!("{r_path}.requires_any.requirements[{i}]"))?;
            }
        }
        _ => add(requires, &r_path)?,
    }
    let mut providers = Vec::new();
    for name in names {
        let Some(p) = config.providers.get(&name) else {
            return err(at(path, "providers"), format!("no provider {name:?}"));
        };
        let p_path = format!("{path}.providers[{name}]");
        let (jwks, remote) = match &p.jwks_source_specifier {
            Some(jwt_provider::JwksSourceSpecifier::LocalJwks(source)) => match &source.specifier {
                Some(data_source::Specifier::InlineString(s)) => (s.clone(), None),
                Some(data_source::Specifier::InlineBytes(b)) => {
                    (String::from_utf8_lossy(b).into_owned(), None)
                }
                _ => return err(at(&p_path, "local_jwks"), "only inline JWKS is supported"),
            },
            Some(jwt_provider::JwksSourceSpecifier::RemoteJwks(remote)) => (
                String::new(),
                Some(super::remote_jwks::translate(
                    remote,
                    &at(&p_path, "remote_jwks"),
                )?),
            ),
            None => return err(at(&p_path, "local_jwks"), "a provider needs keys"),
        };
        providers.push(Provider {
            name,
            issuer: p.issuer.clone(),
            audiences: p.audiences.clone(),
            forward: p.forward,
            from_headers: p
                .from_headers
                .iter()
                .map(|h| TokenHeader {
                    name: h.name.to_ascii_lowercase(),
                    value_prefix: h.value_prefix.clone(),
                })
                .collect(),
            from_params: p.from_params.clone(),
            forward_payload_header: p.forward_payload_header.clone(),
            payload_in_metadata: p.payload_in_metadata.clone(),
            claim_to_headers: p
                .claim_to_headers
                .iter()
                .map(|c| (c.header_name.clone(), c.claim_name.clone()))
                .collect(),
            jwks: Jwks::parse(&jwks),
            remote,
        });
    }
    Ok(JwtAuthn {
        providers,
        allow_missing,
    })
}
