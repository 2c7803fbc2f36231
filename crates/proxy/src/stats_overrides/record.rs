//! Recording with a listener's [`StatsTable`]: the label set of each metric computed from the
//! request's standard labels and what was kept of the request ([`RequestAttrs`]), dropped
//! metrics skipped, each series admitted under the series bound of its metric group.

use std::borrow::Cow;

use lateen_api::tag_value::{PeerField, PeerSide, TagAttribute, TagValue};

use super::{MetricOverride, Part, StatMetric, StatsTable};
use crate::metrics::{CustomLabels, Metrics, PeerLabels, RequestLabels, TcpLabels};

/// A value an expression cannot find (a header not sent), as Istio reports it.
const UNKNOWN: &str = "unknown";

/// What label values read of a request, kept from its start to its end; only made when the
/// listener's table reads the request.
#[derive(Debug)]
pub struct RequestAttrs {
    host: Box<str>,
    method: Box<str>,
    path: Box<str>,
    /// The headers the table names, those the request had.
    headers: Vec<(http::HeaderName, Box<str>)>,
}

impl RequestAttrs {
    /// What `table`'s values read of `request`, or `None` when they read nothing of it.
    pub fn capture<B>(table: &StatsTable, request: &http::Request<B>) -> Option<Box<RequestAttrs>> {
        if !table.reads_request() {
            return None;
        }
        let text = |value: &http::HeaderValue| String::from_utf8_lossy(value.as_bytes()).into();
        let host = request
            .uri()
            .authority()
            .map(|a| a.as_str().into())
            .or_else(|| request.headers().get(http::header::HOST).map(text))
            .unwrap_or_default();
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str().into())
            .unwrap_or_default();
        let headers = table
            .request_headers
            .iter()
            .filter_map(|name| {
                request
                    .headers()
                    .get(name)
                    .map(|value| (name.clone(), text(value)))
            })
            .collect();
        Some(Box::new(RequestAttrs {
            host,
            method: request.method().as_str().into(),
            path,
            headers,
        }))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| &**v)
    }
}

/// What values are computed from, for one request or connection.
pub(super) struct Eval<'a> {
    standard: &'a [(&'static str, &'a str)],
    source: &'a PeerLabels,
    destination: &'a PeerLabels,
    response_code: Option<u16>,
    attrs: Option<&'a RequestAttrs>,
}

impl Eval<'_> {
    fn push(&self, value: &TagValue, out: &mut String) {
        match value {
            TagValue::Literal(text) => out.push_str(text),
            TagValue::Concat(parts) => parts.iter().for_each(|part| self.push(part, out)),
            TagValue::Attribute(attribute) => self.attribute(attribute, out),
        }
    }

    fn attribute(&self, attribute: &TagAttribute, out: &mut String) {
        let attrs = self.attrs;
        let text: Option<&str> = match attribute {
            TagAttribute::RequestHost => attrs.map(|a| &*a.host),
            TagAttribute::RequestMethod => attrs.map(|a| &*a.method),
            TagAttribute::RequestPath => attrs.map(|a| &*a.path),
            TagAttribute::RequestHeader(name) => attrs.and_then(|a| a.header(name)),
            TagAttribute::ResponseCode => {
                match self.response_code {
                    Some(code) => out.push_str(&code.to_string()),
                    None => out.push_str(UNKNOWN),
                }
                return;
            }
            TagAttribute::Peer(side, field) => {
                let peer = match side {
                    PeerSide::Source => self.source,
                    PeerSide::Destination => self.destination,
                };
                Some(peer_field(peer, *field))
            }
        };
        out.push_str(text.unwrap_or(UNKNOWN));
    }
}

fn peer_field(peer: &PeerLabels, field: PeerField) -> &str {
    match field {
        PeerField::Workload => &peer.workload,
        PeerField::Namespace => &peer.namespace,
        PeerField::App => &peer.app,
        PeerField::Version => &peer.version,
        PeerField::Principal => &peer.principal,
        PeerField::Cluster => &peer.cluster,
        PeerField::CanonicalService => &peer.canonical_service,
        PeerField::CanonicalRevision => &peer.canonical_revision,
        PeerField::Service => &peer.service,
        PeerField::ServiceName => &peer.service_name,
        PeerField::ServiceNamespace => &peer.service_namespace,
    }
}

