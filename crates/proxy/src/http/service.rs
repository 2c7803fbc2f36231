//! The per-request path of an HTTP connection: route selection, the route's action
//! (forward, redirect, direct response), the route's CORS, fault injection and mirroring,
//! header handling, protocol upgrades, local replies, and the metrics record of every request.

use super::downstream_body::DownstreamBody;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use std::net::SocketAddr;
use std::sync::Arc;

use super::body::{Finish, ObservedBody, ProxyBody, RequestRecord, grpc_status};
use super::cors::CorsVerdict;
use super::fault::Injected;
use super::forward::{Attempt, MAX_REPLAY_BYTES, Outcome, RequestIn, upstream_version};
use super::headers;
use super::in_flight::InFlight;
use super::server::ActiveRequests;
use crate::config::Snapshot;
use crate::config::model::Direction;
use crate::config::snapshot::{ActionRt, ClusterRt, ListenerRt, RouteRt};
use crate::metrics::{Metrics, PeerLabels, ProxyStats, Reporter, RequestLabels, ResponseFlags};
use crate::upstream::{Pool, UpstreamVersion};

/// The configuration a request is served with: the latest snapshot, and in it the listener
/// the connection belongs to.
pub struct Current {
    pub snapshot: Arc<Snapshot>,
    pub listener: Arc<ListenerRt>,
}

/// Everything a request on one downstream connection needs.
pub struct ConnContext {
    /// Refreshed when the configuration changes, so a kept-alive connection's next request
    /// sees new routes; a request in flight keeps the configuration it started with.
    pub current: arc_swap::ArcSwap<Current>,
    pub config: Arc<crate::config::ConfigStore>,
    pub peers: super::peer::PeerCache,
    pub peer: SocketAddr,
    /// What authorization knows of the connection (destination, peer identity).
    pub authz: crate::authz::ConnAuthz,
    /// Where a captured connection was going; its passthrough target.
    pub original_dst: Option<SocketAddr>,
    /// For a captured connection: a cluster of its original destination, used when there are
    /// no HTTP routes or a route leads to an ORIGINAL_DST cluster.
    pub passthrough: Option<Arc<ClusterRt>>,
    pub pool: Arc<Pool>,
    pub metrics: Arc<Metrics>,
    pub active: Arc<ActiveRequests>,
    /// How the connection is secured: the mTLS peer's identity, for authorization and labels.
    pub security: crate::tls::ConnSecurity,
}

impl ConnContext {
    /// The configuration for the next request: the latest snapshot when its listener is
    /// still there, else the one the connection has.
    pub fn current(&self) -> Arc<Current> {
        let current = self.current.load_full();
        let latest = self.config.load();
        if Arc::ptr_eq(&latest, &current.snapshot) {
            return current;
        }
        let name = &current.listener.name;
        let Some(listener) = latest
            .listeners
            .iter()
            .find(|listener| &listener.name == name)
            .cloned()
        else {
            return current;
        };
        let refreshed = Arc::new(Current {
            snapshot: latest,
            listener,
        });
        self.current.store(refreshed.clone());
        refreshed
    }

    /// `peer` is what the other sidecar said about its workload (metadata exchange).
    pub(crate) fn labels(
        &self,
        current: &Current,
        cluster: Option<&ClusterRt>,
        peer: Option<&Arc<PeerLabels>>,
        request_protocol: &'static str,
    ) -> RequestLabels {
        let unknown = || Arc::new(PeerLabels::unknown());
        let (reporter, source, destination, security_policy) = match current.listener.direction {
            Direction::Outbound => {
                let destination = match (cluster, peer) {
                    (Some(cluster), Some(peer)) => {
                        self.peers.destination(&cluster.destination, peer)
                    }
                    (Some(cluster), None) => cluster.destination.clone(),
                    (None, _) => unknown(),
                };
                (
                    Reporter::Source,
                    current.snapshot.local.clone(),
                    destination,
                    "unknown",
                )
            }
            Direction::Inbound => {
                let (source, destination, policy) = self.security.inbound_labels(
                    peer.cloned().unwrap_or_else(unknown),
                    cluster
                        .map(|cluster| cluster.inbound_destination.clone())
                        .unwrap_or_else(|| current.snapshot.local.clone()),
                );
                (Reporter::Destination, source, destination, policy)
            }
        };
        RequestLabels {
            reporter,
            source,
            destination,
            request_protocol,
            response_code: 0,
            grpc_status: None,
            response_flags: ResponseFlags::NONE,
            security_policy,
            custom: None,
        }
    }
}

