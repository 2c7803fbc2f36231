//! The demo's processes: started with their output in DIR/logs, their pids recorded in
//! DIR/pids so a later run can end what a killed run left behind, stopped with SIGTERM and,
//! after a grace period, SIGKILL. Children get their own process group so a Ctrl-C reaches
//! only `lateen demo`, which then stops them in order and removes what it created.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Supervisor {
    logs: PathBuf,
    pid_file: PathBuf,
    children: Vec<(String, Child)>,
}

impl Supervisor {
    pub fn new(dir: &Path) -> anyhow::Result<Supervisor> {
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        Ok(Supervisor {
            logs,
            pid_file: dir.join("pids"),
            children: Vec::new(),
        })
    }

    /// Ends the processes a previous run recorded, if they are still ours.
    pub fn clean_leftovers(&self) {
        let Ok(text) = std::fs::read_to_string(&self.pid_file) else {
            return;
        };
        let leftovers: Vec<u32> = text
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("lateen"))
            })
            .collect();
        if !leftovers.is_empty() {
            println!(
                "ending {} processes left by an earlier demo run",
                leftovers.len()
            );
            end_all(&leftovers, Duration::from_millis(500));
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }

    pub fn spawn(
        &mut self,
        name: &str,
        program: PathBuf,
        args: &[&str],
        env: &[(&str, String)],
    ) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(self.logs.join(format!("{name}.log")))?;
        let child = Command::new(&program)
            .process_group(0)
            .args(args)
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let pids: String = self
            .children
            .iter()
            .map(|(_, child)| child.id())
            .chain([child.id()])
            .map(|pid| format!("{pid}\n"))
            .collect();
        std::fs::write(&self.pid_file, pids)?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    /// Fails naming a process that has already exited (and its log), e.g. a lateend that
    /// could not bind its address.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                anyhow::bail!(
                    "{name} exited ({status}); see {}",
                    self.logs.join(format!("{name}.log")).display()
                );
            }
        }
        Ok(())
    }

    /// SIGTERM to everything (proxies drain), then SIGKILL to what is left after 5 s.
    pub async fn stop(&mut self) {
        let pids: Vec<u32> = self.children.iter().map(|(_, child)| child.id()).collect();
        signal_all(&pids, "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline
            && self
                .children
                .iter_mut()
                .any(|(_, child)| matches!(child.try_wait(), Ok(None)))
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// SIGTERM to `pids`, SIGKILL to those still there after `grace`, then waits (at most 2 s)
/// for them to be gone, so their ports and addresses are free for what comes next.
pub fn end_all(pids: &[u32], grace: Duration) {
    let running = |pids: &[u32]| {
        pids.iter()
            .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    };
    signal_all(pids, "TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && running(pids) {
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_all(pids, "KILL");
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && running(pids) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn signal_all(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}
