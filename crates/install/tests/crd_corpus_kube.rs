//! Istio's CRD validation corpus against a real kube-apiserver: the CRDs `lateen install`
//! renders are applied, and every resource of `shared/fixtures/istio/corpus/validation` is
//! created (server-side dry run, strict field validation, as `kubectl apply` does by default).
//! The API server's verdict must be Istio's: every `crd-*` file in `invalid/` refused with the
//! reason Istio's own CRD gives, every file in `valid/` and `valid-samples/` and Bookinfo's
//! networking samples accepted; a VirtualService stored as v1 reads back through every served
//! version with Istio's printer columns, and Istio's short names and `istio-io` category
//! resolve. The `istioctl-validate--invalid-*` files are for the validating webhook; what the
//! CRDs alone do with them is printed, and two of them (a duplicate key and an unknown
//! top-level field) must be refused by the API server's strict decoding.
//!
//! Run: `cargo test -p lateen-install --test crd_corpus_kube -- --nocapture` (needs the test
//! cluster binaries of `scripts/kube-test-bins.sh`; skips with a NOTICE without them).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::Output;

use lateen_install::render::crds;
use lateen_test_support::kube::TestCluster;
use serde_json::json;

fn istio_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/istio")
}

/// The folders of resources to create, relative to the Istio fixtures.
const FOLDERS: &[(&str, &str)] = &[
    ("valid", "corpus/validation/valid"),
    ("valid-samples", "corpus/validation/valid-samples"),
    ("bookinfo", "samples/bookinfo/networking"),
    ("invalid", "corpus/validation/invalid"),
];