/// Records a request's metrics when its response body ends.
struct RecordOnFinish {
    in_flight: InFlight,
    labels: RequestLabels,
    /// The request's span when it is sampled, and the route's decorator.
    span: Option<(crate::trace::ActiveSpan, Option<Arc<str>>)>,
    log: Option<Box<super::access_log::PendingLog>>,
    /// Dropped with this record, when the response ends.
    _holds: Option<crate::upstream::balance::Holds>,
}

impl Finish for RecordOnFinish {
    fn finish(
        mut self: Box<Self>,
        response_bytes: u64,
        response_messages: u64,
        trailer_grpc_status: Option<u16>,
        complete: bool,
    ) {
        if trailer_grpc_status.is_some() {
            self.labels.grpc_status = trailer_grpc_status;
        }
        if !complete {
            self.labels.response_flags = self.labels.response_flags.with(ResponseFlags::DC);
        }
        let RecordOnFinish {
            in_flight,
            labels,
            span,
            log,
            ..
        } = *self;
        if let Some((span, operation)) = span {
            span.finish(crate::trace::SpanEnd {
                status: labels.response_code,
                response_flags: labels.response_flags.to_string(),
                request_bytes: in_flight
                    .record
                    .request_bytes
                    .load(std::sync::atomic::Ordering::Relaxed),
                response_bytes,
                upstream_cluster: in_flight.cluster.as_deref().map(|cluster| &*cluster.name),
                operation: operation.as_deref(),
            });
        }
        if let Some(log) = log {
            let record = &in_flight.record;
            let request_bytes = record
                .request_bytes
                .load(std::sync::atomic::Ordering::Relaxed);
            log.finish(
                &labels,
                request_bytes,
                response_bytes,
                record.upstream_host(),
            );
        }
        in_flight.finish(&labels, response_bytes, response_messages);
    }
}

pub async fn handle(
    ctx: Arc<ConnContext>,
    request: Request<DownstreamBody>,
) -> Result<Response<ObservedBody>, std::convert::Infallible> {
    let is_grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
    let protocol = if is_grpc { "grpc" } else { "http" };
    let current = ctx.current();
    // From here on the request is counted, and recorded once however it ends.
    let mut in_flight = InFlight::begin(ctx.clone(), current.clone(), protocol);
    if let Some(stats) = &current.listener.stats {
        in_flight.stats_attrs = crate::stats_overrides::RequestAttrs::capture(stats, &request);
    }
    let record = in_flight.record.clone();
    let mut request = request;
    let inbound = current.listener.direction == Direction::Inbound;
    // Inbound: the calling sidecar's identity arrives with the request. The header is always
    // removed; it names the source only when the caller is authenticated (#16 item 4).
    if inbound
        && let Some(value) = super::peer::take(request.headers_mut())
        && ctx.security.trusts_peer_metadata()
    {
        in_flight.peer = ctx.peers.peer(&value);
    }
    let span = current
        .listener
        .tracing
        .as_ref()
        .and_then(|tracing| start_span(&ctx, &current, tracing, &mut request));

    let mut extras = Extras {
        log: super::access_log::PendingLog::begin(&ctx, &current, &request),
        ..Extras::default()
    };
    let outcome = route_and_forward(
        &ctx,
        &current,
        request,
        &record,
        &mut extras,
        &mut in_flight,
    )
    .await;
    let cluster = in_flight.cluster.clone();
    let (mut response, mut flags) = match outcome {
        Reply::Upstream(response) => {
            if let Some(log) = &mut extras.log {
                log.upstream_reply(response.0.headers());
            }
            response
        }
        Reply::Local {
            status,
            flags,
            detail,
            extra_headers,
        } => {
            if let Some(log) = &mut extras.log {
                log.local_reply(flags, &detail);
            }
            (local_reply(status, &detail, is_grpc, extra_headers), flags)
        }
    };
    flags = flags.with(extras.flags);
    for (name, value) in extras.response_headers {
        response.headers_mut().insert(name, value);
    }
    if inbound {
        // Tell the calling sidecar who answered.
        if let Some((metadata, id)) = &current.snapshot.local_peer {
            response
                .headers_mut()
                .insert(super::peer::PEER_METADATA.clone(), metadata.clone());
            response
                .headers_mut()
                .insert(super::peer::PEER_METADATA_ID.clone(), id.clone());
        }
    } else if let Some(value) = super::peer::take(response.headers_mut()) {
        // Outbound: the answering sidecar's identity arrives with the response.
        in_flight.peer = ctx.peers.peer(&value);
    }
    let mut labels = ctx.labels(
        &current,
        cluster.as_deref(),
        in_flight.peer.as_ref(),
        protocol,
    );
    labels.response_code = response.status().as_u16();
    labels.response_flags = flags;
    labels.grpc_status = if is_grpc {
        grpc_status(response.headers())
    } else {
        None
    };
    let finish = RecordOnFinish {
        in_flight,
        labels,
        span: span.map(|span| (span, extras.operation)),
        log: extras.log,
        _holds: extras.holds,
    };
    Ok(response.map(|body| {
        let body = ObservedBody::new(body, Some(Box::new(finish)));
        if is_grpc {
            body.counting_grpc_messages()
        } else {
            body
        }
    }))
}

