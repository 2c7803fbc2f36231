//! What a process holds, read from Linux's `/proc`: its open descriptors and resident memory,
//! for tests that check a long run does not leak (the soak test), and the CPU time it has
//! used, for tests that check a process waits instead of spinning.

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

/// Clock ticks per second of `/proc/PID/stat`'s times (`USER_HZ`): 100 on every Linux
/// architecture, whatever the kernel's own tick rate.
const USER_HZ: u64 = 100;

/// The CPU time (user and system) the process has used so far, or `None` when it is gone.
pub fn cpu_time(pid: u32) -> Option<std::time::Duration> {
    let stat =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    // Fields 14 and 15, `utime` and `stime`, are the 12th and 13th after it.
    let mut after_name = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let user: u64 = after_name.next()?.parse().ok()?;
    let system: u64 = after_name.next()?.parse().ok()?;
    Some(std::time::Duration::from_millis(
        (user + system) * 1000 / USER_HZ,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let own = super::usage(std::process::id()).expect("own /proc entry");
        assert!(own.fds >= 3, "{own:?}");
        assert!(own.rss > 1024 * 1024, "{own:?}");
    }

    #[test]
    fn reads_this_process_cpu_time_growing_with_work() {
        let before = super::cpu_time(std::process::id()).expect("own /proc stat");
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        let after = super::cpu_time(std::process::id()).expect("own /proc stat");
        assert!(
            after > before,
            "{before:?} then {after:?} after 300 ms of spinning"
        );
    }
}
