//! Command-line tools a test drives (curl, h2load, …): found on `PATH`, or the test is skipped
//! with a notice, except under CI (`LATEEN_REQUIRE_TOOLS`), where a missing tool fails it.

use std::path::PathBuf;

/// `program` on `PATH`, if it is there.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// [`find_on_path`], or `None` to skip `test` with a notice; under CI (`LATEEN_REQUIRE_TOOLS`
/// set and non-empty) a missing tool fails the test instead, as [`crate::envoy_or_skip`].
pub fn tool_or_skip(program: &str, test: &str) -> Option<PathBuf> {
    let found = find_on_path(program);
    if found.is_none() {
        if crate::tools_required() {
            panic!("{program} not found on PATH (run scripts/install-test-deps.sh)");
        }
        eprintln!("NOTICE: {program} not found; skipping {test}");
    }
    found
}
