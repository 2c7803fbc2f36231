//! Istio's verdicts on its own validation corpus (`shared/fixtures/istio/corpus/validation`):
//! `lateen_api::load` — what lateend's folder source, its `/validate` webhook and `lateen
//! analyze` all call — must accept every file Istio accepts and reject every file Istio
//! rejects. A table of verdicts is printed; any mismatch fails the test.
//!
//! Run: `cargo test -p lateen-api --test corpus -- --nocapture` (well under a second).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use lateen_api::{Severity, load};
use lateen_test_support::istio_corpus::{self, Verdict};

#[test]
fn every_corpus_case_gets_istios_verdict() {
    let cases = istio_corpus::cases();
    assert!(cases.len() >= 90, "corpus has only {} cases", cases.len());
    let mut mismatches = Vec::new();
    println!(
        "{:<8} {:<8} {:<72} lateen's first reason",
        "istio", "lateen", "case"
    );
    for case in &cases {
        let source = format!("{}/{}", case.folder, case.name);
        let (got, detail) = match load(&case.text, &source) {
            Ok(loaded) => {
                let warnings: Vec<String> =
                    loaded.warnings.iter().map(ToString::to_string).collect();
                (
                    Verdict::Accept,
                    warnings.first().cloned().unwrap_or_default(),
                )
            }
            Err(errors) => {
                let first = errors
                    .errors
                    .iter()
                    .find(|e| e.severity == Severity::Error)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                (Verdict::Reject, first)
            }
        };
        let mark = if got == case.expected {
            ""
        } else {
            "  <-- MISMATCH"
        };
        println!(
            "{:<8} {:<8} {:<72} {}{mark}",
            case.expected.to_string(),
            got.to_string(),
            source,
            detail.lines().next().unwrap_or("")
        );
        if got != case.expected {
            mismatches.push(format!(
                "{source}: Istio {}s ({}), lateen {}s: {detail}",
                case.expected,
                case.reason.as_deref().unwrap_or("-"),
                got
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from Istio:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}

/// Every field lateen reads without acting on it is accepted with a warning that says so.
#[test]
fn fields_lateen_does_not_act_on_are_named_in_warnings() {
    let cases = istio_corpus::cases();
    for (name, field) in [
        ("crd-authz--full.yaml", "notTrustDomains"),
        (
            "crd-destinationrule--bookinfo-ratings-http2-ping.yaml",
            "http2KeepAlive",
        ),
        ("crd-reqauth--full.yaml", "presence"),
        ("crd-destinationrule--warmup-aggression.yaml", "warmup"),
        ("crd-proxyconfig--full.yaml", "spec"),
    ] {
        let case = cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} missing from the corpus"));
        let loaded = load(&case.text, name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.path.to_string().ends_with(field)
                    && w.message.contains("not yet acted on")),
            "{name}: no warning about {field}: {:?}",
            loaded.warnings
        );
    }
}
