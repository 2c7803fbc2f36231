//! Envoy's attributes (its docs' "Attributes" page) that an access-log [`Entry`] knows, with
//! Envoy's types: `response.code` an int, `source.address` `ip:port`, `request.duration` a
//! duration. An attribute the entry lacks (a TCP connection's `response.code`, a header not
//! sent) is an error value, as in Envoy, and an erroring filter does not log.

use std::borrow::Cow;

use super::eval::{EvalError, Val};
use crate::access_log::Entry;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attribute {
    RequestHeaders,
    RequestMethod,
    RequestPath,
    RequestUrlPath,
    RequestHost,
    RequestScheme,
    RequestProtocol,
    RequestDuration,
    RequestSize,
    RequestId,
    RequestUserAgent,
    RequestReferer,
    ResponseCode,
    ResponseCodeDetails,
    ResponseFlags,
    ResponseGrpcStatus,
    ResponseHeaders,
    ResponseSize,
    SourceAddress,
    SourcePort,
    DestinationAddress,
    DestinationPort,
    ConnectionMtls,
    ConnectionRequestedServerName,
    UpstreamAddress,
    UpstreamPort,
    XdsClusterName,
    XdsRouteName,
}

const ROOTS: &[&str] = &[
    "request",
    "response",
    "source",
    "destination",
    "connection",
    "upstream",
    "xds",
];

impl Attribute {
    pub(super) fn is_root(name: &str) -> bool {
        ROOTS.contains(&name)
    }

    pub(super) fn resolve(root: &str, field: &str) -> Option<Attribute> {
        use Attribute::*;
        Some(match (root, field) {
            ("request", "headers") => RequestHeaders,
            ("request", "method") => RequestMethod,
            ("request", "path") => RequestPath,
            ("request", "url_path") => RequestUrlPath,
            ("request", "host") => RequestHost,
            ("request", "scheme") => RequestScheme,
            ("request", "protocol") => RequestProtocol,
            ("request", "duration") => RequestDuration,
            ("request", "size") => RequestSize,
            ("request", "id") => RequestId,
            ("request", "useragent") => RequestUserAgent,
            ("request", "referer") => RequestReferer,
            ("response", "code") => ResponseCode,
            ("response", "code_details") => ResponseCodeDetails,
            ("response", "flags") => ResponseFlags,
            ("response", "grpc_status") => ResponseGrpcStatus,
            ("response", "headers") => ResponseHeaders,
            ("response", "size") => ResponseSize,
            ("source", "address") => SourceAddress,
            ("source", "port") => SourcePort,
            ("destination", "address") => DestinationAddress,
            ("destination", "port") => DestinationPort,
            ("connection", "mtls") => ConnectionMtls,
            ("connection", "requested_server_name") => ConnectionRequestedServerName,
            ("upstream", "address") => UpstreamAddress,
            ("upstream", "port") => UpstreamPort,
            ("xds", "cluster_name") => XdsClusterName,
            ("xds", "route_name") => XdsRouteName,
            _ => return None,
        })
    }

    /// The request header an attribute is read from, so that the entry keeps it.
    pub(super) fn request_header(self) -> Option<&'static str> {
        match self {
            Attribute::RequestId => Some("x-request-id"),
            Attribute::RequestUserAgent => Some("user-agent"),
            Attribute::RequestReferer => Some("referer"),
            _ => None,
        }
    }

    pub(super) fn value<'a>(self, entry: &'a Entry) -> Result<Val<'a>, EvalError> {
        use Attribute::*;
        let missing = EvalError("no such attribute");
        let text = |s: Option<&'a str>| s.map(|s| Val::Str(Cow::Borrowed(s))).ok_or(missing);
        let addr = |a: Option<std::net::SocketAddr>| {
            a.map(|a| Val::Str(Cow::Owned(a.to_string())))
                .ok_or(missing)
        };
        let port = |a: Option<std::net::SocketAddr>| {
            a.map(|a| Val::Int(i64::from(a.port()))).ok_or(missing)
        };
        let is_http = entry.request.method.is_some();
        let request = &entry.request;
        match self {
            RequestHeaders => Ok(Val::RequestHeaders),
            ResponseHeaders => Ok(Val::ResponseHeaders),
            RequestMethod => text(request.method.as_ref().map(http::Method::as_str)),
            RequestPath => text(request.path.as_deref()),
            RequestUrlPath => text(
                request
                    .path
                    .as_deref()
                    .map(|p| p.split_once('?').map_or(p, |(path, _)| path)),
            ),
            RequestHost => text(request.authority.as_deref()),
            RequestScheme => text(is_http.then_some("http")),
            RequestProtocol => text(request.protocol),
            RequestDuration => Ok(Val::Duration(
                i64::try_from(entry.duration.as_nanos()).unwrap_or(i64::MAX),
            )),
            RequestSize => Ok(Val::Int(clamp(entry.bytes_received))),
            RequestId | RequestUserAgent | RequestReferer => {
                let name = self.request_header().unwrap_or_default();
                entry
                    .request_header(name)
                    .map(Val::Str)
                    .ok_or(EvalError("no such key"))
            }
            ResponseCode => match entry.response_code {
                0 => Err(missing),
                code => Ok(Val::Int(i64::from(code))),
            },
            ResponseCodeDetails => text(entry.response_code_details.as_deref()),
            ResponseFlags => Ok(Val::Int(flag_bits(&entry.response_flags))),
            ResponseGrpcStatus => grpc_status(entry).map(Val::Int).ok_or(missing),
            ResponseSize => Ok(Val::Int(clamp(entry.bytes_sent))),
            SourceAddress => addr(entry.downstream_remote_address),
            SourcePort => port(entry.downstream_remote_address),
            DestinationAddress => addr(entry.downstream_local_address),
            DestinationPort => port(entry.downstream_local_address),
            ConnectionMtls => Ok(Val::Bool(entry.mtls)),
            ConnectionRequestedServerName => Ok(Val::Str(Cow::Borrowed(
                entry.requested_server_name.as_deref().unwrap_or(""),
            ))),
            UpstreamAddress => addr(entry.upstream_host),
            UpstreamPort => port(entry.upstream_host),
            XdsClusterName => text(entry.upstream_cluster.as_deref()),
            XdsRouteName => text(entry.route_name.as_deref()),
        }
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Envoy's response-flag bits (`StreamInfo::CoreResponseFlag`, in its order), for
/// `response.flags`; the entry keeps the short names.
const FLAG_BITS: &[&str] = &[
    "LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "RL", "UAEX", "RLSE", "DC",
    "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC", "OM", "DF", "DO", "DR",
];

fn flag_bits(flags: &str) -> i64 {
    flags
        .split(',')
        .filter_map(|f| FLAG_BITS.iter().position(|name| *name == f))
        .fold(0, |bits, i| bits | (1 << i))
}

/// `grpc-status` of the response headers (a trailers-only reply), else the gRPC status
/// Envoy derives from an HTTP error status. A status carried in trailers is not kept by
/// lateen-proxy's entry, so a normal gRPC reply has none (an error value).
fn grpc_status(entry: &Entry) -> Option<i64> {
    if let Some(status) = entry.response_headers.get("grpc-status") {
        return status.to_str().ok()?.parse().ok();
    }
    match entry.response_code {
        400 => Some(13),
        401 => Some(16),
        403 => Some(7),
        404 => Some(12),
        429 | 502..=504 => Some(14),
        0 | 200 => None,
        _ => Some(2),
    }
}
