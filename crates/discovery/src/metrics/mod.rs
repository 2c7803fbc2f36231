//! `/metrics` on 15014: the Prometheus text istiod serves, built at scrape time from the xDS
//! server's counters and the control plane's own, with istiod's names, types and labels (what
//! Istio's control-plane dashboard and alerts query): `istio_build{component="pilot",tag}`,
//! `pilot_xds{version}` (connected proxies by their Istio version), `pilot_xds_pushes{type}`,
//! `pilot_xds_push_time{type}` (seconds from a configuration change to its response being
//! sent), `pilot_xds_config_size_bytes{type}`, `pilot_proxy_convergence_time` (to its acknowledgement), `pilot_total_xds_rejects
//! {type}` (NACKs), `pilot_xds_{cds,eds,lds,rds}_reject{node,err}` (proxies whose last response
//! of that type was rejected), `pilot_push_triggers{type}`, `pilot_services`,
//! `pilot_virt_services`, `pilot_k8s_reg_events` / `pilot_k8s_cfg_events{type,event}`,
//! `auto_registration_{success,errors,deletes}_total` (WorkloadGroup auto-registration), and
//! the admission webhooks' `sidecar_injection_*_total` and `galley_validation_*` counters. Ours,
//! where istiod has no such metric: `lateend_config_rejected_total` (files rejected by
//! validation), `lateend_push_computations_total`, `lateend_xds_token_streams_total`.
//!
//! Counters keep istiod's exact names: `pilot_xds_pushes` has no `_total` (istiod exports its
//! counters without the suffix) while `sidecar_injection_requests_total` carries it in its
//! name; `text.rs` writes names as given.

pub mod k8s_events;
pub mod text;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use lateen_xds::metrics::{CONFIG_SIZE_BOUNDS, LatencyHistogram, PUSH_LATENCY_BOUNDS};

use crate::push::{ControlPlane, Trigger};
use text::{Buckets, Kind, Text};

pub use text::CONTENT_TYPE;

/// The version `istio_build` and `pilot_xds` report for Lateen's own binaries.
pub const BUILD_TAG: &str = env!("CARGO_PKG_VERSION");

/// The control plane's own counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub config_rejected: AtomicU64,
    /// Push triggers by istiod's reason: configuration changes.
    config_triggers: AtomicU64,
    /// Push triggers by istiod's reason: registry changes (services, endpoints, workloads).
    endpoint_triggers: AtomicU64,
    pub push_computations: AtomicU64,
}

