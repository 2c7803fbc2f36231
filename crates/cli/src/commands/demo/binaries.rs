//! The programs the demo runs: `lateend`, `lateen-proxy` and `lateen-sample-app`, found
//! beside the `lateen` binary; and, for the namespace mode, a copy of `lateen-proxy` in a
//! fresh world-readable folder, because the sidecar runs as UID 1337 and the build folder
//! (often under /root) may not be readable by that user.

use anyhow::Context;
use std::path::{Path, PathBuf};

use super::state::{BIN_DIR_PREFIX, Item, Record};

/// The folder holding the binaries, after checking each one is there.
pub fn folder() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the lateen binary")?;
    let folder = exe
        .parent()
        .map(PathBuf::from)
        .context("cannot find the lateen binary's folder")?;
    for binary in ["lateend", "lateen-proxy", "lateen-sample-app"] {
        anyhow::ensure!(
            folder.join(binary).exists(),
            "{} is missing: build it with `cargo build --release` (the demo runs the binaries beside `lateen`)",
            folder.join(binary).display()
        );
    }
    Ok(folder)
}

/// Copies `lateen-proxy` into a new 0755 folder in the temporary directory. The folder is
/// created fresh (never reused, so nobody can have planted a binary in it) and recorded for
/// removal.
pub fn proxy_for_uid_1337(folder: &Path, record: &mut Record) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("{BIN_DIR_PREFIX}{}", std::process::id()));
    record.add(Item::Dir(dir.clone()))?;
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} readable", dir.display()))?;
    let target = dir.join("lateen-proxy");
    std::fs::copy(folder.join("lateen-proxy"), &target)
        .with_context(|| format!("copying lateen-proxy to {}", dir.display()))?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", target.display()))?;
    Ok(target)
}
