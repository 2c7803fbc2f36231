//! Istio's `istio.stats` HTTP filter (`stats.PluginConfig`, which istiod fills from Telemetry
//! `metrics`) into the listener's [`StatsConfig`]. What lateen-proxy cannot apply is a NACK
//! naming the field: custom metric `definitions`, the `SERVER_GATEWAY` reporter, a metric
//! `match`, names other than Istio's standard metrics, and value expressions outside
//! [`lateen_api::tag_value`]. The reporting and rescoping durations are accepted and have no
//! effect: lateen-proxy counts TCP bytes as they flow and keeps every series until exit.
//! `disable_host_header_fallback` is accepted too: lateen-proxy never takes the destination
//! service from the Host header.

use lateen_xds::istio_stats::PluginConfig;
use lateen_xds::pb::google::protobuf::Any;

use crate::stats_overrides::{MetricOverrideConfig, StatsConfig, StatsTable};

pub(super) fn translate(any: Option<&Any>, path: &str) -> Result<StatsConfig, String> {
    let Some(any) = any else {
        return Err("istio.stats needs a typed_config (stats.PluginConfig)".to_string());
    };
    let config: PluginConfig = super::unpack(any)?;
    if !config.definitions.is_empty() {
        return Err(format!(
            "{path}.definitions: custom metrics are not supported by lateen-proxy"
        ));
    }
    if config.reporter != 0 {
        return Err(format!(
            "{path}.reporter: only UNSPECIFIED (the listener's direction) is supported"
        ));
    }
    let mut stats = StatsConfig::default();
    for (i, metric) in config.metrics.into_iter().enumerate() {
        if !metric.r#match.is_empty() {
            return Err(format!(
                "{path}.metrics[{i}].match: conditional overrides are not supported"
            ));
        }
        stats.metrics.push(MetricOverrideConfig {
            name: metric.name,
            drop: metric.drop,
            tags_to_remove: metric.tags_to_remove,
            dimensions: metric.dimensions,
        });
    }
    StatsTable::compile(&stats).map_err(|(field, reason)| format!("{path}.{field}: {reason}"))?;
    Ok(stats)
}
