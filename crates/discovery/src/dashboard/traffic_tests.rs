use super::*;
use crate::dashboard::promtext;

/// A scrape of productpage's sidecar: `requests` calls to reviews-v2 (of which `errors` were
/// 503s), `fast` of them under 5 ms and the rest under 100 ms; and reviews-v2's own view of
/// `requests` arriving over mutual TLS, plus `outside` calls from outside the mesh.
fn scrape(requests: u32, errors: u32, fast: u32, outside: u32) -> Vec<Sample> {
    let ok = requests - errors;
    let src = "reporter=\"source\",source_workload=\"productpage-v1\",source_workload_namespace=\"default\",source_app=\"productpage\",source_version=\"v1\",destination_workload=\"reviews-v2\",destination_workload_namespace=\"default\",destination_app=\"reviews\",destination_version=\"v2\",destination_service=\"reviews.default.svc.cluster.local\",connection_security_policy=\"unknown\"";
    let dst = "reporter=\"destination\",source_workload=\"productpage-v1\",source_workload_namespace=\"default\",destination_workload=\"reviews-v2\",destination_workload_namespace=\"default\",destination_service=\"reviews.default.svc.cluster.local\",connection_security_policy=\"mutual_tls\"";
    let ext = "reporter=\"destination\",source_workload=\"unknown\",source_workload_namespace=\"unknown\",destination_workload=\"productpage-v1\",destination_workload_namespace=\"default\",destination_service=\"productpage.default.svc.cluster.local\",connection_security_policy=\"none\"";
    let text = format!(
        "istio_requests_total{{{src},response_code=\"200\"}} {ok}\n\
         istio_requests_total{{{src},response_code=\"503\"}} {errors}\n\
         istio_request_duration_milliseconds_bucket{{{src},response_code=\"200\",le=\"5\"}} {fast}\n\
         istio_request_duration_milliseconds_bucket{{{src},response_code=\"200\",le=\"100\"}} {requests}\n\
         istio_request_duration_milliseconds_bucket{{{src},response_code=\"200\",le=\"+Inf\"}} {requests}\n\
         istio_requests_total{{{dst},response_code=\"200\"}} {requests}\n\
         istio_request_duration_milliseconds_bucket{{{dst},response_code=\"200\",le=\"+Inf\"}} {requests}\n\
         istio_requests_total{{{ext},response_code=\"200\"}} {outside}\n"
    );
    promtext::parse(&text, METRICS)
}

fn edge<'a>(edges: &'a [EdgeStats], source: &str, destination: &str) -> &'a EdgeStats {
    edges
        .iter()
        .find(|e| e.key.source == source && e.key.destination == destination)
        .unwrap_or_else(|| panic!("no edge {source} -> {destination} in {edges:?}"))
}

#[test]
fn rates_error_rate_and_p99_come_from_the_window_deltas() {
    let traffic = Traffic::default();
    let start = Instant::now();
    // 1000 requests before the window begins must not count; then 100 more in 10 s, 10 of
    // them failed, 50 fast.
    traffic.record("a", start, &scrape(1000, 0, 1000, 0));
    traffic.record(
        "a",
        start + Duration::from_secs(10),
        &scrape(1100, 10, 1050, 20),
    );
    let edges = traffic.edges();
    let e = edge(&edges, "default/productpage-v1", "default/reviews-v2");
    assert!((e.rps - 10.0).abs() < 1e-9, "{e:?}");
    assert!((e.error_rate - 0.1).abs() < 1e-9, "{e:?}");
    // 50 of 100 under 5 ms, the rest in (5, 100]: rank 99 is 49/50 of the way into it.
    let p99 = e.p99_ms.unwrap_or_default();
    assert!((p99 - (5.0 + 95.0 * 49.0 / 50.0)).abs() < 1e-9, "{p99}");
    assert!(e.mtls, "the destination reported mutual_tls");
    assert_eq!(e.source_app, "productpage");
    assert_eq!(e.destination_version, "v2");
    // The destination's own series of the same calls is not counted again.
    assert_eq!(edges.len(), 2, "{edges:?}");
    let outside = edge(&edges, UNKNOWN, "default/productpage-v1");
    assert!((outside.rps - 2.0).abs() < 1e-9, "{outside:?}");
    assert!(!outside.mtls);
}

#[test]
fn a_restarted_proxy_counts_its_new_counters_whole() {
    let traffic = Traffic::default();
    let start = Instant::now();
    traffic.record("a", start, &scrape(1000, 0, 1000, 0));
    traffic.record("a", start + Duration::from_secs(5), &scrape(30, 0, 30, 0));
    let edges = traffic.edges();
    let e = edge(&edges, "default/productpage-v1", "default/reviews-v2");
    assert!((e.rps - 6.0).abs() < 1e-9, "{e:?}");
}

#[test]
fn one_scrape_gives_no_rate_and_old_scrapes_leave_the_window() {
    let traffic = Traffic::default();
    let start = Instant::now();
    traffic.record("a", start, &scrape(10, 0, 10, 0));
    assert!(traffic.edges().is_empty());
    traffic.record("a", start + Duration::from_secs(20), &scrape(10, 0, 10, 0));
    traffic.record("a", start + Duration::from_secs(40), &scrape(50, 0, 50, 0));
    traffic.record("a", start + Duration::from_secs(60), &scrape(90, 0, 90, 0));
    // The window now starts at 40 s: 40 requests in 20 s.
    let edges = traffic.edges();
    let e = edge(&edges, "default/productpage-v1", "default/reviews-v2");
    assert!((e.rps - 2.0).abs() < 1e-9, "{e:?}");
    // No requests in the window: no p99, no error rate.
    traffic.record("a", start + Duration::from_secs(80), &scrape(90, 0, 90, 0));
    traffic.record("a", start + Duration::from_secs(100), &scrape(90, 0, 90, 0));
    let edges = traffic.edges();
    let e = edge(&edges, "default/productpage-v1", "default/reviews-v2");
    assert_eq!((e.rps, e.error_rate, e.p99_ms), (0.0, 0.0, None));
}

#[test]
fn proxies_that_left_are_forgotten() {
    let traffic = Traffic::default();
    let start = Instant::now();
    traffic.record("a", start, &scrape(1, 0, 1, 0));
    traffic.record("a", start + Duration::from_secs(1), &scrape(2, 0, 2, 0));
    traffic.record_error("b", "connection refused".into());
    traffic.retain(&HashSet::new());
    assert!(traffic.edges().is_empty());
    assert!(traffic.errors().is_empty());
}

#[test]
fn quantile_interpolates_like_prometheus() {
    let buckets: BTreeMap<u64, f64> = [(1.0, 0.0), (10.0, 100.0), (f64::INFINITY, 100.0)]
        .into_iter()
        .map(|(le, n): (f64, f64)| (le.to_bits(), n))
        .collect();
    let p50 = quantile(0.5, &buckets).unwrap_or_default();
    assert!((p50 - 5.5).abs() < 1e-9, "{p50}");
    // Every observation beyond the last finite bound: that bound.
    let over: BTreeMap<u64, f64> = [(10.0, 0.0), (f64::INFINITY, 4.0)]
        .into_iter()
        .map(|(le, n): (f64, f64)| (le.to_bits(), n))
        .collect();
    assert_eq!(quantile(0.99, &over), Some(10.0));
    assert_eq!(quantile(0.99, &BTreeMap::new()), None);
}
