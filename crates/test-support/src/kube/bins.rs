//! Where the Kubernetes binaries are: `LATEEN_KUBE_BIN`, else the cache that
//! `scripts/kube-test-bins.sh` fills, asked with `--check` so that a test never starts the
//! nine-minute build itself.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The programs a test cluster runs, all from one folder.
pub(crate) const PROGRAMS: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kubectl",
];

/// The folder holding every program of [`PROGRAMS`], or why there is none.
pub(crate) fn find() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("LATEEN_KUBE_BIN").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        return complete(&dir)
            .map(|()| dir.clone())
            .map_err(|missing| format!("LATEEN_KUBE_BIN={}: no {missing}", dir.display()));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/kube-test-bins.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--check")
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "the Kubernetes test binaries are not built (run `bash scripts/kube-test-bins.sh`, \
             about 9 minutes once, or set LATEEN_KUBE_BIN): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
    complete(&dir)
        .map(|()| dir.clone())
        .map_err(|missing| format!("{}: no {missing}", dir.display()))
}

fn complete(dir: &Path) -> Result<(), &'static str> {
    match PROGRAMS.iter().find(|p| !dir.join(p).is_file()) {
        Some(missing) => Err(missing),
        None => Ok(()),
    }
}
