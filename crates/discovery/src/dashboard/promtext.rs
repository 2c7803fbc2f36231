//! A reader for the Prometheus text exposition format (0.0.4), as lateen-proxy's and Envoy's
//! `/stats/prometheus` serve it: `name{label="value",...} value [timestamp]` per line,
//! `#` comments. Only the series of the metrics asked for are kept; a line that does not
//! parse is skipped (a proxy's odd line must not hide the rest of its scrape).

use std::collections::BTreeMap;

/// One sample: the metric's full name (with `_bucket`/`_count`/`_sum`), labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// The samples of `text` whose metric name starts with one of `prefixes`.
pub fn parse(text: &str, prefixes: &[&str]) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter(|line| prefixes.iter().any(|p| line.starts_with(p)))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after)?;
        labels = parsed;
        rest = remaining;
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    (!name.is_empty()).then(|| Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// Labels up to the closing `}`; returns them and the text after it.
fn parse_labels(mut text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start_matches([' ', ',']);
        if let Some(after) = text.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = text.find('=')?;
        let key = text[..eq].trim().to_string();
        text = text[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = text.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                other => value.push(other),
            }
        };
        labels.insert(key, value);
        text = &text[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_labels_values_and_escapes() {
        let text = "# HELP istio_requests_total x\n\
            # TYPE istio_requests_total counter\n\
            istio_requests_total{reporter=\"source\",path=\"a\\\"b\\\\c\"} 12\n\
            istio_request_duration_milliseconds_bucket{le=\"+Inf\"} 3 1700000000\n\
            envoy_cluster_x 5\n\
            istio_requests_total{broken 1\n";
        let samples = parse(text, &["istio_"]);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].label("reporter"), "source");
        assert_eq!(samples[0].label("path"), "a\"b\\c");
        assert_eq!(samples[0].value, 12.0);
        assert_eq!(samples[1].label("le"), "+Inf");
        assert_eq!(samples[1].value, 3.0);
    }
}
