//! A writer of the Prometheus text format 0.0.4, as istiod's `/metrics` serves it: family
//! names exactly as given (istiod's counters such as `pilot_xds_pushes` have no `_total`,
//! while `sidecar_injection_requests_total` has it in its name), so nothing is appended.

use std::fmt::Write as _;

/// The `Content-Type` of what [`Text`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Histogram buckets: upper bounds with their own (not cumulative) counts, the last count
/// being the observations above every bound.
#[derive(Debug)]
pub struct Buckets<'a> {
    pub bounds: &'a [f64],
    pub counts: &'a [u64],
    pub sum: f64,
}

#[derive(Debug, Default)]
pub struct Text {
    out: String,
}

impl Text {
    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample of the family last started (`name` may carry a suffix such as `_bucket`).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape_value(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A whole family of one sample.
    pub fn single(&mut self, name: &str, help: &str, kind: Kind, value: impl std::fmt::Display) {
        self.family(name, help, kind);
        self.sample(name, &[], value);
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram series.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], buckets: &Buckets<'_>) {
        let mut cumulative = 0u64;
        let bucket = format!("{name}_bucket");
        for (i, count) in buckets.counts.iter().enumerate() {
            cumulative += count;
            let le = buckets
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let mut with_le = labels.to_vec();
            with_le.push(("le", le.as_str()));
            self.sample(&bucket, &with_le, cumulative);
        }
        self.sample(&format!("{name}_sum"), labels, buckets.sum);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn escape_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_names_as_given_and_cumulative_buckets() {
        let mut text = Text::default();
        text.family("pilot_xds_pushes", "Pushes.", Kind::Counter);
        text.sample("pilot_xds_pushes", &[("type", "cds")], 3);
        text.family("t", "Time.", Kind::Histogram);
        text.histogram(
            "t",
            &[("type", "a\"b")],
            &Buckets {
                bounds: &[0.5, 1.0],
                counts: &[1, 2, 3],
                sum: 9.5,
            },
        );
        assert_eq!(
            text.finish(),
            "# HELP pilot_xds_pushes Pushes.\n# TYPE pilot_xds_pushes counter\npilot_xds_pushes{type=\"cds\"} 3\n\
             # HELP t Time.\n# TYPE t histogram\nt_bucket{type=\"a\\\"b\",le=\"0.5\"} 1\nt_bucket{type=\"a\\\"b\",le=\"1\"} 3\n\
             t_bucket{type=\"a\\\"b\",le=\"+Inf\"} 6\nt_sum{type=\"a\\\"b\"} 9.5\nt_count{type=\"a\\\"b\"} 6\n"
        );
    }
}