enum Reply {
    Upstream((Response<ProxyBody>, ResponseFlags)),
    Local {
        status: StatusCode,
        flags: ResponseFlags,
        detail: String,
        extra_headers: Vec<(header::HeaderName, HeaderValue)>,
    },
}

impl Reply {
    fn local(status: StatusCode, flags: ResponseFlags, detail: impl Into<String>) -> Reply {
        Reply::Local {
            status,
            flags,
            detail: detail.into(),
            extra_headers: Vec::new(),
        }
    }
}

/// What route policies add to whatever response the request gets.
#[derive(Default)]
struct Extras {
    flags: ResponseFlags,
    response_headers: Vec<(header::HeaderName, HeaderValue)>,
    /// Upstream counts held until the response body ends.
    holds: Option<crate::upstream::balance::Holds>,
    /// The route's span name.
    operation: Option<Arc<str>>,
    /// The access-log entry, on listeners with access logs.
    log: Option<Box<super::access_log::PendingLog>>,
}

/// Continues the request's trace (see [`crate::trace`]).
fn start_span(
    ctx: &ConnContext,
    current: &Current,
    tracing: &Arc<crate::config::tracing::TracingRt>,
    request: &mut Request<DownstreamBody>,
) -> Option<crate::trace::ActiveSpan> {
    let node = &current.snapshot.source.node;
    let (head, version) = (request.method().clone(), request.version());
    let uri = request.uri().clone();
    crate::trace::start(
        crate::trace::span::Start {
            tracing,
            direction: current.listener.direction,
            node_id: node.id.as_deref().unwrap_or_default(),
            zone: None,
            peer: ctx.peer,
            method: &head,
            uri: &uri,
            version,
        },
        request.headers_mut(),
    )
}

