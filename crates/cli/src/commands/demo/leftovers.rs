//! What an earlier namespace-mode run left behind when it was killed and its record is not
//! in this run's folder: processes in the demo's namespaces, the namespaces themselves, the
//! host link, proxy-binary folders, an orphaned lateend. A live `lateen demo` (the parent of
//! those processes is still running) is never touched: this run refuses to start instead.

use anyhow::Context;
use std::time::Duration;

use super::netns::{self, PREFIX};
use super::network::{HOST_LINK, HUB};

/// Refuses to go on while another live `lateen demo` owns namespaces (its processes there are
/// children of a running `lateen demo`, not orphans of a killed one).
pub fn ensure_no_other_demo() -> anyhow::Result<()> {
    let me = std::process::id();
    for pid in lateends_on_demo_address() {
        if let Some(parent) =
            netns::parent(pid).filter(|parent| *parent != me && is_live_demo(*parent))
        {
            anyhow::bail!(
                "another `lateen demo` (pid {parent}) is running with network namespaces; stop it first (Ctrl-C in its terminal, or `kill {parent}`)"
            );
        }
    }
    for ns in netns::list() {
        for pid in netns::pids(&ns) {
            let Some(parent) = netns::parent(pid) else {
                continue;
            };
            if parent != me && is_live_demo(parent) {
                anyhow::bail!(
                    "another `lateen demo` (pid {parent}) is running in network namespace {ns}; stop it first (Ctrl-C in its terminal, or `kill {parent}`)"
                );
            }
        }
    }
    Ok(())
}

fn is_live_demo(pid: u32) -> bool {
    let args = arguments(pid);
    args.first()
        .is_some_and(|program| program.ends_with("lateen"))
        && args.iter().any(|arg| arg == "demo")
}

/// A process's command line, empty if it is gone.
fn arguments(pid: u32) -> Vec<String> {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return Vec::new();
    };
    cmdline
        .split(|byte| *byte == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// lateend processes serving the namespace mode's xDS address.
fn lateends_on_demo_address() -> Vec<u32> {
    let xds = super::mesh::xds_address(super::mode::Mode::Netns);
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let args = arguments(*pid);
            args.first()
                .is_some_and(|program| program.ends_with("lateend"))
                && args
                    .windows(2)
                    .any(|pair| pair[0] == "--xds-address" && pair[1] == xds)
        })
        .collect()
}

/// Proxy-binary folders (`lateen-demo-bin-PID`) whose demo PID is not running.
fn sweep_bin_dirs() -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(owner) = name
            .strip_prefix(super::state::BIN_DIR_PREFIX)
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if owner != std::process::id() && !is_live_demo(owner) {
            std::fs::remove_dir_all(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Removes what a killed run left that no record of this folder names (the run used another
/// folder, or it was deleted), since it would clash with this run: the demo's namespaces,
/// host link and proxy-binary folders, and an orphaned lateend still holding the demo's xDS
/// address.
pub fn sweep_unrecorded() -> anyhow::Result<()> {
    // ensure_no_other_demo ran first: none of these belongs to a live demo.
    let orphans: Vec<u32> = lateends_on_demo_address()
        .into_iter()
        .filter(|pid| netns::parent(*pid) != Some(std::process::id()))
        .collect();
    if !orphans.is_empty() {
        println!(
            "ending lateend left by an earlier demo run (pid {})",
            orphans
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        super::processes::end_all(&orphans, Duration::from_secs(2));
    }
    sweep_bin_dirs()?;
    let leftovers = netns::list();
    if !leftovers.is_empty() {
        println!(
            "removing network namespaces left by an earlier demo run: {}",
            leftovers.join(", ")
        );
    }
    // Pods before the hub, so no veth peer is left dangling mid-way.
    for ns in leftovers
        .iter()
        .filter(|ns| *ns != HUB)
        .chain(leftovers.iter().filter(|ns| *ns == HUB))
    {
        netns::remove(ns)?;
    }
    // Hosts files of namespaces that are gone already.
    if let Ok(entries) = std::fs::read_dir("/etc/netns") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(PREFIX) {
                std::fs::remove_dir_all(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
            }
        }
    }
    if netns::link_exists(HOST_LINK) {
        netns::ip(&["link", "del", HOST_LINK])?;
    }
    Ok(())
}
