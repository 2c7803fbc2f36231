//! `Upgrade` passthrough (WebSocket and other HTTP/1.1 protocol switches): the request goes
//! upstream on a connection of its own; on `101 Switching Protocols` both sides are joined
//! and bytes are copied both ways until either side closes.

use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;

use super::body::ProxyBody;
use super::forward::Outcome;
use super::service::ConnContext;
use crate::config::snapshot::ClusterRt;
use crate::metrics::ResponseFlags;

pub async fn forward_upgrade(
    ctx: &Arc<ConnContext>,
    cluster: &ClusterRt,
    mut head: http::request::Parts,
    body: Incoming,
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
        ProxyBody::Incoming {
            body,
            counter: None,
        },
    );
    let mut response = match ctx
        .pool
        .send_upgrade(
            crate::upstream::Target {
                address: endpoint,
                source: cluster.source_address,
            },
            cluster.connect_timeout,
            request,
        )
        .await
    {
        Ok(response) => response,
        Err(err) => {
            let flags = match err {
                crate::upstream::UpstreamError::Connect { .. } => ResponseFlags::UF,
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
