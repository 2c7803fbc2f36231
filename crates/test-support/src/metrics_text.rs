//! Reading Prometheus text exposition (a proxy's `/stats/prometheus`) in tests.

/// The value of the first `name{...}` line containing every one of `parts` (label pairs
/// such as `reporter="destination"`), if any.
pub fn sample(metrics: &str, name: &str, parts: &[&str]) -> Option<f64> {
    matching(metrics, name, parts)
        .next()
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// The sum of every `name{...}` line containing all of `parts` (0 when none): a count over
/// the label sets that differ in labels the caller does not name.
pub fn total(metrics: &str, name: &str, parts: &[&str]) -> f64 {
    matching(metrics, name, parts)
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The `name{...}` lines containing every one of `parts`.
fn matching<'a>(
    metrics: &'a str,
    name: &'a str,
    parts: &'a [&'a str],
) -> impl Iterator<Item = &'a str> + 'a {
    metrics
        .lines()
        .filter(move |line| line.starts_with(name) && line[name.len()..].starts_with('{'))
        .filter(move |line| parts.iter().all(|part| line.contains(part)))
}