impl Metrics {
    /// Counts one push trigger under istiod's `pilot_push_triggers` reason.
    pub fn count_trigger(&self, trigger: Trigger) {
        let counter = match trigger {
            Trigger::Config => &self.config_triggers,
            Trigger::Registry => &self.endpoint_triggers,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every push trigger, whatever its reason.
    pub fn push_triggers(&self) -> u64 {
        self.config_triggers.load(Ordering::Relaxed)
            + self.endpoint_triggers.load(Ordering::Relaxed)
    }
}

fn buckets(h: &LatencyHistogram) -> (Vec<u64>, f64) {
    let counts = h
        .buckets
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    (counts, h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6)
}

/// A histogram family with one series per xDS type that has observations: (type, per-bucket
/// counts, sum).
fn histograms_by_type(
    text: &mut Text,
    name: &str,
    help: &str,
    bounds: &[f64],
    rows: Vec<(&str, Vec<u64>, f64)>,
) {
    text.family(name, help, Kind::Histogram);
    for (t, counts, sum) in rows {
        if counts.iter().all(|c| *c == 0) {
            continue;
        }
        text.histogram(
            name,
            &[("type", &t.to_ascii_lowercase())],
            &Buckets {
                bounds,
                counts: &counts,
                sum,
            },
        );
    }
}

fn write_xds(text: &mut Text, xds: &lateen_xds::XdsServer) {
    let m = xds.metrics();
    let connections = xds.registry().connections();
    let mut by_version: BTreeMap<String, u64> = BTreeMap::new();
    for c in &connections {
        let version = c
            .node
            .metadata
            .get("ISTIO_VERSION")
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .unwrap_or("unknown");
        *by_version.entry(version.to_string()).or_default() += 1;
    }
    text.family(
        "pilot_xds",
        "Number of endpoints connected to this pilot using XDS.",
        Kind::Gauge,
    );
    for (version, n) in &by_version {
        text.sample("pilot_xds", &[("version", version)], n);
    }

    text.family(
        "pilot_xds_pushes",
        "Pilot build and send errors for lds, rds, cds and eds.",
        Kind::Counter,
    );
    for (t, v) in m.pushes_by_type() {
        text.sample("pilot_xds_pushes", &[("type", &t.to_ascii_lowercase())], v);
    }

    let push_times = m
        .push_time_by_type()
        .into_iter()
        .map(|(t, h)| {
            let (counts, sum) = buckets(h);
            (t, counts, sum)
        })
        .collect();
    histograms_by_type(
        text,
        "pilot_xds_push_time",
        "Total time in seconds Pilot takes to push lds, rds, cds and eds.",
        &PUSH_LATENCY_BOUNDS,
        push_times,
    );
    let sizes = m
        .config_size_by_type()
        .into_iter()
        .map(|(t, h)| {
            let counts = h
                .buckets
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect();
            (t, counts, h.sum.load(Ordering::Relaxed) as f64)
        })
        .collect();
    histograms_by_type(
        text,
        "pilot_xds_config_size_bytes",
        "Distribution of configuration sizes pushed to clients",
        &CONFIG_SIZE_BOUNDS,
        sizes,
    );

    text.family(
        "pilot_total_xds_rejects",
        "Total number of XDS responses from pilot rejected by proxy.",
        Kind::Counter,
    );
    for (t, v) in m.nacks_by_type() {
        text.sample(
            "pilot_total_xds_rejects",
            &[("type", &t.to_ascii_lowercase())],
            v,
        );
    }

    // istiod's per-type reject gauges: one series per proxy whose last response was refused.
    for t in ["cds", "eds", "lds", "rds"] {
        let name = format!("pilot_xds_{t}_reject");
        text.family(
            &name,
            &format!("Pilot rejected {} configs.", t.to_ascii_uppercase()),
            Kind::Gauge,
        );
        for c in &connections {
            for (type_url, record) in &c.types {
                let short = lateen_xds::types::short_name(type_url).to_ascii_lowercase();
                if short != t || !record.last_response_nacked {
                    continue;
                }
                let err = record
                    .last_nack
                    .as_ref()
                    .map_or("", |n| n.error_detail.as_str());
                text.sample(&name, &[("node", &c.node.id), ("err", err)], 1);
            }
        }
    }

    let (counts, sum) = buckets(&m.push_latency);
    text.family(
        "pilot_proxy_convergence_time",
        "Delay in seconds between config change and a proxy receiving all required configuration.",
        Kind::Histogram,
    );
    text.histogram(
        "pilot_proxy_convergence_time",
        &[],
        &Buckets {
            bounds: &PUSH_LATENCY_BOUNDS,
            counts: &counts,
            sum,
        },
    );
    text.single(
        "lateend_xds_token_streams_total",
        "ADS streams opened with an authorization bearer token.",
        Kind::Counter,
        m.streams_with_token.load(Ordering::Relaxed),
    );
}

fn write_webhooks(text: &mut Text, webhook: &lateen_inject::webhook::WebhookState) {
    for (name, value) in webhook.stats.istio_metrics() {
        text.single(
            name,
            "Sidecar injection webhook requests.",
            Kind::Counter,
            value,
        );
    }
    if webhook.validator.is_some() {
        for (name, value) in webhook.validation_stats.istio_metrics() {
            text.single(
                name,
                "Configuration validation webhook requests.",
                Kind::Counter,
                value,
            );
        }
    }
}

fn write_auto_registration(text: &mut Text, counts: &crate::registry::AutoRegistrationCounts) {
    for (name, help, counter) in [
        (
            "auto_registration_success_total",
            "Total number of successful auto registrations.",
            &counts.success,
        ),
        (
            "auto_registration_errors_total",
            "Total number of auto registration errors.",
            &counts.errors,
        ),
        (
            "auto_registration_deletes_total",
            "Total number of auto registration cleaned up by periodic timer.",
            &counts.deletes,
        ),
    ] {
        text.single(name, help, Kind::Counter, counter.load(Ordering::Relaxed));
    }
}

/// The Prometheus text of every metric of `cp`.
pub fn render(cp: &ControlPlane) -> String {
    let mut text = Text::default();
    text.family("istio_build", "Istio component build info", Kind::Gauge);
    text.sample(
        "istio_build",
        &[("component", "pilot"), ("tag", BUILD_TAG)],
        1,
    );
    if let Some(xds) = cp.xds() {
        write_xds(&mut text, xds);
    }
    let own = cp.metrics();
    text.family(
        "pilot_push_triggers",
        "Total number of times a push was triggered, labeled by reason for the push.",
        Kind::Counter,
    );
    for (reason, counter) in [
        ("config", &own.config_triggers),
        ("endpoint", &own.endpoint_triggers),
    ] {
        text.sample(
            "pilot_push_triggers",
            &[("type", reason)],
            counter.load(Ordering::Relaxed),
        );
    }
    let config = cp.config();
    text.single(
        "pilot_services",
        "Total services known to pilot.",
        Kind::Gauge,
        cp.registry().services.len(),
    );
    text.single(
        "pilot_virt_services",
        "Total virtual services known to pilot.",
        Kind::Gauge,
        config.virtual_services().count(),
    );
    k8s_events::write(&mut text);
    write_auto_registration(&mut text, cp.auto_registration_counts());
    if let Some(webhook) = cp.webhook() {
        write_webhooks(&mut text, webhook);
    }
    text.single(
        "lateend_config_rejected_total",
        "Config files rejected by validation.",
        Kind::Counter,
        own.config_rejected.load(Ordering::Relaxed),
    );
    text.single(
        "lateend_push_computations_total",
        "Debounced pushes computed.",
        Kind::Counter,
        own.push_computations.load(Ordering::Relaxed),
    );
    text.finish()
}
