//! `Upgrade` passthrough (WebSocket and other configured HTTP/1.1 protocol switches): the
//! request goes upstream on a connection of its own; on a `101 Switching Protocols` that
//! names the protocol the client asked for, both sides are joined and bytes are copied both
//! ways until either side closes. Once joined, nothing is parsed, routed or counted, so only
//! configured protocols get there ([`ask`]): `h2c` is stripped, anything else refused.

use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;

use super::body::ProxyBody;
use super::downstream_body::DownstreamBody;
use super::forward::Outcome;
use super::service::ConnContext;
use crate::config::snapshot::ClusterRt;
use crate::metrics::ResponseFlags;

/// What an HTTP/1.1 request's `Upgrade` asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Ask {
    /// No upgrade (or an `h2c` one, now stripped): served as a plain request.
    None,
    /// A configured protocol, by the name the client gave.
    Allowed(String),
    /// A protocol not configured: 403, as Envoy answers.
    Refused(String),
}

/// Classifies `head`'s upgrade against `allowed` (compared without case). An `h2c` upgrade
/// is removed from the request (`Upgrade`, `HTTP2-Settings` and their `Connection` tokens),
/// as Envoy does: the request goes on as HTTP/1.1 and whatever the client pipelines after it
/// is parsed as requests, never tunnelled.
pub fn ask(head: &mut http::request::Parts, allowed: &[String]) -> Ask {
    if head.version != http::Version::HTTP_11 || !super::headers::is_upgrade_request(&head.headers)
    {
        return Ask::None;
    }
    let protocol = head
        .headers
        .get(http::header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_string();
    let is_h2c = protocol
        .split(',')
        .any(|token| token.trim().eq_ignore_ascii_case("h2c"));
    if is_h2c {
        head.headers.remove(http::header::UPGRADE);
        head.headers.remove("http2-settings");
        super::headers::drop_connection_tokens(&mut head.headers, &["upgrade", "http2-settings"]);
        return Ask::None;
    }
    if allowed
        .iter()
        .any(|name| name.eq_ignore_ascii_case(&protocol))
    {
        Ask::Allowed(protocol)
    } else {
        Ask::Refused(protocol)
    }
}

/// True when a 101's `Upgrade` names `protocol`, the one the client asked for.
fn switches_to(response: &http::Response<Incoming>, protocol: &str) -> bool {
    response
        .headers()
        .get(http::header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case(protocol))
}

pub async fn forward_upgrade(
    ctx: &Arc<ConnContext>,
    cluster: &ClusterRt,
    mut head: http::request::Parts,
    body: DownstreamBody,
    protocol: &str,
) -> Outcome {
    let Some(downstream) = head.extensions.remove::<OnUpgrade>() else {
        return Outcome::Failed {
            status: http::StatusCode::BAD_REQUEST,
            flags: ResponseFlags::NONE,
            detail: "connection cannot be upgraded".into(),
        };
    };
    let Some(endpoint) = cluster.pick_endpoint(None) else {
        return Outcome::Failed {
            status: http::StatusCode::SERVICE_UNAVAILABLE,
            flags: ResponseFlags::UH,
            detail: "no healthy upstream".into(),
        };
    };
    let request = http::Request::from_parts(
        head,
        ProxyBody::Downstream {
            body,
            counter: None,
        },
    );
    let mut response = match ctx
        .pool
        .send_upgrade(
            crate::upstream::Target::of(cluster, endpoint),
            cluster.connect_timeout,
            request,
        )
        .await
    {
        Ok(response) => response,
        Err(err) => {
            let flags = match err {
                crate::upstream::UpstreamError::Connect { .. } => ResponseFlags::UF,
                crate::upstream::UpstreamError::Overflow { .. } => ResponseFlags::UO,
                _ => ResponseFlags::UC,
            };
            return Outcome::Failed {
                status: http::StatusCode::SERVICE_UNAVAILABLE,
                flags,
                detail: err.to_string(),
            };
        }
    };
    if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        if !switches_to(&response, protocol) {
            return Outcome::Failed {
                status: http::StatusCode::BAD_GATEWAY,
                flags: ResponseFlags::UPE,
                detail: format!("upstream switched to a protocol other than {protocol}"),
            };
        }
        let upstream = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let (Ok(downstream), Ok(upstream)) = (downstream.await, upstream.await) else {
                return;
            };
            let mut downstream = TokioIo::new(downstream);
            let mut upstream = TokioIo::new(upstream);
            let _ = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await;
        });
    }
    Outcome::Response(response, crate::upstream::balance::Holds::default())
}
