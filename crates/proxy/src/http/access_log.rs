//! The HTTP side of access logging: what a request leaves for its line ([`PendingLog`]),
//! filled as the request goes and written when the response ends. Only built when the
//! listener has access logs, so requests on other listeners pay nothing.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::Version;

use super::service::{ConnContext, Current};
use crate::access_log::{Entry, RequestSide};
use crate::config::snapshot::ListenerRt;
use crate::metrics::{RequestLabels, ResponseFlags};

const REQUEST_ID: &str = "x-request-id";

/// A request's access-log entry until its response ends.
pub struct PendingLog {
    entry: Entry,
    started: Instant,
    listener: Arc<ListenerRt>,
}

impl PendingLog {
    /// Starts the entry of a request on a listener with access logs; `None` otherwise.
    pub fn begin<B>(
        ctx: &ConnContext,
        current: &Current,
        request: &http::Request<B>,
    ) -> Option<Box<PendingLog>> {
        if current.listener.access_logs.is_empty() {
            return None;
        }
        let mut entry = Entry::new(SystemTime::now());
        entry.request = RequestSide {
            headers: wanted(
                request.headers(),
                current
                    .listener
                    .access_logs
                    .iter()
                    .map(|l| (&l.request_headers, l.all_request_headers)),
            ),
            method: Some(request.method().clone()),
            path: request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string()),
            authority: request
                .uri()
                .authority()
                .map(|a| a.as_str().to_string())
                .or_else(|| {
                    let host = request.headers().get(http::header::HOST)?;
                    host.to_str().ok().map(str::to_string)
                }),
            protocol: Some(protocol(request.version())),
        };
        entry.downstream_remote_address = Some(ctx.peer);
        entry.mtls = ctx.authz.peer_principal.is_some();
        entry.requested_server_name = ctx.authz.sni.as_deref().map(str::to_string);
        entry.downstream_local_address = Some(ctx.original_dst.unwrap_or(current.listener.address));
        Some(Box::new(PendingLog {
            entry,
            started: Instant::now(),
            listener: current.listener.clone(),
        }))
    }

    /// What the proxy added that Envoy's `%REQ(...)%` shows too: a generated `x-request-id`.
    /// (`x-forwarded-for` stays as the client sent it: Envoy's sidecar listeners do not
    /// append to it.)
    pub fn forwarded_headers(&mut self, headers: &http::HeaderMap) {
        let request = &mut self.entry.request.headers;
        if !request.contains_key(REQUEST_ID)
            && let Some(id) = headers.get(REQUEST_ID)
        {
            request.insert(REQUEST_ID, id.clone());
        }
    }

    pub fn route(&mut self, name: Option<Arc<str>>, cluster: Arc<str>) {
        self.entry.route_name = name;
        self.entry.upstream_cluster = Some(cluster);
    }

    /// `%RESPONSE_CODE_DETAILS%` of a local reply: Envoy's name for the common ones, else the
    /// detail with spaces as underscores (Envoy refuses whitespace there).
    pub fn local_reply(&mut self, flags: ResponseFlags, detail: &str) {
        let details = if flags.contains(ResponseFlags::NR) {
            Cow::Borrowed("route_not_found")
        } else if detail.is_empty() {
            Cow::Borrowed("direct_response")
        } else {
            Cow::Owned(detail.replace(char::is_whitespace, "_"))
        };
        self.entry.response_code_details = Some(details);
    }

    pub fn upstream_reply(&mut self, headers: &http::HeaderMap) {
        self.entry.response_code_details = Some(Cow::Borrowed("via_upstream"));
        self.entry.response_headers = wanted(
            headers,
            self.listener
                .access_logs
                .iter()
                .map(|l| (&l.response_headers, l.all_response_headers)),
        );
    }

    /// Completes the entry when the response has ended and queues its lines.
    pub fn finish(
        mut self: Box<Self>,
        labels: &RequestLabels,
        request_bytes: u64,
        response_bytes: u64,
        upstream_host: Option<std::net::SocketAddr>,
    ) {
        let entry = &mut self.entry;
        entry.duration = self.started.elapsed();
        entry.response_code = labels.response_code;
        entry.response_flags = if labels.response_flags.is_empty() {
            String::new()
        } else {
            labels.response_flags.to_string()
        };
        entry.bytes_received = request_bytes;
        entry.bytes_sent = response_bytes;
        entry.upstream_host = upstream_host;
        crate::access_log::log_all(&self.listener.access_logs, &self.entry);
    }
}

/// The headers of `from` that some logger reads (each logger's names, or all of them when its
/// filter reads the whole map); copying only these keeps logging cheap.
fn wanted<'a>(
    from: &http::HeaderMap,
    loggers: impl Iterator<Item = (&'a Vec<http::HeaderName>, bool)>,
) -> http::HeaderMap {
    let mut out = http::HeaderMap::new();
    let mut names = Vec::new();
    for (logger_names, all) in loggers {
        if all {
            return from.clone();
        }
        names.push(logger_names);
    }
    for name in names.into_iter().flatten() {
        if out.contains_key(name) {
            continue;
        }
        for value in from.get_all(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
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
