//! RequestAuthentication `jwksUri` → Envoy's `remote_jwks`, as istiod builds it when Envoy
//! fetches the keys (`PILOT_JWT_ENABLE_REMOTE_JWKS`): when the URI's host and port are a
//! service the proxy can reach, the provider's `http_uri` names that service's outbound
//! cluster (`outbound|PORT||HOST`), so the fetch goes through the mesh (its endpoints, its
//! mTLS); the timeout is the rule's `timeout` (Istio's default 5 s) and the cache 5 minutes
//! (istiod's). A URI outside the proxy's services is not fetched (see [`super::jwt`]).

use std::time::Duration;

use lateen_api::security::JwtRule;
use lateen_xds::pb::envoy::config::core::v3::{HttpUri, http_uri};
use lateen_xds::pb::envoy::extensions::filters::http::jwt_authn::v3::{RemoteJwks, jwt_provider};

use super::{Context, names};

/// istiod's fetch timeout when the rule names none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// istiod's `cache_duration`.
const CACHE_DURATION: Duration = Duration::from_secs(5 * 60);

/// The cluster a `jwksUri` is fetched through for this proxy, if its host:port is a
/// service the proxy sees. The port is the URI's, else 80 for `http` and 443 for `https`.
pub fn cluster_for(ctx: &Context<'_>, uri: &str) -> Option<String> {
    let parsed: http::Uri = uri.parse().ok()?;
    let host = parsed.host()?;
    let port = match (parsed.port_u16(), parsed.scheme_str()) {
        (Some(port), _) => u32::from(port),
        (None, Some("https")) => 443,
        (None, _) => 80,
    };
    ctx.services
        .iter()
        .find(|s| s.hostname == host && s.port(port).is_some())
        .map(|s| names::outbound_cluster(port, "", &s.hostname))
}

/// The provider's `remote_jwks` through `cluster`.
pub fn remote(rule: &JwtRule, uri: &str, cluster: String) -> jwt_provider::JwksSourceSpecifier {
    jwt_provider::JwksSourceSpecifier::RemoteJwks(RemoteJwks {
        http_uri: Some(HttpUri {
            uri: uri.to_string(),
            timeout: Some(names::duration(rule.timeout.unwrap_or(DEFAULT_TIMEOUT))),
            http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(cluster)),
        }),
        cache_duration: Some(names::duration(CACHE_DURATION)),
        ..Default::default()
    })
}