impl MetricOverride {
    pub(super) fn labels(&self, eval: &Eval<'_>) -> CustomLabels {
        let values = self
            .parts
            .iter()
            .map(|part| match part {
                Part::Standard(index) => eval
                    .standard
                    .get(*index)
                    .map(|(_, value)| *value)
                    .unwrap_or(UNKNOWN)
                    .into(),
                Part::Value(value) => {
                    let mut out = String::new();
                    eval.push(value, &mut out);
                    out.into_boxed_str()
                }
            })
            .collect();
        CustomLabels {
            names: self.names.clone(),
            values,
        }
    }
}

/// What a TCP connection's values are computed from: its labels, no request, no response.
pub(super) fn tcp_eval<'a>(
    standard: &'a [(&'static str, &'a str)],
    labels: &'a TcpLabels,
) -> Eval<'a> {
    Eval {
        standard,
        source: &labels.source,
        destination: &labels.destination,
        response_code: None,
        attrs: None,
    }
}

/// The series of `metric` for a request: its standard labels, a custom set, or none
/// (dropped).
fn series<'a>(
    table: &StatsTable,
    metric: StatMetric,
    labels: &'a RequestLabels,
    eval: &Eval<'_>,
) -> Option<Cow<'a, RequestLabels>> {
    match table.get(metric) {
        None => Some(Cow::Borrowed(labels)),
        Some(o) if o.dropped() => None,
        Some(o) => Some(Cow::Owned(RequestLabels::custom(
            labels.reporter,
            o.labels(eval),
        ))),
    }
}

fn with_eval<R>(
    labels: &RequestLabels,
    attrs: Option<&RequestAttrs>,
    f: impl FnOnce(&Eval<'_>) -> R,
) -> R {
    labels.with_standard(|standard| {
        f(&Eval {
            standard,
            source: &labels.source,
            destination: &labels.destination,
            response_code: Some(labels.response_code),
            attrs,
        })
    })
}

/// Records one finished HTTP request on a listener with overrides (as
/// [`Metrics::record_request`] does without).
pub fn record_request(
    metrics: &Metrics,
    table: &StatsTable,
    labels: &RequestLabels,
    attrs: Option<&RequestAttrs>,
    duration_ms: f64,
    request_bytes: u64,
    response_bytes: u64,
) {
    with_eval(labels, attrs, |eval| {
        if let Some(series) = series(table, StatMetric::Requests, labels, eval)
            && metrics.admit_request_series(&metrics.requests_total, &series)
        {
            metrics.requests_total.get_or_create(&series).inc();
        }
        for (metric, family, value) in [
            (
                StatMetric::RequestDuration,
                &metrics.request_duration,
                duration_ms,
            ),
            (
                StatMetric::RequestBytes,
                &metrics.request_bytes,
                request_bytes as f64,
            ),
            (
                StatMetric::ResponseBytes,
                &metrics.response_bytes,
                response_bytes as f64,
            ),
        ] {
            if let Some(series) = series(table, metric, labels, eval)
                && metrics.admit_request_series(family, &series)
            {
                family.get_or_create(&series).observe(value);
            }
        }
    });
}

/// Records the gRPC message counts of one request on a listener with overrides.
pub fn record_grpc_messages(
    metrics: &Metrics,
    table: &StatsTable,
    labels: &RequestLabels,
    attrs: Option<&RequestAttrs>,
    request_messages: u64,
    response_messages: u64,
) {
    with_eval(labels, attrs, |eval| {
        for (metric, family, count) in [
            (
                StatMetric::RequestMessages,
                &metrics.request_messages,
                request_messages,
            ),
            (
                StatMetric::ResponseMessages,
                &metrics.response_messages,
                response_messages,
            ),
        ] {
            if let Some(series) = series(table, metric, labels, eval)
                && metrics.admit_request_series(family, &series)
            {
                family.get_or_create(&series).inc_by(count);
            }
        }
    });
}
