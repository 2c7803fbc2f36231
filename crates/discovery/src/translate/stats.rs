//! Telemetry `metrics` overrides as istiod sends them (`pilot/pkg/model/telemetry.go`
//! `mergeMetrics`, `generateStatsConfig`): the `istio.stats` HTTP filter whose
//! `stats.PluginConfig` lists, per metric, the labels to upsert (`dimensions`, label → value
//! expression), to remove (`tags_to_remove`) and whether the metric is dropped.
//!
//! Telemetry at mesh (root namespace), namespace and workload level applies in that order
//! (later entries override earlier ones, tag by tag); an entry applies to the `prometheus`
//! provider it names, or inherits from the level above, else MeshConfig
//! `defaultProviders.metrics`, else `prometheus` (Istio's default install). Client (`CLIENT`)
//! overrides go to outbound listeners, server ones to inbound listeners. `ALL_METRICS`
//! disabled turns every metric off (istiod removes the filter; lateen-proxy, which reports
//! Istio's metrics without any filter, gets every metric dropped instead).
//!
//! The filter is sent only when some override applies, placed before the router and marked
//! `is_optional`, so upstream Envoy (which has no `istio.stats`) skips it and accepts the
//! listener; lateen-proxy applies it. The TCP network filter (before the TCP proxy) goes to
//! lateen-proxy only (its node's `user_agent_name`): upstream Envoy refuses an unknown
//! network filter and has no way to mark one optional. Not sent to gateways.

use std::collections::BTreeMap;

use lateen_api::telemetry::{IstioMetric, TagOperation, TagOverride};
use lateen_xds::istio_stats::{self, MetricConfig, PluginConfig};
use lateen_xds::pb::envoy::config::core::v3::TrafficDirection;
use lateen_xds::pb::envoy::config::listener::v3::{Filter, Listener, filter};
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_filter,
};
use lateen_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use lateen_xds::prost::{Message, Name};

use super::{Context, names};

/// The only metrics provider lateen-proxy reports to.
const PROMETHEUS: &str = "prometheus";

/// Every standard metric in `MetricConfig.name` spelling, in Istio's sorted enum order.
const ALL: [IstioMetric; 10] = [
    IstioMetric::GrpcRequestMessages,
    IstioMetric::GrpcResponseMessages,
    IstioMetric::RequestCount,
    IstioMetric::RequestDuration,
    IstioMetric::RequestSize,
    IstioMetric::ResponseSize,
    IstioMetric::TcpClosedConnections,
    IstioMetric::TcpOpenedConnections,
    IstioMetric::TcpReceivedBytes,
    IstioMetric::TcpSentBytes,
];

fn prometheus_name(metric: IstioMetric) -> &'static str {
    match metric {
        IstioMetric::RequestCount | IstioMetric::AllMetrics => istio_stats::REQUESTS_TOTAL,
        IstioMetric::RequestDuration => istio_stats::REQUEST_DURATION,
        IstioMetric::RequestSize => istio_stats::REQUEST_BYTES,
        IstioMetric::ResponseSize => istio_stats::RESPONSE_BYTES,
        IstioMetric::TcpOpenedConnections => istio_stats::TCP_OPENED,
        IstioMetric::TcpClosedConnections => istio_stats::TCP_CLOSED,
        IstioMetric::TcpSentBytes => istio_stats::TCP_SENT,
        IstioMetric::TcpReceivedBytes => istio_stats::TCP_RECEIVED,
        IstioMetric::GrpcRequestMessages => istio_stats::REQUEST_MESSAGES,
        IstioMetric::GrpcResponseMessages => istio_stats::RESPONSE_MESSAGES,
    }
}

/// The merged override of one metric on one side.
#[derive(Default)]
struct Merged {
    disabled: Option<bool>,
    tags: BTreeMap<String, TagOverride>,
}

