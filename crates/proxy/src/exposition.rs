//! The two text formats a Prometheus scrape may ask for, chosen from its `Accept` header:
//! OpenMetrics 1.0 (what `prometheus_client` writes) when the scraper prefers it, else the
//! Prometheus text format 0.0.4, which Envoy's `/stats/prometheus` serves and every scraper
//! reads (curl's `*/*`, a missing `Accept`, Prometheus with OpenMetrics turned off).

/// `Content-Type` of OpenMetrics 1.0 text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus text format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    PrometheusText,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => OPENMETRICS,
            Format::PrometheusText => PROMETHEUS_TEXT,
        }
    }
}

/// The format an `Accept` header prefers: OpenMetrics only when its quality is above zero and
/// above that of `text/plain` (an exact or wildcard match); ties go to the Prometheus text
/// format, as Envoy answers.
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::PrometheusText;
    };
    let mut openmetrics = 0.0_f32;
    let mut text = 0.0_f32;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
            "text/plain" | "text/*" | "*/*" => text = text.max(quality),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics > text {
        Format::OpenMetrics
    } else {
        Format::PrometheusText
    }
}

/// OpenMetrics text rewritten as the Prometheus text format: counter families are named by
/// their `_total` sample (`# TYPE istio_requests_total counter`), `# UNIT` lines, exemplars
/// and the closing `# EOF` go.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| line.strip_prefix(prefix).map(|rest| (prefix, rest)));
        if let Some((prefix, rest)) = meta {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) && !name.ends_with("_total") {
                out.push_str(&format!("{prefix}{name}_total {tail}"));
                out.push('\n');
                continue;
            }
        }
        // An exemplar follows ` # ` after the value; the 0.0.4 format has none.
        let sample = match line.starts_with('#') {
            true => line,
            false => line.split_once(" # ").map_or(line, |(sample, _)| sample),
        };
        out.push_str(sample);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_pick_the_format() {
        assert_eq!(negotiate(None), Format::PrometheusText);
        assert_eq!(negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(
            negotiate(Some("text/plain;version=0.0.4;q=1,*/*;q=0.1")),
            Format::PrometheusText
        );
        // Prometheus 2.x with OpenMetrics on.
        assert_eq!(
            negotiate(Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0")),
            Format::PrometheusText
        );
    }

    #[test]
    fn counters_are_named_by_their_total_and_eof_goes() {
        let openmetrics = "# HELP istio_requests Requests.\n# TYPE istio_requests counter\nistio_requests_total{a=\"b\"} 3 # {trace_id=\"x\"} 1\n# HELP d Durations.\n# TYPE d histogram\nd_bucket{le=\"1\"} 1\nd_sum 0.5\nd_count 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(openmetrics),
            "# HELP istio_requests_total Requests.\n# TYPE istio_requests_total counter\nistio_requests_total{a=\"b\"} 3\n# HELP d Durations.\n# TYPE d histogram\nd_bucket{le=\"1\"} 1\nd_sum 0.5\nd_count 1\n"
        );
    }
}
