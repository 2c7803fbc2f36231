//! Telemetry `metrics` overrides on one listener (Istio's `istio.stats` filter config,
//! `stats.PluginConfig`): per standard metric, whether it is reported, which standard labels
//! it drops, and which labels it upserts with a value computed per request.
//!
//! A listener without overrides has no [`StatsTable`] and records exactly as before (the
//! typed label sets, no extra allocation). With one, the metrics it touches are recorded
//! with a [`crate::metrics::CustomLabels`] set made by the table ([`record`]): removed labels
//! are absent, upserted standard labels keep their place, new labels are appended in name
//! order. Every such series still counts against the series bound of its metric group.
//! Value expressions are [`lateen_api::tag_value`]'s, compiled when the configuration is:
//! anything else is refused then, naming the metric, the label and the expression.

mod record;
mod tcp_record;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use lateen_api::tag_value::{TagAttribute, TagValue};
use serde::{Deserialize, Serialize};

pub use record::{RequestAttrs, record_grpc_messages, record_request};
pub use tcp_record::TcpRecord;

/// The overrides as configured (the model's form of `stats.PluginConfig.metrics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    #[serde(default)]
    pub metrics: Vec<MetricOverrideConfig>,
}

/// One `MetricConfig`: applies to the metric `name` (Istio's Prometheus name without
/// `istio_`, e.g. `requests_total`), or to every metric when empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricOverrideConfig {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub drop: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_to_remove: Vec<String>,
    /// Label → value expression.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dimensions: BTreeMap<String, String>,
}

/// Istio's standard metrics, in the order of [`StatMetric::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatMetric {
    Requests,
    RequestDuration,
    RequestBytes,
    ResponseBytes,
    RequestMessages,
    ResponseMessages,
    TcpOpened,
    TcpClosed,
    TcpSent,
    TcpReceived,
}

impl StatMetric {
    pub const ALL: [StatMetric; 10] = [
        StatMetric::Requests,
        StatMetric::RequestDuration,
        StatMetric::RequestBytes,
        StatMetric::ResponseBytes,
        StatMetric::RequestMessages,
        StatMetric::ResponseMessages,
        StatMetric::TcpOpened,
        StatMetric::TcpClosed,
        StatMetric::TcpSent,
        StatMetric::TcpReceived,
    ];

