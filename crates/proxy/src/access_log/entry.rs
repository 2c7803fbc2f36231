//! What one request or TCP connection leaves for its access-log line, and each command
//! operator's value from it (Envoy's rendering: `-` for absent values in text, `null` in JSON,
//! numbers as numbers).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::format::Operator;

/// The request side: method, path, authority and the headers the formats read.
#[derive(Clone, Debug, Default)]
pub struct RequestSide {
    pub headers: http::HeaderMap,
    pub method: Option<http::Method>,
    pub path: Option<String>,
    pub authority: Option<String>,
    pub protocol: Option<&'static str>,
}

/// One finished request (or connection).
#[derive(Clone, Debug)]
pub struct Entry {
    pub start: SystemTime,
    pub duration: Duration,
    pub request: RequestSide,
    pub response_headers: http::HeaderMap,
    /// 0 for TCP and for requests without a response.
    pub response_code: u16,
    /// Envoy's short flags (`UF,URX`) or empty.
    pub response_flags: String,
    pub response_code_details: Option<Cow<'static, str>>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub upstream_host: Option<SocketAddr>,
    pub upstream_cluster: Option<Arc<str>>,
    pub upstream_local_address: Option<SocketAddr>,
    pub downstream_local_address: Option<SocketAddr>,
    pub downstream_remote_address: Option<SocketAddr>,
    pub requested_server_name: Option<String>,
    pub route_name: Option<Arc<str>>,
    /// The downstream connection is TLS with a client certificate (Envoy's `connection.mtls`).
    pub mtls: bool,
}

impl Entry {
    pub fn new(start: SystemTime) -> Self {
        Entry {
            start,
            duration: Duration::ZERO,
            request: RequestSide::default(),
            response_headers: http::HeaderMap::new(),
            response_code: 0,
            response_flags: String::new(),
            response_code_details: None,
            bytes_received: 0,
            bytes_sent: 0,
            upstream_host: None,
            upstream_cluster: None,
            upstream_local_address: None,
            downstream_local_address: None,
            downstream_remote_address: None,
            requested_server_name: None,
            route_name: None,
            mtls: false,
        }
    }

    pub(super) fn value(&self, op: &Operator) -> Value<'_> {
        fn text(s: Option<&str>) -> Value<'_> {
            match s {
                Some(s) if !s.is_empty() => Value::Text(Cow::Borrowed(s)),
                _ => Value::Absent,
            }
        }
        let addr = |a: Option<SocketAddr>| match a {
            Some(a) => Value::Text(Cow::Owned(a.to_string())),
            None => Value::Absent,
        };
        match op {
            Operator::StartTime => Value::Text(Cow::Owned(start_time(self.start))),
            Operator::Req(main, alt) => {
                let found = self
                    .request_header(main)
                    .or_else(|| alt.as_deref().and_then(|a| self.request_header(a)));
                match found {
                    Some(v) => Value::Text(v),
                    None => Value::Absent,
                }
            }
            Operator::Resp(main, alt) => {
                let get = |name: &str| {
                    self.response_headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                };
                text(get(main).or_else(|| alt.as_deref().and_then(get)))
            }
            Operator::ResponseCode => Value::Number(u64::from(self.response_code)),
            Operator::ResponseFlags => {
                if self.response_flags.is_empty() {
                    Value::Text(Cow::Borrowed("-"))
                } else {
                    Value::Text(Cow::Borrowed(&self.response_flags))
                }
            }
            Operator::ResponseCodeDetails => text(self.response_code_details.as_deref()),
            Operator::ConnectionTerminationDetails | Operator::UpstreamTransportFailureReason => {
                Value::Absent
            }
            Operator::BytesReceived => Value::Number(self.bytes_received),
            Operator::BytesSent => Value::Number(self.bytes_sent),
            Operator::Duration => {
                Value::Number(u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX))
            }
            Operator::UpstreamHost => addr(self.upstream_host),
            Operator::UpstreamCluster => text(self.upstream_cluster.as_deref()),
            Operator::UpstreamLocalAddress => addr(self.upstream_local_address),
            Operator::DownstreamLocalAddress => addr(self.downstream_local_address),
            Operator::DownstreamRemoteAddress => addr(self.downstream_remote_address),
            Operator::DownstreamRemoteAddressWithoutPort => match self.downstream_remote_address {
                Some(a) => Value::Text(Cow::Owned(a.ip().to_string())),
                None => Value::Absent,
            },
            Operator::RequestedServerName => text(self.requested_server_name.as_deref()),
            Operator::RouteName => text(self.route_name.as_deref()),
            Operator::Protocol => text(self.request.protocol),
            Operator::Hostname => Value::Text(Cow::Borrowed(hostname())),
        }
    }

    /// Appends the text form of `op` (`-` when absent) to `out` without allocating.
    pub(super) fn write_text(&self, op: &Operator, out: &mut String) {
        let addr = |out: &mut String, a: Option<SocketAddr>| match a {
            Some(a) => super::text_out::push_socket_addr(out, a),
            None => out.push('-'),
        };
        match op {
            Operator::StartTime => write_start_time(self.start, out),
            Operator::UpstreamHost => addr(out, self.upstream_host),
            Operator::UpstreamLocalAddress => addr(out, self.upstream_local_address),
            Operator::DownstreamLocalAddress => addr(out, self.downstream_local_address),
            Operator::DownstreamRemoteAddress => addr(out, self.downstream_remote_address),
            Operator::DownstreamRemoteAddressWithoutPort => match self.downstream_remote_address {
                Some(a) => super::text_out::push_ip(out, a.ip()),
                None => out.push('-'),
            },
            Operator::Hostname => out.push_str(hostname()),
            _ => match self.value(op) {
                Value::Absent => out.push('-'),
                Value::Text(t) => out.push_str(&t),
                Value::Number(n) => super::text_out::push_u64(out, n),
            },
        }
    }

    /// A request header by its lower-case name; `:method`, `:path`, `:authority` too.
    pub(crate) fn request_header(&self, name: &str) -> Option<Cow<'_, str>> {
        let r = &self.request;
        match name {
            ":method" => r.method.as_ref().map(|m| Cow::Borrowed(m.as_str())),
            ":path" => r.path.as_deref().map(Cow::Borrowed),
            ":authority" => r
                .authority
                .as_deref()
                .or_else(|| r.headers.get(http::header::HOST)?.to_str().ok())
                .map(Cow::Borrowed),
            ":scheme" => Some(Cow::Borrowed("http")),
            _ => r
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(Cow::Borrowed),
        }
    }
}

