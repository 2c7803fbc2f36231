//! The TCP metrics of one proxied connection, with or without a listener's overrides: opened
//! when it starts, bytes counted as they flow, closed when it ends. Without overrides every
//! metric takes the connection's standard label set, admitted once under the TCP series
//! bound (as before overrides existed); with them each metric takes its own set, or none
//! when dropped, each admitted on its own.

use prometheus_client::metrics::counter::Counter;

use super::{MetricOverride, StatMetric, StatsTable};
use crate::metrics::{Metrics, TcpLabels};

/// A connection counted open, to be counted closed with [`TcpRecord::close`].
pub struct TcpRecord<'a> {
    metrics: &'a Metrics,
    /// The series `tcp_connections_closed` takes, if it is recorded.
    closed: Option<TcpLabels>,
    /// Bytes from the downstream (detached from the exposition when not recorded).
    pub received: Counter,
    /// Bytes to the downstream.
    pub sent: Counter,
}

impl<'a> TcpRecord<'a> {
    /// Counts a connection with `labels` open on a listener with overrides `table` (if any).
    pub fn open(
        metrics: &'a Metrics,
        table: Option<&StatsTable>,
        labels: &TcpLabels,
    ) -> TcpRecord<'a> {
        let Some(table) = table else {
            // A connection beyond the series bound is proxied all the same, counted into
            // detached counters nobody exports.
            if !metrics.admit_tcp(labels) {
                return TcpRecord {
                    metrics,
                    closed: None,
                    received: Counter::default(),
                    sent: Counter::default(),
                };
            }
            metrics.tcp_opened.get_or_create(labels).inc();
            return TcpRecord {
                metrics,
                closed: Some(labels.clone()),
                received: metrics.tcp_received_bytes.get_or_create_owned(labels),
                sent: metrics.tcp_sent_bytes.get_or_create_owned(labels),
            };
        };
        let series = |metric| series(table.get(metric), labels);
        if let Some(opened) = series(StatMetric::TcpOpened)
            && metrics.admit_tcp_series(&metrics.tcp_opened, &opened)
        {
            metrics.tcp_opened.get_or_create(&opened).inc();
        }
        let counter = |metric, family| match series(metric) {
            Some(series) if metrics.admit_tcp_series(family, &series) => {
                family.get_or_create_owned(&series)
            }
            _ => Counter::default(),
        };
        TcpRecord {
            metrics,
            received: counter(StatMetric::TcpReceived, &metrics.tcp_received_bytes),
            sent: counter(StatMetric::TcpSent, &metrics.tcp_sent_bytes),
            closed: series(StatMetric::TcpClosed),
        }
    }

    /// Counts the connection closed.
    pub fn close(self) {
        let family = &self.metrics.tcp_closed;
        if let Some(closed) = self.closed
            && (closed.custom.is_none() || self.metrics.admit_tcp_series(family, &closed))
        {
            family.get_or_create(&closed).inc();
        }
    }
}

/// The series of a TCP metric with override `o`: the standard one, a custom one, or none.
fn series(o: Option<&MetricOverride>, labels: &TcpLabels) -> Option<TcpLabels> {
    match o {
        None => Some(labels.clone()),
        Some(o) if o.dropped() => None,
        Some(o) => Some(TcpLabels::custom(
            labels.reporter,
            labels.with_standard(|standard| o.labels(&super::record::tcp_eval(standard, labels))),
        )),
    }
}