async fn route_and_forward(
    ctx: &Arc<ConnContext>,
    current: &Current,
    request: Request<DownstreamBody>,
    record: &Arc<RequestRecord>,
    extras: &mut Extras,
    in_flight: &mut InFlight,
) -> Reply {
    let (mut head, body) = request.into_parts();
    if let Err(refusal) = super::request_checks::check(&head, &current.listener.limits) {
        return Reply::local(refusal.status, ResponseFlags::DPE, refusal.detail);
    }
    if let Some(jwt) = &current.listener.http_authz.jwt {
        crate::authz::remote_jwks::prepare(jwt, &head, &current.snapshot, &ctx.pool).await;
    }
    if !current.listener.http_authz.is_empty()
        && let Err(refusal) =
            current
                .listener
                .http_authz
                .check(&mut head, ctx.peer.ip(), &ctx.authz)
    {
        return authz_reply(refusal, &head);
    }
    let authority = request_authority(&head);
    let upgrade = match super::upgrade::ask(&mut head, &current.listener.limits.upgrade_types) {
        super::upgrade::Ask::None => None,
        super::upgrade::Ask::Allowed(protocol) => Some(protocol),
        super::upgrade::Ask::Refused(protocol) => {
            return Reply::local(
                StatusCode::FORBIDDEN,
                ResponseFlags::NONE,
                format!("upgrade to {protocol:?} is not allowed"),
            );
        }
    };

    // A captured connection with no HTTP routes is passed through to where it was going.
    let (cluster, route, forward) = match &current.listener.routes {
        Some(table) => {
            let Some(vhost) = table.virtual_host(&authority) else {
                return Reply::local(StatusCode::NOT_FOUND, ResponseFlags::NR, "route not found");
            };
            let Some(route) = vhost
                .routes
                .iter()
                .find(|route| route_matches(route, &head))
            else {
                return Reply::local(StatusCode::NOT_FOUND, ResponseFlags::NR, "route not found");
            };
            extras.operation = route.decorator.clone();
            if let Some(cors) = &route.cors {
                match cors.check(&head.method, &head.headers) {
                    CorsVerdict::Pass => {}
                    CorsVerdict::Preflight(headers) => {
                        return Reply::Local {
                            status: StatusCode::OK,
                            flags: ResponseFlags::NONE,
                            detail: String::new(),
                            extra_headers: headers,
                        };
                    }
                    CorsVerdict::Respond(headers) => extras.response_headers = headers,
                }
            }
            if let Some(fault) = &route.fault
                && let Injected::Abort {
                    status,
                    grpc_status,
                } = fault.apply(&mut extras.flags).await
            {
                let mut extra_headers = Vec::new();
                let mut detail = "fault filter abort".to_string();
                if let Some(code) = grpc_status {
                    // gRPC aborts are HTTP 200 with the status in `grpc-status` and no body.
                    detail.clear();
                    extra_headers.push((
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/grpc"),
                    ));
                    extra_headers.push((header::HeaderName::from_static("grpc-status"), code));
                }
                return Reply::Local {
                    status,
                    flags: ResponseFlags::NONE,
                    detail,
                    extra_headers,
                };
            }
            match &route.action {
                ActionRt::Direct { status, body } => {
                    let mut response = Response::new(ProxyBody::full(body.clone()));
                    *response.status_mut() = *status;
                    headers::apply_ops(response.headers_mut(), &route.response_headers);
                    return Reply::Upstream((response, ResponseFlags::NONE));
                }
                ActionRt::Redirect(redirect) => {
                    return redirect_reply(redirect, &authority, &head);
                }
                ActionRt::Forward(forward) => {
                    let draw = if forward.clusters.len() > 1 {
                        rand::random::<u32>() % forward.total_weight
                    } else {
                        0
                    };
                    let cluster = forward.pick(draw);
                    // An ORIGINAL_DST cluster goes where the captured connection was going.
                    let cluster = match (cluster.original_dst, &ctx.passthrough) {
                        (true, Some(passthrough)) => passthrough.clone(),
                        _ => cluster.clone(),
                    };
                    (cluster, Some(route), Some(forward))
                }
            }
        }
        None => match &ctx.passthrough {
            Some(passthrough) => (passthrough.clone(), None, None),
            None => {
                return Reply::local(StatusCode::NOT_FOUND, ResponseFlags::NR, "route not found");
            }
        },
    };

    in_flight.cluster = Some(cluster.clone());
    headers::strip_hop_by_hop(&mut head.headers, upgrade.is_some());
    headers::add_forwarding_headers(&mut head.headers, ctx.peer.ip());
    if current.listener.direction == Direction::Outbound
        && let Some((metadata, id)) = &current.snapshot.local_peer
    {
        head.headers
            .insert(super::peer::PEER_METADATA.clone(), metadata.clone());
        head.headers
            .insert(super::peer::PEER_METADATA_ID.clone(), id.clone());
    }
    if let Some(route) = route {
        headers::apply_ops(&mut head.headers, &route.request_headers);
    }
    if let Some(log) = &mut extras.log {
        log.forwarded_headers(&head.headers);
        log.route(route.and_then(|r| r.name.clone()), cluster.name.clone());
    }
    let mut upstream_authority = authority.clone();
    if let Some(forward) = forward {
        if let Some(rewrite) = &forward.prefix_rewrite {
            rewrite_prefix(&mut head, route, rewrite);
        }
        if let Some(host) = &forward.host_rewrite {
            upstream_authority = host.to_str().unwrap_or_default().to_string();
        }
    }
    let mut body = RequestIn::Streaming(body);
    if let Some(forward) =
        forward.filter(|forward| !forward.mirrors.is_empty() && upgrade.is_none())
    {
        body = match mirror(ctx, forward, &head, &upstream_authority, body, record).await {
            Ok(body) => body,
            Err(reply) => return reply,
        };
    }
    let hash = match forward {
        Some(forward) if !forward.hash_policy.is_empty() => {
            super::hash_key::request_hash(&forward.hash_policy, &head, ctx.peer.ip())
        }
        _ => None,
    };
    let version = if upgrade.is_some() {
        UpstreamVersion::Http1
    } else {
        upstream_version(&cluster, head.version)
    };
    if let Err(detail) = set_upstream_target(&mut head, version, &upstream_authority) {
        return Reply::local(StatusCode::BAD_REQUEST, ResponseFlags::NONE, detail);
    }
    if version == UpstreamVersion::Http1 {
        keep_streaming_body(&mut head, &body);
    }

    let body = match (body, &upgrade) {
        (RequestIn::Streaming(body), Some(protocol)) => {
            let reply = super::upgrade::forward_upgrade(ctx, &cluster, head, body, protocol).await;
            return reply_from(reply, route, extras);
        }
        (body, _) => body,
    };

    let attempt = Attempt {
        pool: &ctx.pool,
        stats: &ctx.metrics.stats,
        cluster: &cluster,
        version,
        retry: forward.and_then(|forward| forward.retry.as_ref()),
        hash,
    };
    let timeout = forward.and_then(|forward| forward.timeout);
    let outcome = match timeout {
        Some(timeout) => match tokio::time::timeout(timeout, attempt.run(head, body, record)).await
        {
            Ok(outcome) => outcome,
            Err(_) => {
                ProxyStats::incr(&ctx.metrics.stats.upstream_rq_timeout);
                Outcome::Failed {
                    status: StatusCode::GATEWAY_TIMEOUT,
                    flags: ResponseFlags::UT,
                    detail: "upstream request timeout".into(),
                }
            }
        },
        None => attempt.run(head, body, record).await,
    };
    reply_from(refuse_unasked_switch(outcome), route, extras)
}