/// One operator's value.
pub(super) enum Value<'a> {
    Absent,
    Text(Cow<'a, str>),
    Number(u64),
}

impl Value<'_> {
    /// The text form: `-` when absent.
    pub(super) fn as_text(&self) -> Cow<'_, str> {
        match self {
            Value::Absent => Cow::Borrowed("-"),
            Value::Text(t) => Cow::Borrowed(t),
            Value::Number(n) => Cow::Owned(n.to_string()),
        }
    }

    pub(super) fn as_json(&self, max: Option<usize>) -> serde_json::Value {
        match self {
            Value::Absent => serde_json::Value::Null,
            Value::Text(t) => {
                let t: &str = t;
                let cut = match max {
                    Some(max) if t.len() > max => {
                        let mut end = max;
                        while !t.is_char_boundary(end) {
                            end -= 1;
                        }
                        &t[..end]
                    }
                    _ => t,
                };
                serde_json::Value::String(cut.to_string())
            }
            Value::Number(n) => serde_json::Value::from(*n),
        }
    }
}

/// The host's name, read once (it was read from /proc for every line before).
fn hostname() -> &'static str {
    static HOSTNAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOSTNAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "-".to_string())
    })
}

/// Envoy's default `%START_TIME%`: `2024-05-01T12:34:56.789Z` (UTC, milliseconds).
pub fn start_time(at: SystemTime) -> String {
    let mut out = String::with_capacity(24);
    write_start_time(at, &mut out);
    out
}

/// Appends [`start_time`]'s form of `at` to `out`.
pub fn write_start_time(at: SystemTime, out: &mut String) {
    use super::text_out::push_padded;
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    push_padded(out, u64::try_from(year).unwrap_or(0), 4);
    out.push('-');
    push_padded(out, u64::from(month), 2);
    out.push('-');
    push_padded(out, u64::from(day), 2);
    out.push('T');
    push_padded(out, rem / 3600, 2);
    out.push(':');
    push_padded(out, (rem % 3600) / 60, 2);
    out.push(':');
    push_padded(out, rem % 60, 2);
    out.push('.');
    push_padded(out, u64::from(since.subsec_millis()), 3);
    out.push('Z');
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_envoys_default_form() {
        let at = UNIX_EPOCH + Duration::from_millis(1_714_566_896_789);
        assert_eq!(start_time(at), "2024-05-01T12:34:56.789Z");
        assert_eq!(start_time(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
