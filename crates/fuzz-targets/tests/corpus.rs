//! Every input under `fuzz/corpus/TARGET/` (the seeds and any crash `cargo fuzz` found) run
//! through its target: none may panic. Cheap (well under a second of work); the fuzzing
//! itself is `scripts/fuzz.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn every_target_has_a_corpus_and_survives_it() {
    let mut problems = Vec::new();
    for (name, target) in lateen_fuzz_targets::TARGETS {
        let dir = corpus_dir(name);
        let mut inputs: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(err) => {
                problems.push(format!("{name}: no corpus at {}: {err}", dir.display()));
                continue;
            }
        };
        inputs.sort();
        if inputs.is_empty() {
            problems.push(format!("{name}: corpus {} is empty", dir.display()));
        }
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                problems.push(format!("{name}: panicked on {}", input.display()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/fuzz_targets");
    for (name, _) in lateen_fuzz_targets::TARGETS {
        let file = dir.join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            text.contains(&format!("lateen_fuzz_targets::{name}")),
            "{} must call lateen_fuzz_targets::{name}",
            file.display()
        );
    }
}
