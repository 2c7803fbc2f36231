//! `/metrics`: Prometheus text built at scrape time from the xDS server's counters and the
//! control plane's own, with Istio's metric names where Istio has one:
//! `pilot_xds` (connected proxies), `pilot_xds_pushes{type}`, `pilot_proxy_convergence_time`
//! (seconds from a snapshot change to its push being acknowledged), `pilot_total_xds_rejects
//! {type}` (NACKs); and ours: `lateend_config_rejected` (files rejected by validation),
//! `lateend_push_triggers`, `lateend_push_computations`, `lateend_xds_token_streams` (ADS
//! streams that presented a bearer token; not verified yet); and the admission webhooks'
//! `sidecar_injection_*` and `galley_validation_{passed,failed,http_error}` counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lateen_xds::XdsServer;
use lateen_xds::metrics::PUSH_LATENCY_BOUNDS;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// The control plane's own counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub config_rejected: AtomicU64,
    pub push_triggers: AtomicU64,
    pub push_computations: AtomicU64,
}

struct Snapshotter {
    xds: Option<XdsServer>,
    own: Arc<Metrics>,
    webhook: Option<Arc<lateen_inject::webhook::WebhookState>>,
}

impl std::fmt::Debug for Snapshotter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshotter").finish_non_exhaustive()
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

impl Collector for Snapshotter {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(xds) = &self.xds {
            let m = xds.metrics();
            encoder
                .encode_descriptor(
                    "pilot_xds",
                    "Connected xDS streams.",
                    None,
                    MetricType::Gauge,
                )?
                .encode_gauge(&m.connected_proxies.load(Ordering::Relaxed))?;
            {
                let mut family = encoder.encode_descriptor(
                    "pilot_xds_pushes",
                    "xDS responses sent, by type.",
                    None,
                    MetricType::Counter,
                )?;
                for (t, v) in m.pushes_by_type() {
                    let labels = [("type", t.to_ascii_lowercase())];
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
                }
            }
            {
                let mut family = encoder.encode_descriptor(
                    "pilot_total_xds_rejects",
                    "xDS responses rejected by proxies (NACK), by type.",
                    None,
                    MetricType::Counter,
                )?;
                for (t, v) in m.nacks_by_type() {
                    let labels = [("type", t.to_ascii_lowercase())];
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
                }
            }
            counter(
                &mut encoder,
                "lateend_xds_token_streams",
                "ADS streams opened with an authorization bearer token (not verified yet).",
                m.streams_with_token.load(Ordering::Relaxed),
            )?;
            let h = &m.push_latency;
            let mut buckets: Vec<(f64, u64)> = PUSH_LATENCY_BOUNDS
                .iter()
                .zip(h.buckets.iter())
                .map(|(b, c)| (*b, c.load(Ordering::Relaxed)))
                .collect();
            buckets.push((
                f64::INFINITY,
                h.buckets[PUSH_LATENCY_BOUNDS.len()].load(Ordering::Relaxed),
            ));
            let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            encoder
                .encode_descriptor(
                    "pilot_proxy_convergence_time",
                    "Seconds from a configuration change to its acknowledgement by the proxy.",
                    None,
                    MetricType::Histogram,
                )?
                .encode_histogram::<NoLabelSet>(
                    sum,
                    h.count.load(Ordering::Relaxed),
                    &buckets,
                    None,
                )?;
        }
        if let Some(webhook) = &self.webhook {
            for (name, value) in webhook.stats.istio_metrics() {
                // The encoder adds `_total` to counters itself.
                let name = name.strip_suffix("_total").unwrap_or(name);
                counter(
                    &mut encoder,
                    name,
                    "Sidecar injection webhook requests.",
                    value,
                )?;
            }
            if webhook.validator.is_some() {
                for (name, value) in webhook.validation_stats.istio_metrics() {
                    counter(
                        &mut encoder,
                        name,
                        "Configuration validation webhook requests.",
                        value,
                    )?;
                }
            }
        }
        counter(
            &mut encoder,
            "lateend_config_rejected",
            "Config files rejected by validation.",
            self.own.config_rejected.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "lateend_push_triggers",
            "Events that asked for a push.",
            self.own.push_triggers.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "lateend_push_computations",
            "Debounced pushes computed.",
            self.own.push_computations.load(Ordering::Relaxed),
        )?;
        Ok(())
    }
}

/// The Prometheus text exposition of every metric.
pub fn render(
    xds: Option<&XdsServer>,
    own: &Arc<Metrics>,
    webhook: Option<&Arc<lateen_inject::webhook::WebhookState>>,
) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshotter {
        xds: xds.cloned(),
        own: own.clone(),
        webhook: webhook.cloned(),
    }));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}