/// Sends the route's mirror copies when the body can be held: none, or a known length up
/// to 64 KiB (read here, and given back for the real request). Larger or streaming bodies
/// are not mirrored.
async fn mirror(
    ctx: &Arc<ConnContext>,
    forward: &crate::config::snapshot::ForwardRt,
    head: &http::request::Parts,
    authority: &str,
    body: RequestIn,
    record: &Arc<RequestRecord>,
) -> Result<RequestIn, Reply> {
    use http_body::Body;
    use http_body_util::BodyExt;
    let RequestIn::Streaming(incoming) = body else {
        return Ok(body);
    };
    let bytes = if incoming.is_end_stream() {
        bytes::Bytes::new()
    } else if incoming
        .size_hint()
        .exact()
        .is_some_and(|len| len <= MAX_REPLAY_BYTES)
    {
        match incoming.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) => {
                return Err(Reply::local(
                    StatusCode::BAD_REQUEST,
                    ResponseFlags::DC,
                    format!("reading request body: {err}"),
                ));
            }
        }
    } else {
        return Ok(RequestIn::Streaming(incoming));
    };
    record
        .request_bytes
        .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
    super::mirror::send_copies(
        &ctx.pool,
        &forward.mirrors,
        head,
        authority,
        &bytes,
        forward.timeout,
    );
    Ok(RequestIn::Buffered(bytes))
}

