//! Istio's validation corpus (`shared/fixtures/istio/corpus/validation`): every case with
//! Istio's verdict, for the tests that hold lateen's verdicts to Istio's (`lateen-api`'s
//! `load`, `lateen analyze`, lateend's folder source).

use std::path::{Path, PathBuf};

/// Istio's verdict on a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Accept => "accept",
            Verdict::Reject => "reject",
        })
    }
}

/// One file of the corpus.
#[derive(Clone, Debug)]
pub struct Case {
    /// `valid`, `invalid` or `valid-samples`.
    pub folder: &'static str,
    pub path: PathBuf,
    /// The file name (unique across the folders).
    pub name: String,
    pub text: String,
    pub expected: Verdict,
    /// Istio's reason for a rejection (the `# istio rejects:` line).
    pub reason: Option<String>,
}

/// The Istio fixtures shared by every worktree (`../shared/fixtures/istio`).
pub fn istio_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/istio")
}

/// The validation corpus folder.
pub fn validation_dir() -> PathBuf {
    istio_fixtures().join("corpus/validation")
}

/// Folders of the corpus with Istio's verdict on their files. `valid-samples` are Istio's
/// published samples (applied in istio.io tasks, so accepted by the webhook).
pub const FOLDERS: &[(&str, Verdict)] = &[
    ("valid", Verdict::Accept),
    ("invalid", Verdict::Reject),
    ("valid-samples", Verdict::Accept),
];

/// Every case of the corpus, folder by folder, in name order. Panics when the corpus is
/// missing: it is part of the repository's fixtures, not an optional tool.
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for &(folder, expected) in FOLDERS {
        let dir = validation_dir().join(folder);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("reading the corpus folder {}: {e}", dir.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json"))
            .collect();
        paths.sort();
        for path in paths {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let reason = text
                .lines()
                .find_map(|l| l.strip_prefix("# istio rejects: "))
                .map(str::to_owned);
            out.push(Case {
                folder,
                path,
                name,
                text,
                expected,
                reason,
            });
        }
    }
    out
}