/// The `stats.PluginConfig` for one side of a proxy, `None` when no override applies.
pub fn plugin_config(ctx: &Context<'_>, outbound: bool) -> Option<PluginConfig> {
    let mesh_defaults = ctx
        .config
        .mesh
        .default_providers
        .as_ref()
        .map(|d| d.metrics.clone())
        .filter(|providers| !providers.is_empty())
        .unwrap_or_else(|| vec![PROMETHEUS.to_string()]);
    let mut parent = mesh_defaults;
    let mut all_disabled = false;
    let mut merged: BTreeMap<&'static str, Merged> = BTreeMap::new();
    let applicable =
        super::access_log::applicable(ctx.config, &ctx.proxy.namespace, &ctx.proxy.labels);
    for entry in applicable.iter().flat_map(|t| &t.spec.metrics) {
        if !entry.providers.is_empty() {
            parent = entry.providers.iter().map(|p| p.name.clone()).collect();
        }
        if !parent.iter().any(|p| p == PROMETHEUS) {
            continue;
        }
        for o in &entry.overrides {
            let selector = o.match_.as_ref();
            let metric = selector.and_then(|m| m.metric);
            let mode = selector.and_then(|m| m.mode).unwrap_or_default();
            let every = metric.is_none_or(|m| m == IstioMetric::AllMetrics);
            // As istiod: ALL_METRICS disabled turns the provider off whatever the mode, and
            // any later override turns it back on.
            if every && o.disabled == Some(true) {
                all_disabled = true;
                continue;
            }
            all_disabled = false;
            if !mode.applies_to(outbound) {
                continue;
            }
            let metrics: Vec<IstioMetric> = match metric {
                Some(m) if m != IstioMetric::AllMetrics => vec![m],
                _ => ALL.to_vec(),
            };
            for metric in metrics {
                let slot = merged.entry(prometheus_name(metric)).or_default();
                if o.disabled.is_some() {
                    slot.disabled = o.disabled;
                }
                slot.tags
                    .extend(o.tag_overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }
    let metrics: Vec<MetricConfig> = if all_disabled {
        ALL.iter()
            .map(|m| MetricConfig {
                name: prometheus_name(*m).to_string(),
                drop: true,
                ..Default::default()
            })
            .collect()
    } else {
        merged
            .into_iter()
            .map(|(name, o)| metric_config(name, o))
            .collect()
    };
    if metrics.is_empty() {
        return None;
    }
    Some(PluginConfig {
        disable_host_header_fallback: !outbound,
        metrics,
        ..Default::default()
    })
}

fn metric_config(name: &str, merged: Merged) -> MetricConfig {
    let mut config = MetricConfig {
        name: name.to_string(),
        drop: merged.disabled.unwrap_or(false),
        ..Default::default()
    };
    for (tag, o) in merged.tags {
        match o.operation() {
            TagOperation::Remove => config.tags_to_remove.push(tag),
            TagOperation::Upsert => {
                config.dimensions.insert(tag, o.value.unwrap_or_default());
            }
        }
    }
    config
}

/// The `istio.stats` HTTP filter carrying `config`.
pub fn http_filter(config: &PluginConfig) -> HttpFilter {
    HttpFilter {
        name: istio_stats::FILTER_NAME.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(names::pack(config))),
        is_optional: true,
        ..Default::default()
    }
}

/// The `istio.stats` network filter carrying `config`, for TCP proxies.
fn network_filter(config: &PluginConfig) -> Filter {
    Filter {
        name: istio_stats::FILTER_NAME.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(names::pack(config))),
    }
}

/// Adds the side's `istio.stats` filter before the router of every HTTP connection manager
/// of `listeners`, and (for lateen-proxy only) before every TCP proxy.
pub fn apply(ctx: &Context<'_>, listeners: &mut [Listener]) {
    if ctx.is_router() {
        return;
    }
    let outbound = plugin_config(ctx, true);
    let inbound = plugin_config(ctx, false);
    if outbound.is_none() && inbound.is_none() {
        return;
    }
    for listener in listeners {
        let config = if listener.traffic_direction == TrafficDirection::Inbound as i32 {
            &inbound
        } else {
            &outbound
        };
        let Some(config) = config else { continue };
        let http = http_filter(config);
        let tcp = ctx.proxy.lateen_proxy.then(|| network_filter(config));
        let chains = listener
            .filter_chains
            .iter_mut()
            .chain(listener.default_filter_chain.as_mut());
        for chain in chains {
            add_to_chain(&mut chain.filters, &http, tcp.as_ref());
        }
    }
}

fn add_to_chain(filters: &mut Vec<Filter>, http: &HttpFilter, tcp: Option<&Filter>) {
    let mut tcp_proxy_at = None;
    for (index, f) in filters.iter_mut().enumerate() {
        let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
            continue;
        };
        if any.type_url == TcpProxy::type_url() {
            tcp_proxy_at = Some(index);
        } else if any.type_url == HttpConnectionManager::type_url()
            && let Ok(mut manager) = HttpConnectionManager::decode(any.value.as_slice())
        {
            let router = manager.http_filters.len().saturating_sub(1);
            manager.http_filters.insert(router, http.clone());
            *any = names::pack(&manager);
        }
    }
    if let (Some(index), Some(tcp)) = (tcp_proxy_at, tcp) {
        filters.insert(index, tcp.clone());
    }
}
