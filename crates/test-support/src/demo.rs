//! What the tests of `lateen demo` share: checking that the binaries the demo starts were
//! built beside `lateen`, the demo's logs for a failure message, and a demo running in the
//! background while a test talks to it ([`RunningDemo`]).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::process::ChildGuard;

/// How long the demo has to stop its processes and remove what it made after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// `lateen demo` started in the background, its stdout collected; stopped with SIGTERM (its
/// clean stop) when dropped.
pub struct RunningDemo {
    pub child: ChildGuard,
    stdout: Arc<Mutex<String>>,
}

impl RunningDemo {
    /// Runs `lateen demo ARGS --dir DIR` (the binaries must be beside `lateen`).
    pub fn start(lateen: &Path, args: &[&str], dir: &Path) -> RunningDemo {
        assert_binaries_beside(lateen);
        let mut child = Command::new(lateen)
            .arg("demo")
            .args(args)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run lateen demo");
        let stdout = Arc::new(Mutex::new(String::new()));
        if let Some(out) = child.stdout.take() {
            let sink = stdout.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let mut text = sink.lock().unwrap_or_else(|e| e.into_inner());
                    text.push_str(&line);
                    text.push('\n');
                }
            });
        }
        RunningDemo {
            child: ChildGuard::with_grace(child, STOP_GRACE),
            stdout,
        }
    }

    /// What the demo printed so far.
    pub fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits (up to `timeout`) until the demo printed `text`; panics with its output when it
    /// exits or the time is up.
    pub fn wait_for_output(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.stdout().contains(text) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("demo exited ({status}) before {text:?}:\n{}", self.stdout());
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} from the demo in {timeout:?}:\n{}",
                self.stdout()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM, then up to 30 s for the demo to stop every process; whether it stopped
    /// cleanly (exit 0).
    pub fn stop(&mut self) -> bool {
        self.child
            .terminate(STOP_GRACE)
            .is_some_and(|status| status.success())
    }
}

/// Panics naming the first of lateend, lateen-proxy and lateen-sample-app that is not beside
/// the `lateen` binary at `lateen` (the demo starts them from there).
pub fn assert_binaries_beside(lateen: &Path) {
    let folder = lateen.parent().unwrap_or(Path::new("."));
    for binary in ["lateend", "lateen-proxy", "lateen-sample-app"] {
        assert!(
            folder.join(binary).exists(),
            "{binary} must be built beside lateen (scripts/test.sh runs `cargo build --workspace --bins` first)"
        );
    }
}

/// Every log file in `DIR/logs` of a demo run with `--dir DIR`, each under its path.
pub fn logs(dir: &Path) -> String {
    std::fs::read_dir(dir.join("logs"))
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| {
                    format!(
                        "--- {}\n{}",
                        entry.path().display(),
                        std::fs::read_to_string(entry.path()).unwrap_or_default()
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
