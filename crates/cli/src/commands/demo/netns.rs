//! Thin wrappers over `ip` for the demo's network namespaces: run `ip`, run a command inside
//! a namespace, list the demo's namespaces and the processes in one, and remove one with
//! everything in it. Every namespace the demo makes is named `lateen-demo-...`; nothing here
//! touches a namespace without that prefix.

use anyhow::Context;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The prefix of every namespace (and host link) the demo creates.
pub const PREFIX: &str = "lateen-demo-";

/// Runs `ip ARGS`; the error carries ip's own message.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running `ip`")?;
    anyhow::ensure!(
        output.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Runs `ARGS` inside namespace `ns` (as root), for one-off set-up commands.
pub fn exec(ns: &str, args: &[&str]) -> anyhow::Result<()> {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    ip(&full)
}

/// The demo's namespaces that exist now.
pub fn list() -> Vec<String> {
    let Ok(output) = Command::new("ip")
        .args(["netns", "list"])
        .stdin(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(PREFIX))
        .map(str::to_string)
        .collect()
}

/// The processes running in namespace `ns`.
pub fn pids(ns: &str) -> Vec<u32> {
    let Ok(output) = Command::new("ip")
        .args(["netns", "pids", ns])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

pub fn exists(ns: &str) -> bool {
    std::path::Path::new("/run/netns").join(ns).exists() || list().iter().any(|name| name == ns)
}

/// Ends every process in `ns` (SIGTERM, then SIGKILL after 2 s), deletes the namespace
/// (which also deletes its interfaces and their veth peers) and its /etc/netns folder.
/// Names without the demo's prefix are refused.
pub fn remove(ns: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        ns.starts_with(PREFIX) && !ns.contains('/'),
        "refusing to remove namespace {ns:?}: not one of the demo's"
    );
    let pids = pids(ns);
    if !pids.is_empty() {
        super::processes::end_all(&pids, Duration::from_secs(2));
    }
    if exists(ns) {
        ip(&["netns", "del", ns])?;
    }
    let etc = etc_dir(ns);
    if etc.exists() {
        std::fs::remove_dir_all(&etc).with_context(|| format!("removing {}", etc.display()))?;
    }
    Ok(())
}

/// `/etc/netns/NS`: `ip netns exec` bind-mounts its files over /etc (the pod's hosts file).
pub fn etc_dir(ns: &str) -> std::path::PathBuf {
    std::path::Path::new("/etc/netns").join(ns)
}

/// Whether host link `name` exists.
pub fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// The parent of process `pid` (from /proc/PID/stat: the field after the command name).
pub fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}
