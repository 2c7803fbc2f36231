//! The JWT filter's `remote_jwks` (what lateend and istiod send for a `jwksUri` in the mesh)
//! → [`crate::authz::remote_jwks::RemoteJwks`]: `http_uri.uri`, `http_uri.cluster`,
//! `http_uri.timeout` (Envoy requires it; 5 s when absent) and `cache_duration` (Envoy's
//! default 10 minutes). `async_fetch` and `retry_policy` are refused by path: lateen-proxy
//! fetches on the first request and does not retry within one.

use std::time::Duration;

use lateen_xds::pb::envoy::config::core::v3::http_uri;
use lateen_xds::pb::envoy::extensions::filters::http::jwt_authn::v3::RemoteJwks as RemoteJwksPb;

use crate::authz::remote_jwks::{DEFAULT_CACHE_DURATION, RemoteJwks};

/// The fetch timeout when `http_uri.timeout` is absent.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Translates `remote` found at `path` (`...remote_jwks`); errors are (field path, reason).
pub fn translate(remote: &RemoteJwksPb, path: &str) -> Result<RemoteJwks, (String, String)> {
    let field = |name: &str| super::join(path, name);
    if remote.async_fetch.is_some() {
        return Err((field("async_fetch"), "not supported by lateen-proxy".into()));
    }
    if remote.retry_policy.is_some() {
        return Err((
            field("retry_policy"),
            "not supported by lateen-proxy".into(),
        ));
    }
    let Some(uri) = &remote.http_uri else {
        return Err((field("http_uri"), "required".into()));
    };
    let uri_path = field("http_uri");
    if uri
        .uri
        .parse::<http::Uri>()
        .map_or(true, |u| u.authority().is_none())
    {
        return Err((
            super::join(&uri_path, "uri"),
            format!("{:?} is not an absolute http(s) URI", uri.uri),
        ));
    }
    let cluster = match &uri.http_upstream_type {
        Some(http_uri::HttpUpstreamType::Cluster(name)) if !name.is_empty() => name.clone(),
        _ => return Err((super::join(&uri_path, "cluster"), "required".into())),
    };
    let timeout = match &uri.timeout {
        Some(t) => super::duration(t).map_err(|e| (super::join(&uri_path, "timeout"), e))?,
        None => DEFAULT_TIMEOUT,
    };
    let cache_duration = match &remote.cache_duration {
        Some(d) => super::duration(d).map_err(|e| (field("cache_duration"), e))?,
        None => DEFAULT_CACHE_DURATION,
    };
    Ok(RemoteJwks::new(
        uri.uri.clone(),
        cluster,
        timeout,
        cache_duration,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lateen_xds::pb::envoy::config::core::v3::HttpUri;
    use lateen_xds::pb::google::protobuf::Duration as PbDuration;

    fn remote(uri: &str, cluster: &str) -> RemoteJwksPb {
        RemoteJwksPb {
            http_uri: Some(HttpUri {
                uri: uri.to_string(),
                timeout: Some(PbDuration {
                    seconds: 2,
                    nanos: 0,
                }),
                http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(cluster.into())),
            }),
            cache_duration: Some(PbDuration {
                seconds: 300,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn istio_remote_jwks_translates_with_its_cluster_and_times() {
        let cluster = "outbound|8080||jwks.default.svc.cluster.local";
        let got = translate(&remote("http://jwks.default:8080/keys", cluster), "p").expect("ok");
        assert_eq!(
            (
                got.uri.as_str(),
                got.cluster.as_str(),
                got.timeout,
                got.cache_duration
            ),
            (
                "http://jwks.default:8080/keys",
                cluster,
                Duration::from_secs(2),
                Duration::from_secs(300)
            )
        );
        let mut defaults = remote("http://jwks/keys", "c");
        defaults.cache_duration = None;
        if let Some(uri) = defaults.http_uri.as_mut() {
            uri.timeout = None;
        }
        let got = translate(&defaults, "p").expect("ok");
        assert_eq!(
            (got.timeout, got.cache_duration),
            (DEFAULT_TIMEOUT, DEFAULT_CACHE_DURATION)
        );
    }

    #[test]
    fn what_lateen_proxy_cannot_do_is_refused_by_path() {
        let field = |r: RemoteJwksPb| translate(&r, "p.remote_jwks").err().map(|e| e.0);
        assert_eq!(
            field(remote("/relative", "c")),
            Some("p.remote_jwks.http_uri.uri".into())
        );
        assert_eq!(
            field(remote("http://jwks/keys", "")),
            Some("p.remote_jwks.http_uri.cluster".into())
        );
        let mut retry = remote("http://jwks/keys", "c");
        retry.retry_policy = Some(Default::default());
        assert_eq!(field(retry), Some("p.remote_jwks.retry_policy".into()));
        let mut fetch = remote("http://jwks/keys", "c");
        fetch.async_fetch = Some(Default::default());
        assert_eq!(field(fetch), Some("p.remote_jwks.async_fetch".into()));
        let mut none = remote("http://jwks/keys", "c");
        none.http_uri = None;
        assert_eq!(field(none), Some("p.remote_jwks.http_uri".into()));
    }
}
