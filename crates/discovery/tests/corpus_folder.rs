//! lateend's folder source gives Istio's verdict on every file of Istio's validation corpus
//! (`shared/fixtures/istio/corpus/validation`): a folder holding only that file is accepted
//! or rejected as Istio's webhook would; in a folder holding the whole corpus the rejected
//! files are exactly Istio's rejects and every resource of the accepted files is in force;
//! and a file edited into one Istio rejects keeps its last good version.
//!
//! Run: `cargo test -p lateen-discovery --test corpus_folder -- --nocapture` (about a second).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeSet;
use std::path::Path;

use lateen_discovery::store::FolderStore;
use lateen_test_support::istio_corpus::{self, Case, Verdict};

fn write(dir: &Path, case: &Case) {
    let path = dir.join(&case.name);
    std::fs::write(&path, &case.text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn open(dir: &Path) -> FolderStore {
    FolderStore::open(dir, None).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Keys of the resources lateen applies from an accepted case.
fn applied_keys(case: &Case) -> Vec<lateen_api::ConfigKey> {
    let loaded = lateen_api::load(&case.text, &case.name)
        .unwrap_or_else(|e| panic!("{} is accepted by Istio but not by load: {e}", case.name));
    loaded.resources().map(lateen_api::Resource::key).collect()
}

#[test]
fn each_case_alone_gets_istios_verdict() {
    let mut mismatches = Vec::new();
    for case in istio_corpus::cases() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        write(dir.path(), &case);
        let store = open(dir.path());
        let got = if store.rejected_total() > 0 {
            Verdict::Reject
        } else {
            Verdict::Accept
        };
        println!(
            "{:<8} {:<8} {}/{}",
            case.expected, got, case.folder, case.name
        );
        if got != case.expected {
            mismatches.push(format!(
                "{}/{}: Istio {}s, lateend {}s",
                case.folder, case.name, case.expected, got
            ));
            continue;
        }
        if got == Verdict::Accept {
            let in_force = store.config().resources.len();
            let expected = applied_keys(&case).len();
            if in_force != expected {
                mismatches.push(format!(
                    "{}: {in_force} resources in force, {expected} expected",
                    case.name
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn the_whole_corpus_in_one_folder_keeps_every_accepted_file_in_force() {
    let cases = istio_corpus::cases();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    for case in &cases {
        write(dir.path(), case);
    }
    let store = open(dir.path());
    let rejects = cases
        .iter()
        .filter(|c| c.expected == Verdict::Reject)
        .count();
    assert_eq!(store.rejected_total(), rejects as u64, "rejected files");
    let in_force: BTreeSet<_> = store.config().resources.iter().map(|r| r.key()).collect();
    for case in cases.iter().filter(|c| c.expected == Verdict::Accept) {
        for key in applied_keys(case) {
            assert!(
                in_force.contains(&key),
                "{key} of {} not in force",
                case.name
            );
        }
    }
}

#[test]
fn a_file_edited_into_an_istio_reject_keeps_its_last_good_version() {
    let cases = istio_corpus::cases();
    let find = |name: &str| {
        cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} missing from the corpus"))
    };
    let good = find("crd-destinationrule--warmup-duration.yaml");
    let bad = find("crd-destinationrule--warmup-negative-aggression.yaml");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("rule.yaml");
    std::fs::write(&path, &good.text).unwrap_or_else(|e| panic!("{e}"));
    let mut store = open(dir.path());
    let before = store.config().resources;
    assert_eq!(before.len(), 1, "the good DestinationRule is in force");
    std::fs::write(&path, &bad.text).unwrap_or_else(|e| panic!("{e}"));
    let outcome = store.scan();
    assert_eq!(outcome.rejected_files, 1, "the edit is rejected");
    assert!(!outcome.changed, "nothing changes in force");
    assert_eq!(store.config().resources, before, "last good version kept");
}