/// Files refused by the API server's decoding rather than by the schema: strict decoding
/// refuses a repeated mapping key and a field the kind does not have.
const REFUSED_BY_STRICT_DECODING: &[&str] = &[
    "istioctl-validate--invalid-duplicate-key.yaml",
    "istioctl-validate--invalid-unknown-top-level-field.yaml",
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Verdict {
    Accept,
    Reject,
}

struct Case {
    folder: &'static str,
    path: PathBuf,
    /// What the API server must answer, or `None` where only the webhook decides.
    expected: Option<Verdict>,
    /// Text Istio's CRD puts in its refusal (the `# istio rejects:` line of a `crd-*` file).
    reason: Option<String>,
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for &(folder, relative) in FOLDERS {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(istio_fixtures().join(relative))
            .unwrap_or_else(|e| panic!("reading the corpus folder {folder}: {e}"))
            .map(|entry| entry.expect("a corpus entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let name = file_name(&path);
            let text = std::fs::read_to_string(&path).expect("a corpus file");
            let reason = text
                .lines()
                .find_map(|l| l.strip_prefix("# istio rejects: "))
                .map(str::to_owned);
            let expected = match folder {
                "invalid" if name.starts_with("crd-") => Some(Verdict::Reject),
                "invalid" if REFUSED_BY_STRICT_DECODING.contains(&name.as_str()) => {
                    Some(Verdict::Reject)
                }
                "invalid" => None,
                _ => Some(Verdict::Accept),
            };
            let reason = reason.filter(|_| name.starts_with("crd-"));
            cases.push(Case {
                folder,
                path,
                expected,
                reason,
            });
        }
    }
    cases
}

/// The namespaces the corpus puts its objects in (`metadata.namespace`, indented once).
fn corpus_namespaces(cases: &[Case]) -> Vec<String> {
    let mut namespaces: Vec<String> = cases
        .iter()
        .flat_map(|case| {
            std::fs::read_to_string(&case.path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.strip_prefix("  namespace: "))
                .map(|ns| ns.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    namespaces.sort();
    namespaces.dedup();
    namespaces
}

/// `ok`, or `webhook` where the API server's verdict is not Istio's to compare with; an error
/// says how the verdict differs from Istio's.
fn judge(case: &Case, got: Verdict, message: &str) -> Result<&'static str, String> {
    let Some(expected) = case.expected else {
        return Ok("webhook");
    };
    if expected != got {
        return Err(format!("expected {expected:?}, got {got:?}"));
    }
    match &case.reason {
        Some(reason) if !message.contains(reason.as_str()) => {
            Err(format!("refused, but without Istio's reason {reason:?}"))
        }
        _ => Ok("ok"),
    }
}

fn text(output: &Output) -> String {
    let mut all = String::from_utf8_lossy(&output.stdout).into_owned();
    all.push_str(&String::from_utf8_lossy(&output.stderr));
    all.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn must(cluster: &TestCluster, args: &[&str], stdin: Option<&[u8]>) -> String {
    let output = cluster.kubectl(args, stdin);
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        text(&output)
    );
    text(&output)
}

#[test]
fn the_api_server_gives_istios_verdict_on_every_corpus_resource() {
    let Some(cluster) = TestCluster::start_or_skip("crd_corpus_kube") else {
        return;
    };
    let list = json!({"apiVersion": "v1", "kind": "List", "items": crds::all()});
    let bytes = serde_json::to_vec(&list).expect("CRDs as JSON");
    must(
        &cluster,
        &["apply", "--server-side", "-f", "-"],
        Some(&bytes),
    );
    must(
        &cluster,
        &[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ],
        None,
    );

    let cases = cases();
    for namespace in corpus_namespaces(&cases) {
        if namespace != "default" {
            must(&cluster, &["create", "namespace", &namespace], None);
        }
    }

    let mut table = Vec::new();
    let mut mismatches = Vec::new();
    // (folder, crd-* or not) -> (as Istio's, checked)
    let mut tally = std::collections::BTreeMap::<(&str, bool), (usize, usize)>::new();
    for case in &cases {
        let path = case.path.to_string_lossy();
        let output = cluster.kubectl(
            &[
                "create",
                "--dry-run=server",
                "--validate=strict",
                "-f",
                &path,
            ],
            None,
        );
        let got = if output.status.success() {
            Verdict::Accept
        } else {
            Verdict::Reject
        };
        let message = text(&output);
        let name = file_name(&case.path);
        let mark = match judge(case, got, &message) {
            Ok(mark) => mark,
            Err(problem) => {
                mismatches.push(format!("{}/{name}: {problem}: {message}", case.folder));
                "MISMATCH"
            }
        };
        if case.expected.is_some() {
            let entry = tally
                .entry((case.folder, name.starts_with("crd-")))
                .or_default();
            entry.0 += usize::from(mark == "ok");
            entry.1 += 1;
        }
        let shown: String = message.chars().take(140).collect();
        table.push(format!(
            "{mark:8} {:13} {name:70} {got:?}  {shown}",
            case.folder
        ));
    }
    println!("verdicts of the API server with Lateen's CRDs:");
    for line in &table {
        println!("{line}");
    }
    for ((folder, crd), (agreed, total)) in &tally {
        let files = if *crd { "crd-*" } else { "other" };
        println!("{folder}/{files}: {agreed}/{total} as Istio");
    }
    assert!(
        cases.iter().filter(|c| c.expected.is_some()).count() >= 80,
        "the corpus shrank"
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    every_served_version_reads_a_stored_object(&cluster);
    short_names_and_categories_resolve(&cluster);
}

/// `kubectl get` knows Istio's short names and the `istio-io` category.
fn short_names_and_categories_resolve(cluster: &TestCluster) {
    let short = "vs,dr,gw,se,we,wg,sidecars,envoyfilters,proxyconfigs,pa,ap,ra,telemetry,iop";
    must(cluster, &["get", short, "-A"], None);
    let shown = must(cluster, &["get", "istio-io", "-A"], None);
    assert!(
        shown.contains("virtualservice.networking.istio.io/reviews"),
        "the istio-io category misses the VirtualService: {shown}"
    );
}

/// A VirtualService written as v1 (the storage version) reads back through v1alpha3 and
/// v1beta1, and `kubectl get` shows Istio's printer columns.
fn every_served_version_reads_a_stored_object(cluster: &TestCluster) {
    let vs = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {
            "hosts": ["reviews"],
            "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}],
        },
    });
    let bytes = serde_json::to_vec(&vs).expect("a VirtualService as JSON");
    must(cluster, &["create", "-f", "-"], Some(&bytes));
    for version in ["v1", "v1alpha3", "v1beta1"] {
        let resource = format!("virtualservices.{version}.networking.istio.io");
        let shown = must(
            cluster,
            &["get", &resource, "reviews", "-n", "default"],
            None,
        );
        for column in ["NAME", "GATEWAYS", "HOSTS", "AGE", "[\"reviews\"]"] {
            assert!(shown.contains(column), "{resource}: no {column} in {shown}");
        }
    }
}
