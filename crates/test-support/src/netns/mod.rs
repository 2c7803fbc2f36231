//! Network namespaces for tests that need a pod's own network (its ports 15000/15021/15090
//! must not meet another test's): a named namespace made with `ip netns add` and deleted when
//! dropped ([`Netns`]), commands run in it with `ip netns exec`, the "root and these tools, or
//! skip" check, and [`Lab`]: several namespaces joined by veth pairs, with the processes
//! started in them and their logs, all named per test and removed when the test ends.
//! Addresses given to namespaces belong in 198.18.0.0/15 (and 2001:2::/48).

mod lab;

pub use lab::{End, Lab};

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// `lateen-proxy capture`'s flags as Istio's injected init container passes them (REDIRECT,
/// the proxy's UID and GID 1337, every outbound address, every inbound port) without `-d`: the
/// inbound ports a test leaves alone differ ([`EXCLUDED_INBOUND_PORTS`] and its own).
pub const SIDECAR_CAPTURE_FLAGS: [&str; 14] = [
    "-p", "15001", "-z", "15006", "-u", "1337", "-g", "1337", "-m", "REDIRECT", "-i", "*", "-b",
    "*",
];

/// The inbound ports Istio never captures (Prometheus, health, the agent) and the proxy's
/// admin port, so that a test reaches them from outside the pod.
pub const EXCLUDED_INBOUND_PORTS: &str = "15090,15021,15020,15000";

/// The command that runs `args` (program first), in `ns` through `ip netns exec` when given.
pub fn command(ns: Option<&str>, args: &[&str]) -> Command {
    match ns {
        Some(ns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", ns]).args(args);
            command
        }
        None => {
            let mut command = Command::new(args[0]);
            command.args(&args[1..]);
            command
        }
    }
}

/// Runs `args` (program first), in `ns` when given: whether it succeeded, stdout then stderr.
pub fn run(ns: Option<&str>, args: &[&str]) -> (bool, String) {
    match command(ns, args).output() {
        Ok(output) => (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        ),
        Err(err) => (false, format!("{args:?}: {err}")),
    }
}

/// Runs `args` (program first), in `ns` when given: its stdout; panics with stdout and
/// stderr when it fails.
pub fn must(ns: Option<&str>, args: &[&str]) -> String {
    let output = command(ns, args)
        .output()
        .unwrap_or_else(|err| panic!("{args:?} in {ns:?}: {err}"));
    assert!(
        output.status.success(),
        "{args:?} in {ns:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A namespace name for `tag` unique to this test process and call: `lateen-TAG-PID-N`.
pub fn unique_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("lateen-{tag}-{}-{n}", std::process::id())
}

/// `None` when running as root with every tool on PATH, else what is missing.
pub fn missing(tools: &[&str]) -> Option<String> {
    if run(None, &["id", "-u"]).1.trim() != "0" {
        return Some("not root".into());
    }
    tools
        .iter()
        .find(|tool| !run(None, &["sh", "-c", &format!("command -v {tool}")]).0)
        .map(|tool| format!("{tool} not found"))
}

/// True when `test` can go on; otherwise prints a NOTICE and returns false, or panics when
/// `LATEEN_REQUIRE_TOOLS` is set and non-empty (CI).
pub fn can_run(test: &str, missing: Option<String>) -> bool {
    let Some(missing) = missing else {
        return true;
    };
    if crate::tools_required() {
        panic!("{test} cannot run: {missing} (LATEEN_REQUIRE_TOOLS is set)");
    }
    eprintln!("NOTICE: skipping {test}: {missing}");
    false
}

/// `curl` in namespace `ns`, as `uid` when given (an application's user, whose traffic the
/// capture rules redirect): the HTTP status code of `url`, `000` when it cannot connect.
pub fn http_status(ns: &str, uid: Option<u32>, url: &str) -> String {
    let user = uid.map(|uid| [format!("--reuid={uid}"), format!("--regid={uid}")]);
    let mut args: Vec<&str> = Vec::new();
    if let Some([reuid, regid]) = &user {
        args.extend(["setpriv", reuid, regid, "--clear-groups"]);
    }
    args.extend(["curl", "-g", "-s", "-o", "/dev/null", "-w", "%{http_code}"]);
    args.extend(["--max-time", "5", url]);
    run(Some(ns), &args).1.trim().to_string()
}

/// A named network namespace with its loopback up; deleted on drop (which also ends what
/// still runs only in it once those processes are killed by their owners).
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `name` (a leftover of a killed run with the same name is replaced).
    pub fn create(name: &str) -> Netns {
        let _ = run(None, &["ip", "netns", "del", name]);
        must(None, &["ip", "netns", "add", name]);
        let netns = Netns {
            name: name.to_string(),
        };
        netns.must(&["ip", "link", "set", "lo", "up"]);
        netns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Gives the namespace the address `address/32` (on its loopback: kernels without the
    /// dummy link type have it too), as a pod's IP.
    pub fn add_address(&self, address: &str) {
        self.must(&["ip", "addr", "add", &format!("{address}/32"), "dev", "lo"]);
    }

    /// [`run`] inside the namespace.
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        run(Some(&self.name), args)
    }

    /// [`must`] inside the namespace.
    pub fn must(&self, args: &[&str]) -> String {
        must(Some(&self.name), args)
    }

    /// Starts `args` in the namespace with stdout and stderr in `log`; `configure` can add
    /// environment before it starts.
    pub fn spawn(
        &self,
        args: &[&str],
        log: &Path,
        configure: impl FnOnce(&mut Command),
    ) -> std::io::Result<Child> {
        let log_file = std::fs::File::create(log)?;
        let mut cmd = command(Some(&self.name), args);
        cmd.stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        configure(&mut cmd);
        cmd.spawn()
    }

    /// `curl` in the namespace: the HTTP status code of `url` (`000` when it cannot connect).
    pub fn http_status(&self, url: &str) -> String {
        http_status(&self.name, None, url)
    }

    /// `curl` in the namespace: the body of `url`, empty when it fails.
    pub fn http_body(&self, url: &str) -> String {
        let (ok, body) = self.run(&["curl", "-s", "--max-time", "3", url]);
        if ok { body } else { String::new() }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(None, &["ip", "netns", "del", &self.name]);
    }
}