    /// The name `MetricConfig.name` uses (istiod's `metricToPrometheusMetric`).
    pub fn config_name(self) -> &'static str {
        use lateen_xds::istio_stats as names;
        match self {
            StatMetric::Requests => names::REQUESTS_TOTAL,
            StatMetric::RequestDuration => names::REQUEST_DURATION,
            StatMetric::RequestBytes => names::REQUEST_BYTES,
            StatMetric::ResponseBytes => names::RESPONSE_BYTES,
            StatMetric::RequestMessages => names::REQUEST_MESSAGES,
            StatMetric::ResponseMessages => names::RESPONSE_MESSAGES,
            StatMetric::TcpOpened => names::TCP_OPENED,
            StatMetric::TcpClosed => names::TCP_CLOSED,
            StatMetric::TcpSent => names::TCP_SENT,
            StatMetric::TcpReceived => names::TCP_RECEIVED,
        }
    }

    fn is_tcp(self) -> bool {
        matches!(
            self,
            StatMetric::TcpOpened
                | StatMetric::TcpClosed
                | StatMetric::TcpSent
                | StatMetric::TcpReceived
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One output label of an overridden metric.
#[derive(Debug)]
enum Part {
    /// The standard label at this index of the metric's standard list.
    Standard(usize),
    Value(TagValue),
}

/// What one metric becomes on the listener.
#[derive(Debug)]
pub struct MetricOverride {
    drop: bool,
    names: Arc<[Arc<str>]>,
    parts: Box<[Part]>,
}

/// The compiled overrides of one listener.
#[derive(Debug, Default)]
pub struct StatsTable {
    metrics: [Option<MetricOverride>; 10],
    /// Request headers some value reads (lower case).
    request_headers: Vec<http::HeaderName>,
    /// Some value reads the request (host, method, path or a header).
    reads_request: bool,
}

/// The merged configuration of one metric while compiling.
#[derive(Default)]
struct Merged {
    touched: bool,
    drop: bool,
    remove: BTreeSet<String>,
    upsert: BTreeMap<String, TagValue>,
}

impl StatsTable {
    /// Compiles `config`; an error is `(field, reason)`, the field relative to the config
    /// (`metrics[1].dimensions.user`).
    pub fn compile(config: &StatsConfig) -> Result<StatsTable, (String, String)> {
        let mut merged: [Merged; 10] = Default::default();
        for (i, metric) in config.metrics.iter().enumerate() {
            let path = format!("metrics[{i}]");
            let targets: Vec<StatMetric> = if metric.name.is_empty() {
                StatMetric::ALL.to_vec()
            } else {
                let found = StatMetric::ALL
                    .into_iter()
                    .find(|m| m.config_name() == metric.name);
                let Some(found) = found else {
                    return Err((
                        format!("{path}.name"),
                        format!(
                            "{:?} is not one of Istio's standard metrics; custom metrics are \
                             not supported by lateen-proxy",
                            metric.name
                        ),
                    ));
                };
                vec![found]
            };
            let mut upserts = Vec::new();
            for (tag, text) in &metric.dimensions {
                let field = format!("{path}.dimensions.{tag}");
                if !lateen_api::tag_value::is_label_name(tag) {
                    return Err((field, format!("{tag:?} is not a Prometheus label name")));
                }
                let value = TagValue::parse(text)
                    .map_err(|e| (field, format!("cannot compute {text:?}: {e}")))?;
                upserts.push((tag.clone(), value));
            }
            for target in targets {
                let slot = &mut merged[target.index()];
                slot.touched = true;
                slot.drop |= metric.drop;
                slot.remove.extend(metric.tags_to_remove.iter().cloned());
                slot.upsert.extend(upserts.iter().cloned());
            }
        }
        let request_names = standard_names(false);
        let tcp_names = standard_names(true);
        let mut table = StatsTable::default();
        for metric in StatMetric::ALL {
            let slot = std::mem::take(&mut merged[metric.index()]);
            if !slot.touched {
                continue;
            }
            let standard = if metric.is_tcp() {
                &tcp_names
            } else {
                &request_names
            };
            for value in slot.upsert.values() {
                table.note_reads(value);
            }
            table.metrics[metric.index()] = Some(MetricOverride::build(slot, standard));
        }
        Ok(table)
    }

    /// The override of `metric`, if it has one.
    pub fn get(&self, metric: StatMetric) -> Option<&MetricOverride> {
        self.metrics[metric.index()].as_ref()
    }

    /// Whether requests must keep their host, method, path or some headers for the values.
    pub fn reads_request(&self) -> bool {
        self.reads_request
    }

    fn note_reads(&mut self, value: &TagValue) {
        match value {
            TagValue::Attribute(TagAttribute::RequestHeader(name)) => {
                self.reads_request = true;
                if let Ok(name) = http::HeaderName::from_bytes(name.as_bytes())
                    && !self.request_headers.contains(&name)
                {
                    self.request_headers.push(name);
                }
            }
            TagValue::Concat(parts) => parts.iter().for_each(|part| self.note_reads(part)),
            other => self.reads_request |= other.reads_request(),
        }
    }
}

impl MetricOverride {
    fn build(slot: Merged, standard: &[&'static str]) -> MetricOverride {
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut parts = Vec::new();
        let mut upsert = slot.upsert;
        for (index, name) in standard.iter().enumerate() {
            if let Some(value) = upsert.remove(*name) {
                names.push(Arc::from(*name));
                parts.push(Part::Value(value));
            } else if !slot.remove.contains(*name) {
                names.push(Arc::from(*name));
                parts.push(Part::Standard(index));
            }
        }
        for (name, value) in upsert {
            if slot.remove.contains(&name) {
                continue;
            }
            names.push(Arc::from(name.as_str()));
            parts.push(Part::Value(value));
        }
        MetricOverride {
            drop: slot.drop,
            names: names.into(),
            parts: parts.into(),
        }
    }

    pub fn dropped(&self) -> bool {
        self.drop
    }
}

/// The standard label names of the request metrics or of the TCP metrics, in order.
fn standard_names(tcp: bool) -> Vec<&'static str> {
    let unknown = Arc::new(crate::metrics::PeerLabels::unknown());
    let names = |labels: &[(&'static str, &str)]| labels.iter().map(|(n, _)| *n).collect();
    if tcp {
        crate::metrics::TcpLabels {
            reporter: crate::metrics::Reporter::Source,
            source: unknown.clone(),
            destination: unknown,
            response_flags: crate::metrics::ResponseFlags::NONE,
            security_policy: "",
            custom: None,
        }
        .with_standard(names)
    } else {
        crate::metrics::RequestLabels {
            reporter: crate::metrics::Reporter::Source,
            source: unknown.clone(),
            destination: unknown,
            request_protocol: "",
            response_code: 0,
            grpc_status: None,
            response_flags: crate::metrics::ResponseFlags::NONE,
            security_policy: "",
            custom: None,
        }
        .with_standard(names)
    }
}
