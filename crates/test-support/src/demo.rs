//! What the tests of `lateen demo` share: checking that the binaries the demo starts were
//! built beside `lateen`, and the demo's logs for a failure message.

use std::path::Path;

/// Panics naming the first of lateend, lateen-proxy and lateen-sample-app that is not beside
/// the `lateen` binary at `lateen` (the demo starts them from there).
pub fn assert_binaries_beside(lateen: &Path) {
    let folder = lateen.parent().unwrap_or(Path::new("."));
    for binary in ["lateend", "lateen-proxy", "lateen-sample-app"] {
        assert!(
            folder.join(binary).exists(),
            "{binary} must be built beside lateen (scripts/test.sh runs `cargo build --workspace --bins` first)"
        );
    }
}

/// Every log file in `DIR/logs` of a demo run with `--dir DIR`, each under its path.
pub fn logs(dir: &Path) -> String {
    std::fs::read_dir(dir.join("logs"))
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| {
                    format!(
                        "--- {}\n{}",
                        entry.path().display(),
                        std::fs::read_to_string(entry.path()).unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
