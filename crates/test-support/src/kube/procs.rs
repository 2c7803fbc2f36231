//! Child processes of a test cluster. They are spawned from one keeper thread per cluster with a
//! parent-death signal (`setpriv --pdeathsig KILL`): Linux sends it when the *thread* that
//! spawned a child ends, so spawning from short-lived test threads would kill the API server
//! when the test that happened to start or restart it returns, while the keeper lives as long as
//! its cluster. That also reaps a shared cluster kept in a `static` (never dropped) when the test
//! binary exits, and every process when the test binary is killed. Output goes to a log file
//! whose tail explains a failed start.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

use crate::process::ChildGuard;
use std::sync::mpsc;

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// The thread every child of one cluster is spawned from.
pub(crate) struct Keeper {
    jobs: mpsc::Sender<SpawnJob>,
}

impl Keeper {
    pub(crate) fn new() -> io::Result<Keeper> {
        let (jobs, queue) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("kube-test-keeper".into())
            .spawn(move || {
                // Ends when the cluster (the only sender) is dropped; its children were killed
                // by then, and the death signal takes any that were not.
                for (mut command, reply) in queue {
                    let _ = reply.send(command.spawn());
                }
            })?;
        Ok(Keeper { jobs })
    }

    fn spawn(&self, command: Command) -> io::Result<Child> {
        let (reply, answer) = mpsc::channel();
        self.jobs
            .send((command, reply))
            .map_err(|_| io::Error::other("the keeper thread of the test cluster has ended"))?;
        answer
            .recv()
            .map_err(|_| io::Error::other("the keeper thread of the test cluster has ended"))?
    }
}

/// `setpriv` when present (util-linux); without it children still die on drop, only not when
/// the test binary is killed.
fn setpriv() -> Option<PathBuf> {
    ["/usr/bin/setpriv", "/bin/setpriv"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// One running component (etcd, kube-apiserver, kube-controller-manager).
pub(crate) struct Proc {
    pub(crate) name: &'static str,
    child: ChildGuard,
    log: PathBuf,
}

impl Proc {
    /// Starts `program args` with `env` added, stdout and stderr appended to `log`.
    pub(crate) fn start(
        keeper: &Keeper,
        name: &'static str,
        program: &Path,
        args: &[OsString],
        env: &[(&str, String)],
        log: &Path,
    ) -> io::Result<Proc> {
        let out = OpenOptions::new().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        let mut command = match setpriv() {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = keeper.spawn(command).map_err(|e| {
            io::Error::new(e.kind(), format!("starting {}: {e}", program.display()))
        })?;
        Ok(Proc {
            name,
            child: ChildGuard::new(child),
            log: log.to_path_buf(),
        })
    }

    /// The exit status if the process has ended.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log, to explain a failure.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// SIGKILL and reap: a crash as far as clients can tell (connections reset, no goodbye).
    pub(crate) fn kill(&mut self) {
        self.child.kill_now();
    }
}

/// The last `lines` lines of a file (reads at most its last 64 KiB).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let read = || -> io::Result<String> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}