fn redirect_reply(
    redirect: &crate::config::model::RedirectAction,
    authority: &str,
    head: &http::request::Parts,
) -> Reply {
    let host = redirect.host.as_deref().unwrap_or(authority);
    let path = redirect
        .path
        .as_deref()
        .unwrap_or_else(|| path_and_query(head));
    let status =
        StatusCode::from_u16(redirect.response_code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    match HeaderValue::from_str(&format!("http://{host}{path}")) {
        Ok(location) => Reply::Local {
            status,
            flags: ResponseFlags::NONE,
            detail: String::new(),
            extra_headers: vec![(header::LOCATION, location)],
        },
        Err(_) => Reply::local(
            StatusCode::INTERNAL_SERVER_ERROR,
            ResponseFlags::NONE,
            "bad redirect target",
        ),
    }
}

fn reply_from(outcome: Outcome, route: Option<&RouteRt>, extras: &mut Extras) -> Reply {
    match outcome {
        Outcome::Response(response, holds) => {
            if !holds.is_empty() {
                extras.holds = Some(holds);
            }
            let (mut parts, body) = response.into_parts();
            let upgraded = parts.status == StatusCode::SWITCHING_PROTOCOLS;
            // The downstream connection has its own version; an HTTP/1.0 upstream's
            // answer must not downgrade it.
            parts.version = Version::HTTP_11;
            headers::strip_hop_by_hop(&mut parts.headers, upgraded);
            if let Some(route) = route {
                headers::apply_ops(&mut parts.headers, &route.response_headers);
            }
            let response = Response::from_parts(parts, ProxyBody::upstream(body));
            Reply::Upstream((response, ResponseFlags::NONE))
        }
        Outcome::Failed {
            status,
            flags,
            detail,
        } => {
            // Envoy marks a circuit-breaker overflow for the client with this header.
            let extra_headers = if flags.contains(ResponseFlags::UO) {
                vec![(OVERLOADED.clone(), HeaderValue::from_static("true"))]
            } else {
                Vec::new()
            };
            Reply::Local {
                status,
                flags,
                detail,
                extra_headers,
            }
        }
    }
}

/// A 101 to a request that asked for no upgrade is the upstream's protocol error: 502 `UPE`,
/// as Envoy answers, never a tunnel the client did not ask for.
fn refuse_unasked_switch(outcome: Outcome) -> Outcome {
    match outcome {
        Outcome::Response(response, _) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            Outcome::Failed {
                status: StatusCode::BAD_GATEWAY,
                flags: ResponseFlags::UPE,
                detail: "upstream switched protocols unasked".into(),
            }
        }
        outcome => outcome,
    }
}

static OVERLOADED: header::HeaderName = header::HeaderName::from_static("x-envoy-overloaded");

