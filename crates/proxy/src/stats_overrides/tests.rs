#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;

use super::*;
use crate::metrics::{Metrics, PeerLabels, Reporter, RequestLabels, ResponseFlags};

/// `(metric, drop, tags to remove, tags to upsert)`.
type Override<'a> = (&'a str, bool, &'a [&'a str], &'a [(&'a str, &'a str)]);

fn config(metrics: &[Override<'_>]) -> StatsConfig {
    StatsConfig {
        metrics: metrics
            .iter()
            .map(|(name, drop, remove, upsert)| MetricOverrideConfig {
                name: name.to_string(),
                drop: *drop,
                tags_to_remove: remove.iter().map(|t| t.to_string()).collect(),
                dimensions: upsert
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
            .collect(),
    }
}

fn labels() -> RequestLabels {
    RequestLabels {
        reporter: Reporter::Source,
        source: Arc::new(PeerLabels::new(
            Some("productpage-v1"),
            Some("default"),
            Some("productpage"),
            Some("v1"),
            None,
            None,
            None,
            None,
        )),
        destination: Arc::new(PeerLabels::new(
            Some("reviews-v1"),
            Some("default"),
            Some("reviews"),
            Some("v1"),
            None,
            None,
            Some("reviews.default.svc.cluster.local"),
            None,
        )),
        request_protocol: "http",
        response_code: 200,
        grpc_status: None,
        response_flags: ResponseFlags::NONE,
        security_policy: "unknown",
        custom: None,
    }
}

fn request() -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri("http://reviews:9080/r/1?x=y")
        .header("x-user", "jason")
        .body(())
        .unwrap()
}

/// The exposition's lines of `metric` (`istio_requests_total{...} 1` etc.).
fn lines(text: &str, metric: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .map(str::to_string)
        .collect()
}

#[test]
fn removes_upserts_appends_and_drops_per_metric() {
    let table = StatsTable::compile(&config(&[
        ("", false, &["request_protocol"], &[]),
        (
            "requests_total",
            false,
            &[],
            &[
                ("user", "request.headers['x-user']"),
                ("route", "request.method + ' ' + request.path"),
                ("destination_app", "'renamed-' + upstream_peer.app"),
                ("code", "string(response.code)"),
                ("missing", "request.headers['x-none']"),
            ],
        ),
        ("request_bytes", true, &[], &[]),
    ]))
    .unwrap();
    assert!(table.reads_request());
    let metrics = Metrics::new();
    let attrs = RequestAttrs::capture(&table, &request());
    record_request(&metrics, &table, &labels(), attrs.as_deref(), 2.0, 10, 20);
    let text = metrics.encode_prometheus();
    let requests = lines(&text, "istio_requests_total");
    assert_eq!(requests.len(), 1, "{text}");
    let line = &requests[0];
    assert!(!line.contains("request_protocol="), "{line}");
    assert!(
        line.contains("destination_app=\"renamed-reviews\""),
        "{line}"
    );
    assert!(
        line.ends_with(
            "code=\"200\",missing=\"unknown\",route=\"POST /r/1?x=y\",user=\"jason\"} 1"
        ),
        "new labels are appended in name order: {line}"
    );
    assert!(
        line.starts_with(
            "istio_requests_total{reporter=\"source\",source_workload=\"productpage-v1\""
        ),
        "{line}"
    );
    // Every metric lost request_protocol; only requests_total got the new labels.
    let response = lines(&text, "istio_response_bytes_count");
    assert_eq!(response.len(), 1, "{text}");
    assert!(!response[0].contains("request_protocol="), "{text}");
    assert!(!response[0].contains("user="), "{text}");
    assert!(
        response[0].contains("destination_app=\"reviews\""),
        "{text}"
    );
    // request_bytes is dropped.
    assert!(
        lines(&text, "istio_request_bytes_count").is_empty(),
        "{text}"
    );
}

#[test]
fn series_made_by_overrides_stay_under_the_bound() {
    let table = StatsTable::compile(&config(&[(
        "requests_total",
        false,
        &[],
        &[("user", "request.headers['x-user']")],
    )]))
    .unwrap();
    let metrics = Metrics::with_max_series(3);
    for user in ["a", "b", "c", "d", "e"] {
        let request = http::Request::builder()
            .header("x-user", user)
            .body(())
            .unwrap();
        let attrs = RequestAttrs::capture(&table, &request);
        record_request(&metrics, &table, &labels(), attrs.as_deref(), 1.0, 0, 0);
    }
    let text = metrics.encode_prometheus();
    let requests = lines(&text, "istio_requests_total");
    assert!(requests.len() <= 3, "{text}");
    assert!(
        metrics
            .stats
            .metrics_series_dropped
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
}

#[test]
fn refuses_what_it_cannot_compute_naming_the_field() {
    let err = |c: StatsConfig| StatsTable::compile(&c).expect_err("refused");
    let (field, reason) = err(config(&[("my_metric", false, &[], &[])]));
    assert_eq!(field, "metrics[0].name");
    assert!(reason.contains("my_metric"), "{reason}");
    let (field, reason) = err(config(&[
        ("", false, &[], &[]),
        ("requests_total", false, &[], &[("t", "request.time")]),
    ]));
    assert_eq!(field, "metrics[1].dimensions.t");
    assert!(reason.contains("request.time"), "{reason}");
    let (field, _) = err(config(&[("", false, &[], &[("bad-name", "'x'")])]));
    assert_eq!(field, "metrics[0].dimensions.bad-name");
}

#[test]
fn literal_values_read_nothing_of_the_request() {
    let table = StatsTable::compile(&config(&[("", false, &[], &[("mesh", "'blue'")])])).unwrap();
    assert!(!table.reads_request());
    assert!(RequestAttrs::capture(&table, &request()).is_none());
}

#[test]
fn tcp_metrics_take_their_own_overrides() {
    use crate::metrics::TcpLabels;
    let table = StatsTable::compile(&config(&[
        ("", false, &["request_protocol"], &[]),
        (
            "tcp_connections_opened_total",
            false,
            &[],
            &[
                ("peer", "'to-' + destination.workload"),
                ("host", "request.host"),
            ],
        ),
        ("tcp_sent_bytes_total", true, &[], &[]),
    ]))
    .unwrap();
    let base = labels();
    let tcp = TcpLabels {
        reporter: Reporter::Source,
        source: base.source.clone(),
        destination: base.destination.clone(),
        response_flags: ResponseFlags::NONE,
        security_policy: "unknown",
        custom: None,
    };
    let metrics = Metrics::new();
    let record = TcpRecord::open(&metrics, Some(&table), &tcp);
    record.received.inc_by(7);
    record.sent.inc_by(9);
    record.close();
    let text = metrics.encode_prometheus();
    let opened = lines(&text, "istio_tcp_connections_opened_total");
    assert_eq!(opened.len(), 1, "{text}");
    assert!(
        opened[0].ends_with("host=\"unknown\",peer=\"to-reviews-v1\"} 1"),
        "a connection has no request: {}",
        opened[0]
    );
    assert!(!text.contains("request_protocol="), "{text}");
    assert!(
        lines(&text, "istio_tcp_sent_bytes_total").is_empty(),
        "{text}"
    );
    assert_eq!(lines(&text, "istio_tcp_received_bytes_total").len(), 1);
    assert!(lines(&text, "istio_tcp_received_bytes_total")[0].ends_with("} 7"));
    assert_eq!(lines(&text, "istio_tcp_connections_closed_total").len(), 1);

    // Without overrides: the standard labels, as before.
    let plain = Metrics::new();
    TcpRecord::open(&plain, None, &tcp).close();
    let text = plain.encode_prometheus();
    assert!(
        lines(&text, "istio_tcp_connections_closed_total")[0].contains("request_protocol=\"tcp\""),
        "{text}"
    );
}
