//! Rules that can never be used (warnings, as Istio gives them): a rule after one without
//! matches, and matches repeated from an earlier rule. Rules are identified Istio's way: by
//! quoted name when they have one, else `#index`.

use std::collections::HashMap;

/// How the warnings about unused rules and matches start (Istio's wording, which `analyze`
/// turns into IST0130/IST0131).
pub const UNUSED_RULE_PREFIX: &str = "virtualService rule ";

use serde::Serialize;

use super::Issues;
use crate::error::FieldPath;
use crate::networking::{HttpRoute, TcpRoute, TlsRoute};

pub(super) fn check_http_rules(issues: &mut Issues, path: &FieldPath, routes: &[HttpRoute]) {
    let rules: Vec<Rule> = routes
        .iter()
        .map(|r| Rule {
            name: r.name.as_deref(),
            matches: r
                .matches
                .iter()
                .map(|m| {
                    // The match's own name does not change what it matches.
                    let mut unnamed = m.clone();
                    unnamed.name = None;
                    (m.name.as_deref(), as_json(&unnamed))
                })
                .collect(),
        })
        .collect();
    let fresh = report(issues, path, &rules);
    super::overlap::check_prefix_overlaps(issues, path, routes, &fresh);
}

pub(super) fn check_tcp_rules(issues: &mut Issues, path: &FieldPath, routes: &[TcpRoute]) {
    let rules = unnamed_rules(routes.iter().map(|r| r.matches.as_slice()));
    let _ = report(issues, path, &rules);
}

pub(super) fn check_tls_rules(issues: &mut Issues, path: &FieldPath, routes: &[TlsRoute]) {
    let rules = unnamed_rules(routes.iter().map(|r| r.matches.as_slice()));
    let _ = report(issues, path, &rules);
}

/// TCP and TLS rules have no names.
fn unnamed_rules<'a, M: Serialize + 'a>(matches: impl Iterator<Item = &'a [M]>) -> Vec<Rule<'a>> {
    matches
        .map(|list| Rule {
            name: None,
            matches: list.iter().map(|m| (None, as_json(m))).collect(),
        })
        .collect()
}

struct Rule<'a> {
    name: Option<&'a str>,
    /// (match name, canonical JSON of the match).
    matches: Vec<(Option<&'a str>, String)>,
}

fn as_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

pub(super) fn label(name: Option<&str>, index: usize) -> String {
    match name {
        Some(n) if !n.is_empty() => format!("{n:?}"),
        _ => format!("#{index}"),
    }
}

/// Reports unused rules and repeated matches; returns the (rule, match) indexes of the matches
/// seen for the first time, in order (Istio checks those for prefix overlaps).
fn report(issues: &mut Issues, path: &FieldPath, rules: &[Rule]) -> Vec<(usize, usize)> {
    let mut fresh = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut catch_all: Option<usize> = None;
    for (n, rule) in rules.iter().enumerate() {
        let rule_path = path.index(n);
        let rule_label = label(rule.name, n);
        let unused = |issues: &mut Issues, reason: &str| {
            issues.warn(
                &rule_path,
                format!("{UNUSED_RULE_PREFIX}{rule_label} not used ({reason})"),
            );
        };
        if rule.matches.is_empty() {
            if catch_all.is_some() {
                unused(issues, "only the last rule can have no matches");
            }
            catch_all = Some(n);
            continue;
        }
        if catch_all.is_some() {
            unused(issues, "route without matches defined before");
            continue;
        }
        let mut duplicates = 0;
        for (m, (match_name, json)) in rule.matches.iter().enumerate() {
            if let Some(&earlier) = seen.get(json.as_str()) {
                duplicates += 1;
                issues.warn(
                    &rule_path.field("match").index(m),
                    format!(
                        "{UNUSED_RULE_PREFIX}{rule_label} match {} is not used (duplicate/overlapping match in rule {})",
                        label(*match_name, m),
                        label(rules[earlier].name, earlier)
                    ),
                );
            } else {
                seen.insert(json, n);
                fresh.push((n, m));
            }
        }
        if duplicates == rule.matches.len() {
            unused(issues, "all matches used by prior rules");
        }
    }
    fresh
}
