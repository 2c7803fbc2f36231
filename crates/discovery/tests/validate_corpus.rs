//! `/validate`'s verdicts on Istio's own validation corpus (`shared/fixtures/istio/corpus/
//! validation`, Istio's verdicts): every resource Istio accepts is admitted, every resource it
//! rejects is refused. The verdicts are `lateen-api`'s, the folder source's and `analyze`'s
//! too (`crates/api/tests/corpus.rs`, `corpus_folder.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use lateen_discovery::admission::IstioValidator;
use lateen_inject::webhook::admission::parse_request;
use lateen_inject::webhook::{ConfigValidator, Verdict};
use serde_json::{Value, json};

fn corpus() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/istio/corpus/validation")
}

/// Cases about the YAML text itself, which never reach a webhook as such: a duplicate key (the
/// API server refuses the request body), and `001:db8::`, which Go's YAML reader takes as a
/// string and this test's YAML reader as a mapping (the API server sends JSON).
const NOT_AN_ADMISSION_CASE: &[&str] = &[
    "istioctl-validate--invalid-duplicate-key.yaml",
    "crd-serviceentry--full.yaml",
];

fn verdict_of(object: &Value) -> Verdict {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "corpus",
            "operation": "CREATE",
            "namespace": object["metadata"]["namespace"].as_str().unwrap_or("default"),
            "name": object["metadata"]["name"],
            "kind": {"group": group, "version": version, "kind": object["kind"]},
            "object": object,
        }
    });
    let request = parse_request(&review).unwrap_or_else(|e| panic!("{e:?}"));
    IstioValidator.validate(&request)
}

fn documents(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.extension().is_some_and(|e| e == "json") {
        return vec![serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"))];
    }
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

#[test]
fn istios_verdicts_on_istios_corpus() {
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (folder, accept) in [("valid", true), ("invalid", false)] {
        let mut files: Vec<_> = std::fs::read_dir(corpus().join(folder))
            .unwrap_or_else(|e| panic!("corpus: {e}"))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for path in files {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if NOT_AN_ADMISSION_CASE.contains(&name.as_str()) {
                continue;
            }
            let expect_accept = accept;
            for doc in documents(&path) {
                checked += 1;
                let verdict = verdict_of(&doc);
                let accepted = matches!(verdict, Verdict::Allow { .. });
                if accepted != expect_accept {
                    wrong.push(format!("{folder}/{name}: {verdict:?}"));
                }
            }
        }
    }
    assert!(checked >= 80, "only {checked} documents");
    assert!(
        wrong.is_empty(),
        "verdicts unlike Istio's:\n{}",
        wrong.join("\n")
    );
}

/// Valid Istio resources with fields lateend does not act on yet (source.notTrustDomains,
/// http2KeepAlive, jwtRules[].presence): admitted, with a warning naming the field.
#[test]
fn lateend_warns_about_fields_it_does_not_model() {
    for (file, field) in [
        ("crd-authz--full.yaml", "notTrustDomains"),
        (
            "crd-destinationrule--bookinfo-ratings-http2-ping.yaml",
            "http2KeepAlive",
        ),
        ("crd-reqauth--full.yaml", "presence"),
    ] {
        let doc = &documents(&corpus().join("valid").join(file))[0];
        let Verdict::Allow { warnings } = verdict_of(doc) else {
            panic!("{file} refused")
        };
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(field) && w.contains("not yet acted on")),
            "{file}: {warnings:?}"
        );
    }
}
