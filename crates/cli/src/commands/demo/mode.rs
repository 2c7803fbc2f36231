//! Which way the demo runs: in network namespaces with iptables capture (Istio's usual
//! REDIRECT interception, like pods on a node) when it can, otherwise on loopback addresses
//! with explicit listeners (interception NONE). `--mode auto` decides from the platform, the
//! effective user and the tools on PATH, and says why capture is off.

use std::path::Path;

/// The user's choice (`--mode`).
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum ModeArg {
    /// Network namespaces when root on Linux with `ip`, `iptables-restore` and `setpriv`;
    /// loopback otherwise.
    #[default]
    Auto,
    /// Network namespaces with capture; fails if they cannot be made.
    Netns,
    /// Loopback addresses and explicit listeners; needs no privileges.
    Loopback,
}

/// How this run places its workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One network namespace per workload, Istio's capture rules, sidecars as UID 1337.
    Netns,
    /// One loopback address per workload, interception NONE.
    Loopback,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Netns => "netns",
            Mode::Loopback => "loopback",
        }
    }
}

/// The tools the namespace mode runs: `ip` for namespaces and links, `iptables-restore` for
/// `lateen-proxy capture`, `setpriv` to start the sidecar as the proxy's UID.
const TOOLS: [&str; 3] = ["ip", "iptables-restore", "setpriv"];

/// The mode to run in and, when auto-detection fell back to loopback, the reason.
pub fn choose(arg: ModeArg) -> anyhow::Result<(Mode, Option<String>)> {
    match arg {
        ModeArg::Loopback => Ok((Mode::Loopback, None)),
        ModeArg::Netns => match missing_requirement() {
            None => Ok((Mode::Netns, None)),
            Some(why) => anyhow::bail!(
                "--mode netns needs root on Linux with {}: {why}",
                TOOLS.join(", ")
            ),
        },
        ModeArg::Auto => match missing_requirement() {
            None => Ok((Mode::Netns, None)),
            Some(why) => Ok((Mode::Loopback, Some(why))),
        },
    }
}

/// What stops the namespace mode here, if anything.
fn missing_requirement() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("network namespaces need Linux".to_string());
    }
    match effective_uid() {
        Some(0) => {}
        Some(uid) => return Some(format!("not running as root (effective UID {uid})")),
        None => return Some("cannot read the effective UID from /proc/self/status".to_string()),
    }
    TOOLS
        .iter()
        .find(|tool| !on_path(tool))
        .map(|tool| format!("`{tool}` is not on PATH"))
}

/// The effective UID, from the second field of `Uid:` in /proc/self/status (no libc needed).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn on_path(tool: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(tool)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
