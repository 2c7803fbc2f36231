//! Helpers the integration tests of several crates share: finding the real Envoy the test
//! command installs (and failing, not skipping, under CI when it is missing), free ports, and
//! network namespaces for pod-like processes ([`netns`]) and a kubelet's part in starting a
//! Pod's container as a local process ([`pod`]).
//! A dev-dependency only; nothing here runs outside tests.
//!
//! Owns: test plumbing. Must not touch: any product code.
#![forbid(unsafe_code)]

pub mod netns;
pub mod pod;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// Envoy on PATH, else in the workspace's `.venv` (where `scripts/test.sh` installs it).
pub fn find_envoy() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/envoy");
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("envoy"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| venv.is_file().then_some(venv))
}

/// [`find_envoy`], or `None` to skip `test` with a notice; under CI (`LATEEN_REQUIRE_TOOLS`
/// set and non-empty) a missing Envoy fails the test instead.
pub fn envoy_or_skip(test: &str) -> Option<PathBuf> {
    let found = find_envoy();
    if found.is_none() {
        if std::env::var_os("LATEEN_REQUIRE_TOOLS").is_some_and(|v| !v.is_empty()) {
            panic!("envoy not found on PATH or in .venv/bin (run scripts/test.sh)");
        }
        eprintln!("NOTICE: envoy not found; skipping {test}");
    }
    found
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port on 127.0.0.1")
}
