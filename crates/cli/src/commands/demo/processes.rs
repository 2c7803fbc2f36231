//! The demo's processes: started with their output in DIR/logs, their pids recorded in
//! DIR/pids so a later run can end what a killed run left behind, stopped with SIGTERM and,
//! after a grace period, SIGKILL.

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
        Ok(Supervisor { logs, pid_file: dir.join("pids"), children: Vec::new() })
    }

    /// Ends the processes a previous run recorded, if they are still ours.
    pub fn clean_leftovers(&self) {
        let Ok(text) = std::fs::read_to_string(&self.pid_file) else { return };
        let leftovers: Vec<u32> = text
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("lateen")))
            .collect();
        if !leftovers.is_empty() {
            println!("ending {} processes left by an earlier demo run", leftovers.len());
            signal_all(&leftovers, "TERM");
            std::thread::sleep(Duration::from_millis(500));
            signal_all(&leftovers, "KILL");
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }

    pub fn spawn(&mut self, name: &str, program: PathBuf, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.logs.join(format!("{name}.log")))?;
        let child = Command::new(&program)
            .args(args)
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let pids: String = self.children.iter().map(|(_, child)| child.id()).chain([child.id()]).map(|pid| format!("{pid}\n")).collect();
        std::fs::write(&self.pid_file, pids)?;
        self.children.push((name.to_string(), child));
        Ok(())
    }

    /// SIGTERM to everything (proxies drain), then SIGKILL to what is left after 5 s.
    pub async fn stop(&mut self) {
        let pids: Vec<u32> = self.children.iter().map(|(_, child)| child.id()).collect();
        signal_all(&pids, "TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.children.iter_mut().any(|(_, child)| matches!(child.try_wait(), Ok(None))) {
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

fn signal_all(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill").arg(format!("-{signal}")).args(pids.iter().map(u32::to_string)).stderr(Stdio::null()).status();
}
