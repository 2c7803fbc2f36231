//! Reading samples out of a Prometheus text exposition (a proxy's `/stats/prometheus`,
//! lateend's `/metrics`), for tests that count requests by their labels.

/// The samples of metric `name` (labelled or not) whose line contains every one of `parts`
/// (e.g. `response_code="200"`), with their values.
fn samples<'a>(
    text: &'a str,
    name: &'a str,
    parts: &'a [&'a str],
) -> impl Iterator<Item = f64> + 'a {
    text.lines()
        .filter(move |line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(move |line| parts.iter().all(|part| line.contains(part)))
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
}

/// The sum of every matching sample (0 when none matches).
pub fn sum(text: &str, name: &str, parts: &[&str]) -> f64 {
    samples(text, name, parts).sum()
}

/// The value of the first matching sample.
pub fn first(text: &str, name: &str, parts: &[&str]) -> Option<f64> {
    samples(text, name, parts).next()
}

#[cfg(test)]
mod tests {
    const TEXT: &str = "# TYPE istio_requests_total counter\nistio_requests_total{response_code=\"200\",reporter=\"source\"} 3\nistio_requests_total{response_code=\"503\",reporter=\"source\"} 2\nistio_requests_total_other{response_code=\"200\"} 9\npilot_xds 4\n";

    #[test]
    fn sums_and_picks_by_name_and_labels() {
        assert_eq!(super::sum(TEXT, "istio_requests_total", &[]), 5.0);
        assert_eq!(
            super::sum(TEXT, "istio_requests_total", &["response_code=\"200\""]),
            3.0
        );
        assert_eq!(super::first(TEXT, "pilot_xds", &[]), Some(4.0));
        assert_eq!(
            super::first(TEXT, "istio_tcp_connections_opened_total", &[]),
            None
        );
    }
}
