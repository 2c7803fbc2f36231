//! Istio's analyzer test cases (`analyze/EXPECTED.md` Part A, `analyze/expected.json`) for the
//! analyzers lateen has: `lateen analyze -A --analyzer NAME FILES -o json` must report exactly
//! Istio's (code, resource) pairs, restricted to the codes lateen implements for that analyzer
//! (the rest are listed in `docs/analyze.md`). A table is printed; any difference fails.
//!
//! Run: `cargo test -p lateen-cli --test analyze_cases -- --nocapture` (about a second).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::process::Command;

use lateen_test_support::istio_corpus;

/// Istio's analyzers lateen has, with the message codes lateen reports for each.
const IMPLEMENTED: &[(&str, &[&str])] = &[
    ("virtualservice.DestinationRuleAnalyzer", &["IST0101"]),
    ("gateway.CertificateAnalyzer", &["IST0138"]),
    (
        "serviceentry.ConflictingServiceEntryProtocolAnalyzer",
        &["IST0177"],
    ),
    (
        "virtualservice.ConflictingMeshGatewayHostsAnalyzer",
        &["IST0109"],
    ),
    (
        "virtualservice.GatewayAnalyzer",
        &["IST0101", "IST0132", "IST0165"],
    ),
    (
        "destinationrule.CaCertificateAnalyzer",
        &["IST0128", "IST0129"],
    ),
    (
        "schema.ValidationAnalyzer.VirtualService",
        &["IST0106", "IST0130", "IST0131", "IST0133"],
    ),
];

/// Sorted `code resource` lines.
type Pairs = Vec<String>;

/// lateen's messages of `analyzer` with one of `codes`.
fn run(analyzer: &str, codes: &[&str], files: &[String]) -> Pairs {
    let out = Command::new(env!("CARGO_BIN_EXE_lateen"))
        .args(["analyze", "-A", "-o", "json", "--analyzer", analyzer])
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("run lateen: {e}"));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{files:?}: not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut pairs: Pairs = list
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|m| codes.contains(&m["code"].as_str().unwrap_or("")))
        .map(|m| {
            format!(
                "{} {}",
                m["code"].as_str().unwrap_or(""),
                m["origin"].as_str().unwrap_or("")
            )
        })
        .collect();
    pairs.sort();
    pairs
}

/// Istio's test names a resource without a namespace `Kind name`; istioctl (and lateen) put
/// it in `default`: `Kind default/name`.
fn origin_in_default(origin: &str) -> String {
    match origin.split_once(' ') {
        Some((kind, name)) if !name.contains('/') => format!("{kind} default/{name}"),
        _ => origin.to_string(),
    }
}

#[test]
fn istios_analyzer_cases_give_istios_messages() {
    let path = istio_corpus::istio_fixtures().join("corpus/analyze/expected.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let expected: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let codes: BTreeMap<&str, &[&str]> = IMPLEMENTED.iter().copied().collect();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in expected["cases"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        let analyzer = case["analyzer"].as_str().unwrap_or("");
        let Some(our_codes) = codes.get(analyzer) else {
            continue;
        };
        ran += 1;
        let files: Vec<String> = case["files"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|f| f.as_str())
            .map(|f| {
                istio_corpus::istio_fixtures()
                    .join("corpus")
                    .join(f)
                    .display()
                    .to_string()
            })
            .collect();
        let mut want: Pairs = case["expected"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|m| our_codes.contains(&m["code"].as_str().unwrap_or("")))
            .map(|m| {
                format!(
                    "{} {}",
                    m["code"].as_str().unwrap_or(""),
                    origin_in_default(m["origin"].as_str().unwrap_or(""))
                )
            })
            .collect();
        want.sort();
        let got = run(analyzer, our_codes, &files);
        let name = case["test"].as_str().unwrap_or("?");
        let mark = if got == want { "ok" } else { "DIFFERS" };
        println!("{mark:<8} {name:<70} {analyzer}");
        if got != want {
            failures.push(format!("{name}: want {want:?}\n  got {got:?}"));
        }
    }
    assert!(ran >= 10, "only {ran} cases ran");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
