//! RequestAuthentication → `envoy.filters.http.jwt_authn` on a sidecar's inbound HTTP
//! chains, as istiod builds it: one provider per `jwtRules` entry (`origins-N`, in
//! policy order), with its issuer, audiences, token locations (`fromHeaders`, `fromParams`,
//! `fromCookies`; Envoy's default `Authorization: Bearer` when none), `forwardOriginalToken`,
//! `outputPayloadToHeader` and `outputClaimToHeaders`; one rule for every path requiring any
//! provider or no token at all (`allow_missing`), which is Istio's authn behaviour: a request
//! without a token passes (an AuthorizationPolicy can then require a `requestPrincipal`), an
//! invalid one gets 401.
//!
//! Keys: an inline `jwks` is passed as `local_jwks`. A `jwksUri` whose host:port is a
//! service the proxy reaches becomes `remote_jwks` through that service's cluster
//! ([`super::jwks_uri`]: the proxy fetches the keys, as istiod's
//! `PILOT_JWT_ENABLE_REMOTE_JWKS` mode). Any other URI would need lateend to fetch it
//! (istiod's default mode), which it does not yet, so such a provider gets a key set no token
//! verifies against (istiod's behaviour when its fetch fails): tokens for that issuer get
//! 401, requests without a token still pass. A warning names the policy.
//!
//! Every provider writes the verified payload into the filter's dynamic metadata under
//! [`PAYLOAD_KEY`], where the RBAC rules of [`super::authz_rules`] read claims.

use std::collections::HashMap;

use lateen_api::Object;
use lateen_api::security::RequestAuthentication;
use lateen_xds::pb::envoy::config::core::v3::{DataSource, data_source};
use lateen_xds::pb::envoy::config::route::v3::{RouteMatch, route_match};
use lateen_xds::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement,
    JwtRequirementOrList, RequirementRule, jwt_provider, jwt_requirement, requirement_rule,
};
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use lateen_xds::pb::google::protobuf::Empty;

use super::Context;
use super::authz::selects;
use super::names;

pub const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";
/// Where each provider puts the verified payload in the JWT filter's dynamic metadata.
pub const PAYLOAD_KEY: &str = "payload";

/// A key set with one RSA key nobody holds: every token checked against it fails.
const UNUSABLE_JWKS: &str = r#"{"keys":[{"kty":"RSA","alg":"RS256","kid":"lateen-unfetched","e":"AQAB","n":"xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ"}]}"#;

fn applicable<'a>(ctx: &Context<'a>) -> Vec<&'a Object<RequestAuthentication>> {
    ctx.config
        .resources
        .iter()
        .filter_map(|r| r.as_request_authentication())
        .filter(|ra| {
            let targeted = ra.spec.target_ref.is_some() || !ra.spec.target_refs.is_empty();
            selects(ctx, ra.namespace(), ra.spec.selector.as_ref(), targeted)
        })
        .collect()
}

/// The JWT filter of the proxy's inbound HTTP chains, when a RequestAuthentication applies.
pub fn http_filter(ctx: &Context<'_>) -> Option<HttpFilter> {
    let policies = applicable(ctx);
    let mut providers = HashMap::new();
    let mut requirements = Vec::new();
    for ra in policies {
        for rule in &ra.spec.jwt_rules {
            let name = format!("origins-{}", providers.len());
            let inline = |jwks: String| {
                jwt_provider::JwksSourceSpecifier::LocalJwks(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(jwks)),
                    ..Default::default()
                })
            };
            let keys = match (&rule.jwks, &rule.jwks_uri) {
                (Some(jwks), _) => inline(jwks.clone()),
                (None, Some(uri)) => match super::jwks_uri::cluster_for(ctx, uri) {
                    Some(cluster) => super::jwks_uri::remote(rule, uri, cluster),
                    None => {
                        tracing::warn!(policy = %format!("{}/{}", ra.namespace(), ra.name()), %uri, "jwksUri is not a service this proxy reaches, and lateend does not fetch keys itself; tokens of this issuer are refused");
                        inline(UNUSABLE_JWKS.to_string())
                    }
                },
                (None, None) => inline(UNUSABLE_JWKS.to_string()),
            };
            let provider = JwtProvider {
                issuer: rule.issuer.clone(),
                audiences: rule.audiences.clone(),
                forward: rule.forward_original_token.unwrap_or(false),
                from_headers: rule
                    .from_headers
                    .iter()
                    .map(|h| JwtHeader {
                        name: h.name.clone(),
                        value_prefix: h.prefix.clone().unwrap_or_default(),
                    })
                    .collect(),
                from_params: rule.from_params.clone(),
                from_cookies: rule.from_cookies.clone(),
                forward_payload_header: rule.output_payload_to_header.clone().unwrap_or_default(),
                payload_in_metadata: PAYLOAD_KEY.to_string(),
                claim_to_headers: rule
                    .output_claim_to_headers
                    .iter()
                    .map(|c| JwtClaimToHeader {
                        header_name: c.header.clone(),
                        claim_name: c.claim.clone(),
                        ..Default::default()
                    })
                    .collect(),
                jwks_source_specifier: Some(keys),
                ..Default::default()
            };
            requirements.push(JwtRequirement {
                requires_type: Some(jwt_requirement::RequiresType::ProviderName(name.clone())),
            });
            providers.insert(name, provider);
        }
    }
    if providers.is_empty() {
        return None;
    }
    requirements.push(JwtRequirement {
        requires_type: Some(jwt_requirement::RequiresType::AllowMissing(Empty {})),
    });
    let config = JwtAuthentication {
        providers,
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_string())),
                ..Default::default()
            }),
            requirement_type: Some(requirement_rule::RequirementType::Requires(
                JwtRequirement {
                    requires_type: Some(jwt_requirement::RequiresType::RequiresAny(
                        JwtRequirementOrList { requirements },
                    )),
                },
            )),
        }],
        bypass_cors_preflight: true,
        ..Default::default()
    };
    Some(HttpFilter {
        name: JWT_FILTER.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(names::pack(&config))),
        ..Default::default()
    })
}
