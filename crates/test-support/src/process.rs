//! Processes a test starts and must not leave behind: [`ChildGuard`] ends one child when it
//! is dropped (a failed assertion unwinds through it), at once or, for a process that cleans
//! up after itself (`lateen demo`), with SIGTERM and a grace period first; [`Children`] holds
//! several. The one place tests end their processes, so none of them writes its own `Drop`.

use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// How often a stopping process is checked for having exited.
const EXIT_POLL: Duration = Duration::from_millis(100);

/// A child process killed (SIGKILL) and reaped when dropped, or first asked to stop (SIGTERM)
/// and given [`ChildGuard::with_grace`]'s time. Derefs to the [`Child`].
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
    grace: Option<Duration>,
}

impl ChildGuard {
    /// Guards `child`: SIGKILL on drop.
    pub fn new(child: Child) -> ChildGuard {
        ChildGuard { child, grace: None }
    }

    /// Guards `child`, which tidies up on SIGTERM: on drop it gets SIGTERM and up to `grace`
    /// to exit before SIGKILL.
    pub fn with_grace(child: Child, grace: Duration) -> ChildGuard {
        ChildGuard {
            child,
            grace: Some(grace),
        }
    }

    /// Spawns `command` and guards the child.
    pub fn spawn(command: &mut Command) -> std::io::Result<ChildGuard> {
        command.spawn().map(ChildGuard::new)
    }

    /// Whether the process is still running (not exited, or exited but not yet reaped by us).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (a name such as `TERM`, `INT`, `KILL`) with kill(1): tests forbid
    /// `unsafe`, so no libc. Whether `kill` succeeded.
    pub fn signal(&self, signal: &str) -> bool {
        signal_pid(self.child.id(), signal)
    }

    /// SIGTERM, then up to `grace` for the process to exit, then SIGKILL: its exit status, or
    /// `None` when it had to be killed.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        self.signal("TERM");
        if let Some(status) = self.wait_exit(grace) {
            return Some(status);
        }
        self.kill_now();
        None
    }

    /// Waits up to `limit` for the process to exit by itself: its status, or `None` when it
    /// still runs (it is not killed).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    /// SIGKILL and reap: a crash as far as its peers can tell.
    pub fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// kill(1) with `signal` on `pid`: whether it succeeded.
pub fn signal_pid(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|status| status.success())
}

impl Deref for ChildGuard {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        match self.grace {
            Some(grace) => {
                self.terminate(grace);
            }
            None => self.kill_now(),
        }
    }
}

/// Several guarded children, ended in the order they were started when dropped (declare it
/// before anything they use, such as their namespace or folder, so that it drops first).
#[derive(Debug, Default)]
pub struct Children(pub Vec<ChildGuard>);

impl Children {
    /// Guards `child` with the others; its index, for [`Children::kill`].
    pub fn push(&mut self, child: Child) -> usize {
        self.0.push(ChildGuard::new(child));
        self.0.len() - 1
    }

    /// Kills and reaps the child at `index` now (a later drop does nothing more to it).
    pub fn kill(&mut self, index: usize) {
        if let Some(child) = self.0.get_mut(index) {
            child.kill_now();
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_guard_ends_its_child() {
        let guard = ChildGuard::spawn(Command::new("sleep").arg("30")).expect("sleep");
        let pid = guard.id();
        drop(guard);
        // Reaped: no such process (or, at worst, a recycled pid that is not our sleep).
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(!cmdline.starts_with(b"sleep"), "sleep {pid} still runs");
    }

    #[test]
    fn terminate_lets_a_process_exit_on_sigterm() {
        let mut guard = ChildGuard::spawn(Command::new("sleep").arg("30")).expect("sleep");
        assert!(guard.running());
        let status = guard.terminate(Duration::from_secs(5));
        assert!(status.is_some_and(|s| !s.success()), "{status:?}");
        assert!(!guard.running());
    }
}
