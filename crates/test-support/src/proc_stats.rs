//! What a process holds, read from Linux's `/proc`: its open descriptors and resident memory,
//! for tests that check a long run does not leak (the soak test).

use std::path::Path;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Entries of `/proc/PID/fd`.
    pub fds: usize,
    /// `VmRSS` of `/proc/PID/status`, in bytes.
    pub rss: u64,
}

/// The process's descriptors and resident memory now, or `None` when it is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let dir = Path::new("/proc").join(pid.to_string());
    let fds = std::fs::read_dir(dir.join("fd")).ok()?.count();
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(Usage {
        fds,
        rss: rss_kib * 1024,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let own = super::usage(std::process::id()).expect("own /proc entry");
        assert!(own.fds >= 3, "{own:?}");
        assert!(own.rss > 1024 * 1024, "{own:?}");
    }
}
