//! Checking manifests with `kubernetes-validate --strict` against two Kubernetes versions;
//! shared by the CLI's tests (`#[path]` include).

use std::path::PathBuf;
use std::process::Command;

/// Kubernetes versions the manifests must validate against.
pub const KUBERNETES_VERSIONS: &[&str] = &["1.33.0", "1.34.0"];

fn kubernetes_validate() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin");
    on_path
        .chain(std::iter::once(venv))
        .map(|dir| dir.join("kubernetes-validate"))
        .find(|candidate| candidate.is_file())
}

/// Runs kubernetes-validate on `files`; custom resources (which it has no schema for) are
/// reported as warnings, so any warning or error line fails: we render only built-in kinds.
/// Without the tool: a failure under LATEEN_REQUIRE_TOOLS, else a notice.
pub fn validate(files: &[PathBuf]) {
    let Some(tool) = kubernetes_validate() else {
        if std::env::var_os("LATEEN_REQUIRE_TOOLS").is_some_and(|v| !v.is_empty()) {
            panic!("kubernetes-validate is required (LATEEN_REQUIRE_TOOLS is set) but not found");
        }
        eprintln!("NOTICE: kubernetes-validate not found; skipping schema validation of manifests");
        return;
    };
    for version in KUBERNETES_VERSIONS {
        let output = Command::new(&tool)
            .args(["--strict", "--quiet", "-k", version])
            .args(files)
            .output()
            .expect("running kubernetes-validate");
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "kubernetes-validate {version} failed:\n{report}"
        );
        let problems: Vec<&str> = report
            .lines()
            .filter(|line| line.starts_with("ERROR") || line.starts_with("WARN"))
            .collect();
        assert!(
            problems.is_empty(),
            "kubernetes-validate {version}:\n{}",
            problems.join("\n")
        );
    }
}