/// The authority the client asked for: `:authority` on HTTP/2, `Host` on HTTP/1.
fn request_authority(head: &http::request::Parts) -> String {
    head.uri
        .authority()
        .map(|authority| authority.as_str().to_string())
        .or_else(|| {
            head.headers
                .get(header::HOST)
                .and_then(|host| host.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn path_and_query(head: &http::request::Parts) -> &str {
    head.uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
}

fn route_matches(route: &RouteRt, head: &http::request::Parts) -> bool {
    if let Some(method) = &route.method
        && head.method != *method
    {
        return false;
    }
    if let Some(path) = &route.path
        && !path.matches(head.uri.path())
    {
        return false;
    }
    for matcher in &route.headers {
        let value = if matcher.name == ":authority" || matcher.name == "host" {
            head.uri
                .authority()
                .map(|a| a.as_str())
                .or_else(|| head.headers.get(header::HOST).and_then(|v| v.to_str().ok()))
        } else if matcher.name == ":method" {
            Some(head.method.as_str())
        } else if matcher.name == ":path" {
            Some(path_and_query(head))
        } else {
            head.headers
                .get(matcher.name.as_str())
                .and_then(|value| value.to_str().ok())
        };
        if !matcher.matches(value) {
            return false;
        }
    }
    if !route.query_params.is_empty() {
        let query = head.uri.query().unwrap_or("");
        for matcher in &route.query_params {
            let value = query.split('&').find_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (key == matcher.name).then_some(value)
            });
            if !matcher.matches(value) {
                return false;
            }
        }
    }
    true
}

fn rewrite_prefix(head: &mut http::request::Parts, route: Option<&RouteRt>, replacement: &str) {
    let Some(crate::config::snapshot::PathMatcher::Prefix(prefix)) =
        route.and_then(|route| route.path.as_ref())
    else {
        return;
    };
    let original = path_and_query(head);
    if let Some(rest) = original.strip_prefix(prefix.as_str()) {
        let rewritten = format!("{replacement}{rest}");
        if let Ok(path) = http::uri::PathAndQuery::try_from(rewritten) {
            let mut parts = head.uri.clone().into_parts();
            parts.path_and_query = Some(path);
            if let Ok(uri) = http::Uri::from_parts(parts) {
                head.uri = uri;
            }
        }
    }
}

/// HTTP/1.1 upstreams get origin-form URIs and a `Host` header; HTTP/2 upstreams get an
/// absolute URI so the original authority travels as `:authority`.
pub(crate) fn set_upstream_target(
    head: &mut http::request::Parts,
    version: UpstreamVersion,
    authority: &str,
) -> Result<(), String> {
    let path = path_and_query(head).to_string();
    match version {
        UpstreamVersion::Http1 => {
            head.uri =
                http::Uri::try_from(path).map_err(|err| format!("bad request path: {err}"))?;
            head.version = Version::HTTP_11;
            if !authority.is_empty() {
                let host = HeaderValue::from_str(authority)
                    .map_err(|err| format!("bad authority: {err}"))?;
                head.headers.insert(header::HOST, host);
            }
        }
        UpstreamVersion::Http2 => {
            let authority = if authority.is_empty() {
                "localhost"
            } else {
                authority
            };
            head.uri = http::Uri::builder()
                .scheme("http")
                .authority(authority)
                .path_and_query(path)
                .build()
                .map_err(|err| format!("bad request target: {err}"))?;
            head.version = Version::HTTP_2;
            head.headers.remove(header::HOST);
        }
    }
    Ok(())
}

/// A body of unknown length going to an HTTP/1.1 upstream is sent chunked, whatever the
/// method: hyper's client sends none for a GET, HEAD or CONNECT unless told, which would drop
/// a body the client sent (a GET with a chunked body).
fn keep_streaming_body(head: &mut http::request::Parts, body: &RequestIn) {
    use http_body::Body;
    let RequestIn::Streaming(incoming) = body else {
        return;
    };
    if !incoming.is_end_stream()
        && incoming.size_hint().exact().is_none()
        && !head.headers.contains_key(header::CONTENT_LENGTH)
    {
        head.headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
}

/// A response the proxy makes itself. gRPC clients get HTTP 200 with the gRPC status that
/// matches the HTTP one, as Envoy does, so their libraries report a proper error.
/// Envoy's replies: 401 with the JWT filter's message and a `www-authenticate` challenge,
/// 403 `RBAC: access denied`.
fn authz_reply(refusal: crate::authz::Refusal, head: &http::request::Parts) -> Reply {
    match refusal {
        crate::authz::Refusal::Denied => Reply::local(
            StatusCode::FORBIDDEN,
            ResponseFlags::NONE,
            crate::authz::RBAC_DENIED,
        ),
        crate::authz::Refusal::Unauthenticated(message) => {
            let challenge = format!(
                "Bearer realm=\"http://{}{}\", error=\"invalid_token\"",
                request_authority(head),
                head.uri.path()
            );
            Reply::Local {
                status: StatusCode::UNAUTHORIZED,
                flags: ResponseFlags::NONE,
                detail: message,
                extra_headers: HeaderValue::from_str(&challenge)
                    .map(|v| vec![(header::WWW_AUTHENTICATE, v)])
                    .unwrap_or_default(),
            }
        }
    }
}

fn local_reply(
    status: StatusCode,
    detail: &str,
    is_grpc: bool,
    extra_headers: Vec<(header::HeaderName, HeaderValue)>,
) -> Response<ProxyBody> {
    let mut response = if is_grpc && status != StatusCode::OK {
        let mut response = Response::new(ProxyBody::empty());
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", HeaderValue::from(grpc_status_for(status)));
        if let Ok(message) = HeaderValue::from_str(&detail.replace(['\r', '\n'], " ")) {
            headers.insert("grpc-message", message);
        }
        response
    } else {
        let mut response = Response::new(ProxyBody::full(detail.to_string()));
        *response.status_mut() = status;
        if !detail.is_empty() {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        response
    };
    for (name, value) in extra_headers {
        response.headers_mut().insert(name, value);
    }
    response
}

/// gRPC's mapping of HTTP status codes (grpc/doc/http-grpc-status-mapping.md).
fn grpc_status_for(status: StatusCode) -> u16 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}
