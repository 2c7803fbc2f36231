//! One proxy span per request, with the name, kind and tags Envoy's HTTP connection manager
//! gives it: named by the route's decorator (istiod's `HOST:PORT/*`, else `ingress`/`egress`),
//! `SERVER` on inbound listeners and `CLIENT` on outbound ones, tags `node_id`, `zone`,
//! `guid:x-request-id`, `http.url`, `http.method`, `downstream_cluster`, `user_agent`,
//! `http.protocol`, `peer.address`, `request_size`, `response_size`, `component`,
//! `upstream_cluster`, `upstream_cluster.name`, `http.status_code`, `response_flags`, `error`
//! and the configured custom tags.

use http::header::{self, HeaderMap};
use http::{Method, Uri, Version};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::context;
use crate::config::model::Direction;
use crate::config::tracing::{TagRt, TracingRt};
use lateen_otlp::{KeyValue, Span, SpanKind, Status, StatusCode};

/// A sampled request's span while the request runs.
pub struct ActiveSpan {
    tracing: Arc<TracingRt>,
    span: Span,
}

/// What is known when the response ends.
pub struct SpanEnd<'a> {
    pub status: u16,
    pub response_flags: String,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub upstream_cluster: Option<&'a str>,
    /// The route's decorator.
    pub operation: Option<&'a str>,
}

/// The request's place in its trace: reads the incoming context, decides sampling as Envoy
/// does (`request_id`: the `x-request-id`'s mark, else `random_sampling`, and the parent's
/// flag), and writes this proxy's span into the
/// request's headers for the next hop. Returns the span to record when it is sampled.
pub struct Start<'a> {
    pub tracing: &'a Arc<TracingRt>,
    pub direction: Direction,
    pub node_id: &'a str,
    pub zone: Option<&'a str>,
    pub peer: SocketAddr,
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub version: Version,
}

pub fn start(start: Start<'_>, headers: &mut HeaderMap) -> Option<ActiveSpan> {
    let incoming = context::extract(headers);
    let sampled = super::request_id::decide(
        headers,
        incoming.sampled,
        start.tracing.sampling,
        rand::random::<f64>,
    );
    let trace_id = match incoming.parent {
        Some((trace_id, _)) => trace_id,
        None => nonzero_id(),
    };
    let span_id: [u8; 8] = nonzero_id();
    context::inject(headers, &incoming, &trace_id, &span_id, sampled);
    if !sampled {
        return None;
    }
    let text = |name: &header::HeaderName| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| start.uri.authority().map(|authority| authority.as_str()))
        .unwrap_or_default();
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("http");
    let path = start
        .uri
        .path_and_query()
        .map(|path| path.as_str())
        .unwrap_or("/");
    // Envoy's `max_path_tag_length` default.
    let path = truncate(path, 256);
    let mut attributes = vec![
        KeyValue::string("node_id", start.node_id),
        KeyValue::string("zone", start.zone.unwrap_or_default()),
        KeyValue::string(
            "guid:x-request-id",
            text(&header::HeaderName::from_static("x-request-id")),
        ),
        KeyValue::string("http.url", format!("{scheme}://{host}{path}")),
        KeyValue::string("http.method", start.method.as_str()),
        KeyValue::string(
            "downstream_cluster",
            text(&header::HeaderName::from_static(
                "x-envoy-downstream-service-cluster",
            )),
        ),
        KeyValue::string("user_agent", text(&header::USER_AGENT)),
        KeyValue::string("http.protocol", protocol(start.version)),
        KeyValue::string("peer.address", start.peer.ip().to_string()),
        KeyValue::string("component", "proxy"),
    ];
    for (tag, value) in &start.tracing.tags {
        let value = match value {
            TagRt::Fixed(value) => Some(value.clone()),
            TagRt::Header {
                name,
                default_value,
            } => headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
                .or_else(|| default_value.clone()),
        };
        if let Some(value) = value {
            attributes.push(KeyValue::string(tag.as_str(), value));
        }
    }
    let kind = match start.direction {
        Direction::Inbound => SpanKind::Server,
        Direction::Outbound => SpanKind::Client,
    };
    let span = Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        trace_state: headers
            .get(&context::TRACESTATE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        parent_span_id: incoming
            .parent
            .map(|(_, parent)| parent.to_vec())
            .unwrap_or_default(),
        name: match start.direction {
            Direction::Inbound => "ingress".into(),
            Direction::Outbound => "egress".into(),
        },
        kind: kind as i32,
        start_time_unix_nano: unix_nanos(),
        end_time_unix_nano: 0,
        attributes,
        dropped_attributes_count: 0,
        status: None,
        flags: 1,
    };
    Some(ActiveSpan {
        tracing: start.tracing.clone(),
        span,
    })
}

impl ActiveSpan {
    /// Completes the span and queues it for export.
    pub fn finish(self, end: SpanEnd<'_>) {
        let ActiveSpan { tracing, mut span } = self;
        span.end_time_unix_nano = unix_nanos().max(span.start_time_unix_nano);
        if let Some(operation) = end.operation {
            span.name = operation.to_string();
        }
        let cluster = end.upstream_cluster.unwrap_or("-");
        let attributes = &mut span.attributes;
        attributes.push(KeyValue::string(
            "request_size",
            end.request_bytes.to_string(),
        ));
        attributes.push(KeyValue::string(
            "response_size",
            end.response_bytes.to_string(),
        ));
        attributes.push(KeyValue::string("upstream_cluster", cluster));
        attributes.push(KeyValue::string("upstream_cluster.name", cluster));
        attributes.push(KeyValue::string("http.status_code", end.status.to_string()));
        attributes.push(KeyValue::string("response_flags", end.response_flags));
        // Envoy marks 5xx (and requests that got no response, code 0) as errors.
        if end.status >= 500 || end.status == 0 {
            attributes.push(KeyValue::string("error", "true"));
            span.status = Some(Status {
                message: String::new(),
                code: StatusCode::Error as i32,
            });
        }
        super::export::submit(&tracing, span);
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// A random id that is not all zeros (an all-zero id is invalid in W3C and OTLP).
fn nonzero_id<const N: usize>() -> [u8; N] {
    let mut id: [u8; N] = std::array::from_fn(|_| rand::random());
    if id.iter().all(|byte| *byte == 0)
        && let Some(last) = id.last_mut()
    {
        *last = 1;
    }
    id
}
