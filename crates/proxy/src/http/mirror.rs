//! Request mirroring (Envoy's `request_mirror_policies`, Istio's `mirror`/`mirrors`): a copy
//! of a request goes, fire and forget, to another cluster with `-shadow` appended to the
//! host; its answer is read and dropped and never affects the client's response. Bodies are
//! copied when the proxy holds the request body in memory (bodiless requests and bodies of
//! known length up to 64 KiB); other requests are not mirrored.

use bytes::Bytes;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;

use super::body::ProxyBody;
use super::fault::draw;
use super::forward::upstream_version;
use crate::config::snapshot::ClusterRt;
use crate::upstream::{Pool, Target};

/// A mirror copy gives up after this long when the route has no timeout.
const DEFAULT_MIRROR_TIMEOUT: Duration = Duration::from_secs(15);

pub struct MirrorRt {
    pub cluster: Arc<ClusterRt>,
    /// Share of requests mirrored, per million.
    pub share: u32,
}

/// `host-shadow` or `host-shadow:port`, as Envoy rewrites a mirrored authority.
pub fn shadow_authority(authority: &str) -> String {
    let (host, port) = match authority.rfind(':') {
        Some(colon) => {
            let (host, port) = authority.split_at(colon);
            let bracketed = host.starts_with('[') && host.ends_with(']');
            let numeric = port.len() > 1 && port[1..].bytes().all(|b| b.is_ascii_digit());
            if numeric && (bracketed || !host.contains(':')) {
                (host, port)
            } else {
                (authority, "")
            }
        }
        None => (authority, ""),
    };
    format!("{host}-shadow{port}")
}

/// Sends the copies of one request. `head` is the request as it goes upstream, before its
/// target is set for a version; `body` is its whole body.
pub fn send_copies(
    pool: &Arc<Pool>,
    mirrors: &[MirrorRt],
    head: &http::request::Parts,
    authority: &str,
    body: &Bytes,
    timeout: Option<Duration>,
) {
    for mirror in mirrors {
        if !draw(mirror.share) {
            continue;
        }
        let Some(endpoint) = mirror.cluster.pick_endpoint(None) else {
            continue;
        };
        let mut copy = http::Request::new(ProxyBody::full(body.clone()));
        *copy.method_mut() = head.method.clone();
        *copy.uri_mut() = head.uri.clone();
        *copy.version_mut() = head.version;
        *copy.headers_mut() = head.headers.clone();
        let (mut parts, copy_body) = copy.into_parts();
        let version = upstream_version(&mirror.cluster, head.version);
        if super::service::set_upstream_target(&mut parts, version, &shadow_authority(authority))
            .is_err()
        {
            continue;
        }
        let request = http::Request::from_parts(parts, copy_body);
        let pool = pool.clone();
        let cluster = mirror.cluster.clone();
        let target = Target::of(&cluster, endpoint);
        let deadline = timeout.unwrap_or(DEFAULT_MIRROR_TIMEOUT);
        tokio::spawn(async move {
            let exchange = async {
                if let Ok(response) = pool
                    .send(target, version, cluster.connect_timeout, request)
                    .await
                {
                    // Read the answer so the connection can serve again.
                    let _ = response.into_body().collect().await;
                }
            };
            let _ = tokio::time::timeout(deadline, exchange).await;
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shadow_goes_before_the_port() {
        assert_eq!(
            super::shadow_authority("reviews:9080"),
            "reviews-shadow:9080"
        );
        assert_eq!(
            super::shadow_authority("reviews.default"),
            "reviews.default-shadow"
        );
        assert_eq!(super::shadow_authority("[::1]:80"), "[::1]-shadow:80");
    }
}
