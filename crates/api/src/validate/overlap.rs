//! Istio's prefix-overlap check of HTTP matches: a match whose URI prefix extends an earlier
//! match's prefix, with the same port and the other conditions equal or narrower, is never
//! used (the earlier one takes its requests). Reported as Istio words it, which `analyze`
//! turns into IST0131.

use std::collections::BTreeMap;

use super::Issues;
use super::unreachable::{UNUSED_RULE_PREFIX, label};
use crate::error::FieldPath;
use crate::networking::{HttpMatchRequest, HttpRoute, StringMatch};

/// What Istio compares of a match with a URI prefix; values as `exact:v` or `prefix:v`.
struct PrefixMatch {
    rule: usize,
    index: usize,
    rule_label: String,
    match_label: String,
    prefix: String,
    port: u32,
    method: String,
    authority: String,
    headers: BTreeMap<String, String>,
    query_params: BTreeMap<String, String>,
    without_headers: BTreeMap<String, String>,
}

fn exact_or_prefix(m: Option<&StringMatch>) -> String {
    match m {
        Some(StringMatch { exact: Some(e), .. }) if !e.is_empty() => format!("exact:{e}"),
        Some(StringMatch {
            prefix: Some(p), ..
        }) if !p.is_empty() => format!("prefix:{p}"),
        _ => String::new(),
    }
}

fn as_map(map: &BTreeMap<String, StringMatch>) -> BTreeMap<String, String> {
    map.iter()
        .map(|(k, v)| (k.clone(), exact_or_prefix(Some(v))))
        .collect()
}

fn prefix_match(
    route: &HttpRoute,
    rule: usize,
    m: &HttpMatchRequest,
    index: usize,
) -> Option<PrefixMatch> {
    let prefix = m.uri.as_ref()?.prefix.clone().filter(|p| !p.is_empty())?;
    let mut method = exact_or_prefix(m.method.as_ref());
    if method.is_empty() {
        // Istio: no method means GET.
        method = "exact:GET".to_string();
    }
    Some(PrefixMatch {
        rule,
        index,
        rule_label: label(route.name.as_deref(), rule),
        match_label: label(m.name.as_deref(), index),
        prefix,
        port: m.port.unwrap_or(0),
        method,
        authority: exact_or_prefix(m.authority.as_ref()),
        headers: as_map(&m.headers),
        query_params: as_map(&m.query_params),
        without_headers: as_map(&m.without_headers),
    })
}

/// Each value of `a` is in `b` equal, or `a`'s starts with `b`'s (Istio's comparison).
fn maps_covered(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> bool {
    a.len() == b.len()
        && a.iter().all(|(k, v)| {
            b.get(k)
                .is_some_and(|w| v == w || v.starts_with(w.as_str()))
        })
}

/// Does the earlier match `a` take every request of the later match `b`? (Istio's
/// `coveredValidation`.)
fn covered(a: &PrefixMatch, b: &PrefixMatch) -> bool {
    let narrower = |x: &str, y: &str| x == y || x.starts_with(y);
    b.prefix.starts_with(&a.prefix)
        && a.port == b.port
        && narrower(&a.method, &b.method)
        && narrower(&a.authority, &b.authority)
        && maps_covered(&a.headers, &b.headers)
        && maps_covered(&a.query_params, &b.query_params)
        && maps_covered(&a.without_headers, &b.without_headers)
}

/// `fresh`: the (rule, match) indexes not already reported as repeated.
pub(super) fn check_prefix_overlaps(
    issues: &mut Issues,
    path: &FieldPath,
    routes: &[HttpRoute],
    fresh: &[(usize, usize)],
) {
    let matches: Vec<PrefixMatch> = fresh
        .iter()
        .filter_map(|&(r, m)| {
            let route = routes.get(r)?;
            prefix_match(route, r, route.matches.get(m)?, m)
        })
        .collect();
    for (i, a) in matches.iter().enumerate() {
        for b in &matches[i + 1..] {
            if a.prefix == b.prefix || !covered(a, b) {
                continue;
            }
            issues.warn(
                &path.index(b.rule).field("match").index(b.index),
                format!(
                    "{UNUSED_RULE_PREFIX}{} match {} of prefix {} is not used (duplicate/overlapping match in rule {} of prefix {} on {})",
                    b.rule_label, b.match_label, b.prefix, a.match_label, a.prefix, a.rule_label
                ),
            );
        }
    }
}
