//! Real iptables in a network namespace this test creates (and always deletes): apply, read
//! back, clean up, dry run, failure handling, and a real redirect checked with SO_ORIGINAL_DST.
//!
//! This is a `harness = false` test: `main` runs the checks, and the same binary re-executed
//! inside the namespace (env `LATEEN_CAP_ROLE`) plays the listener / connecting processes.
//! Needs root, `ip` and iptables; without them it fails under LATEEN_REQUIRE_TOOLS, else skips.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use lateen_capture::apply::{apply, cleanup};
use lateen_capture::cli::{SIDECAR_DEFAULT_FLAGS as SIDECAR_FLAGS, parse_flags};
use lateen_capture::{CaptureArgs, CaptureConfig, CaptureError, CommandRunner};
use lateen_test_support::netns::{self, Netns};
use lateen_test_support::process::ChildGuard;

const ROLE_ENV: &str = "LATEEN_CAP_ROLE";
const TARGET_ENV: &str = "LATEEN_CAP_TARGET";
/// A destination outside the namespace's own addresses, routed to a dummy interface.
const OUTBOUND_TARGET: &str = "198.18.5.5:80";
const APP_UID: u32 = 1000;
const PROXY_UID: u32 = 1337;

fn capture_args(argv: &[&str]) -> CaptureArgs {
    parse_flags(std::iter::once("capture").chain(argv.iter().copied())).expect("test flags parse")
}

fn main() -> ExitCode {
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("probe") => return role_probe(),
        Ok("connect") => return role_connect(),
        Ok("dry-run") => return role_dry_run(),
        Ok("cli-apply") => return report(lateen_capture::run(capture_args(&SIDECAR_FLAGS))),
        Ok("cli-cleanup") => {
            let settings = capture_args(&SIDECAR_FLAGS);
            return report(lateen_capture::run_cleanup(lateen_capture::CleanupArgs {
                settings,
            }));
        }
        Ok("server") => return role_server(),
        Ok("inbound-probe") => return role_inbound_probe(),
        _ => {}
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "--list") {
        println!("netns: test");
        return ExitCode::SUCCESS;
    }
    let filters: Vec<&String> = argv.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| "netns".contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    let tools = [
        "ip",
        "iptables",
        "iptables-save",
        "iptables-restore",
        "ip6tables",
        "ip6tables-save",
        "ip6tables-restore",
    ];
    if !netns::can_run("netns capture test", netns::missing(&tools)) {
        return ExitCode::SUCCESS;
    }
    type Check = (&'static str, fn(&Netns));
    let checks: [Check; 7] = [
        ("dry run touches nothing", check_dry_run),
        (
            "`capture` and `capture-cleanup` entry points",
            check_cli_entry_points,
        ),
        (
            "apply and clean up (REDIRECT, dual stack, DNS)",
            check_apply_cleanup_redirect,
        ),
        ("apply and clean up (TPROXY)", check_apply_cleanup_tproxy),
        ("failures name the cause and roll back", check_failures),
        (
            "outbound traffic lands on 15001, the proxy's own does not",
            check_real_redirect,
        ),
        ("reapplying replaces, never duplicates", check_reapply),
    ];
    for (name, check) in checks {
        // A fresh namespace per check: one check's leftovers cannot hide another's bug.
        let ns = pod_namespace();
        println!("test netns: {name} ...");
        check(&ns);
        println!("test netns: {name} ... ok");
    }
    ExitCode::SUCCESS
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

/// An empty namespace with loopback up, deleted when dropped.
fn bare_namespace() -> Netns {
    Netns::create(&netns::unique_name("cap-test"))
}

/// The pod-like namespace: 198.18.0.1/15 on veth0 (its peer veth1 can be moved into another
/// namespace to play a remote host), and others' rules in every table.
fn pod_namespace() -> Netns {
    let ns = bare_namespace();
    ns.must(&[
        "ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
    ]);
    ns.must(&["ip", "addr", "add", "198.18.0.1/15", "dev", "veth0"]);
    ns.must(&["ip", "link", "set", "veth0", "up"]);
    ns.must(&["ip", "link", "set", "veth1", "up"]);
    // Someone else's rules in every table we use: they must survive untouched.
    let others_v4 = "*nat\n-N USER_CHAIN\n-A USER_CHAIN -d 198.18.9.9/32 -j RETURN\n\
                     -A OUTPUT -d 198.18.9.9/32 -j USER_CHAIN\n-A PREROUTING -s 198.18.9.9/32 -j RETURN\nCOMMIT\n\
                     *mangle\n-A PREROUTING -s 198.18.9.9/32 -j ACCEPT\n-A OUTPUT -d 198.18.9.9/32 -j ACCEPT\nCOMMIT\n\
                     *raw\n-A PREROUTING -s 198.18.9.9/32 -j ACCEPT\n-A OUTPUT -d 198.18.9.9/32 -j ACCEPT\nCOMMIT\n";
    let others_v6: String = ["nat", "mangle", "raw"]
        .iter()
        .map(|t| format!("*{t}\n-A OUTPUT -p tcp --dport 9 -j ACCEPT\nCOMMIT\n"))
        .collect();
    let runner = ns.runner();
    runner
        .run("iptables-restore", &["--noflush"], Some(others_v4))
        .expect("others' IPv4 rules");
    runner
        .run("ip6tables-restore", &["--noflush"], Some(&others_v6))
        .expect("others' IPv6 rules");
    ns
}

/// What the checks do with a namespace beyond running commands in it.
trait CaptureLab {
    /// `ip netns exec NAME`, the prefix of every command run inside.
    fn prefix(&self) -> Vec<String>;
    /// lateen-capture's runner for commands inside the namespace.
    fn runner(&self) -> CommandRunner;
    /// Both families' iptables state without comments and counters, tables sorted.
    fn state(&self) -> String;
    /// Runs this test binary inside the namespace in `role`.
    fn run_role(&self, role: &str) -> std::process::Output;
    /// The command that runs this test binary inside the namespace in `role`.
    fn role_command(&self, role: &str) -> Command;
}

impl CaptureLab for Netns {
    fn prefix(&self) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.name().to_string(),
        ]
    }

    fn runner(&self) -> CommandRunner {
        CommandRunner::with_prefix(self.prefix())
    }

    fn state(&self) -> String {
        let mut out = String::new();
        for save in ["iptables-save", "ip6tables-save"] {
            let text = self.must(&[save]);
            let mut blocks: Vec<String> = text
                .split('*')
                .skip(1)
                .map(|block| {
                    block
                        .lines()
                        .filter(|l| !l.starts_with('#'))
                        .map(|l| match l.find(" [") {
                            Some(i) if l.starts_with(':') => l[..i].to_owned(),
                            _ => l.to_owned(),
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .collect();
            blocks.sort();
            out.push_str(&format!("## {save}\n{}\n", blocks.join("\n")));
        }
        out
    }

    fn run_role(&self, role: &str) -> std::process::Output {
        self.role_command(role)
            .output()
            .expect("run role inside the namespace")
    }

    fn role_command(&self, role: &str) -> Command {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = netns::command(Some(self.name()), &[]);
        cmd.arg(exe).env(ROLE_ENV, role);
        cmd
    }
}

fn config(argv: &[&str]) -> CaptureConfig {
    capture_args(argv)
        .to_config()
        .expect("test flags are valid")
}

fn check_dry_run(ns: &Netns) {
    let before = ns.state();
    // Istio's environment switches work too (INVALID_DROP turns on --drop-invalid).
    let out = ns
        .role_command("dry-run")
        .env("INVALID_DROP", "true")
        .output()
        .expect("dry run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dry run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("-A ISTIO_OUTPUT -j ISTIO_REDIRECT"),
        "dry run prints the rules:\n{stdout}"
    );
    assert!(
        stdout.contains("# IPv6 rules"),
        "dry run prints IPv6 rules with --dual-stack:\n{stdout}"
    );
    assert_eq!(ns.state(), before, "dry run changed iptables");
}

fn role_dry_run() -> ExitCode {
    let mut argv = SIDECAR_FLAGS.to_vec();
    argv.extend(["--dry-run", "--dual-stack", "-t", "1338"]);
    report(lateen_capture::run(capture_args(&argv)))
}

fn report(result: Result<(), CaptureError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}

fn check_cli_entry_points(ns: &Netns) {
    let before = ns.state();
    let out = ns.run_role("cli-apply");
    assert!(
        out.status.success(),
        "capture failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nat = ns.must(&["iptables-save", "-t", "nat"]);
    assert!(
        nat.contains("-A ISTIO_OUTPUT -j ISTIO_REDIRECT"),
        "capture applied the rules:\n{nat}"
    );
    let out = ns.run_role("cli-cleanup");
    assert!(
        out.status.success(),
        "capture-cleanup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ns.state(),
        before,
        "capture-cleanup restored the earlier state"
    );
}

fn check_apply_cleanup_redirect(ns: &Netns) {
    let before = ns.state();
    let mut argv = SIDECAR_FLAGS.to_vec();
    argv.extend([
        "--dual-stack",
        "--redirect-dns",
        "--dns-servers",
        "198.18.0.53,2001:db8::53",
    ]);
    argv.extend([
        "--drop-invalid",
        "-c",
        "dummy9",
        "-k",
        "veth9",
        "-o",
        "2525",
        "-q",
        "8443",
    ]);
    let cfg = config(&argv);
    apply(&cfg, &ns.runner()).expect("apply");
    let nat = ns.must(&["iptables-save", "-t", "nat"]);
    for expected in [
        ":ISTIO_INBOUND",
        ":ISTIO_IN_REDIRECT",
        ":ISTIO_OUTPUT",
        ":ISTIO_REDIRECT",
        ":ISTIO_OUTPUT_DNS",
        "-A PREROUTING -p tcp -j ISTIO_INBOUND",
        "-A OUTPUT -j ISTIO_OUTPUT",
        "-A ISTIO_INBOUND -p tcp -m tcp --dport 15090 -j RETURN",
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
        "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
        "-A PREROUTING -i veth9 -j ISTIO_REDIRECT",
    ] {
        assert!(
            nat.contains(expected),
            "missing {expected:?} in nat:\n{nat}"
        );
    }
    let v6 = ns.must(&["ip6tables-save", "-t", "nat"]);
    assert!(
        v6.contains("-A ISTIO_OUTPUT -s ::6/128 -o lo -j RETURN"),
        "IPv6 nat:\n{v6}"
    );
    assert!(
        ns.must(&["iptables-save", "-t", "raw"])
            .contains(":ISTIO_OUTPUT_DNS")
    );
    assert!(
        ns.must(&["iptables-save", "-t", "mangle"])
            .contains(":ISTIO_DROP")
    );
    assert!(
        ns.state().contains("USER_CHAIN"),
        "other rules kept while applied"
    );

    cleanup(&cfg, &ns.runner()).expect("cleanup");
    assert_eq!(
        ns.state(),
        before,
        "cleanup left something behind or removed something else"
    );
    // Clean-up of nothing is fine.
    cleanup(&cfg, &ns.runner()).expect("second cleanup");
}

fn check_apply_cleanup_tproxy(ns: &Netns) {
    let before = ns.state();
    let mut argv = SIDECAR_FLAGS.to_vec();
    argv[7] = "TPROXY";
    argv.extend(["-c", "dummy9"]);
    let cfg = config(&argv);
    apply(&cfg, &ns.runner()).expect("apply TPROXY");
    let mangle = ns.must(&["iptables-save", "-t", "mangle"]);
    for expected in [
        ":ISTIO_DIVERT",
        ":ISTIO_TPROXY",
        ":ISTIO_INBOUND",
        "--on-port 15006",
        "-A PREROUTING -i dummy9 -j RETURN",
    ] {
        assert!(
            mangle.contains(expected),
            "missing {expected:?} in mangle:\n{mangle}"
        );
    }
    let rules = ns.must(&["ip", "-4", "rule"]);
    assert!(
        rules.contains("fwmark 0x539 lookup 133"),
        "TPROXY policy rule:\n{rules}"
    );

    // Clean-up given the REDIRECT mode still finds the TPROXY-only rules and routes (interface
    // names must be given again: they cannot be guessed).
    let redirect_mode = config(&[&SIDECAR_FLAGS[..], &["-c", "dummy9"]].concat());
    cleanup(&redirect_mode, &ns.runner()).expect("cleanup TPROXY");
    assert_eq!(
        ns.state(),
        before,
        "TPROXY cleanup left something behind or removed something else"
    );
    let rules = ns.must(&["ip", "-4", "rule"]);
    assert!(
        !rules.contains("lookup 133"),
        "policy rule removed:\n{rules}"
    );
}

fn check_failures(ns: &Netns) {
    let before = ns.state();
    let cfg = config(&[&SIDECAR_FLAGS[..], &["--dual-stack"]].concat());

    // No iptables at all.
    let mut prefix = ns.prefix();
    prefix.extend(["env".into(), "PATH=/nonexistent".into()]);
    let err = apply(&cfg, &CommandRunner::with_prefix(prefix)).expect_err("no tools");
    assert!(matches!(err, CaptureError::ToolMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("iptables"), "{err}");

    // Not root: iptables refuses (setpriv, from util-linux, drops root).
    if on_path("setpriv") {
        let mut prefix = ns.prefix();
        prefix.extend([
            "setpriv".into(),
            "--reuid=1000".into(),
            "--regid=1000".into(),
            "--clear-groups".into(),
        ]);
        let err = apply(&cfg, &CommandRunner::with_prefix(prefix)).expect_err("not root");
        assert!(
            matches!(err, CaptureError::PermissionDenied { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("NET_ADMIN"), "{err}");
    } else {
        println!("note: `setpriv` not found, permission check skipped");
    }

    // IPv6 fails after IPv4 succeeded: IPv4 is rolled back.
    let mut prefix = ns.prefix();
    let fail_v6 = "if [ \"$0\" = ip6tables-restore ]; then echo 'simulated ip6tables failure' >&2; exit 1; fi; exec \"$0\" \"$@\"";
    prefix.extend(["sh".into(), "-c".into(), fail_v6.into()]);
    let err = apply(&cfg, &CommandRunner::with_prefix(prefix)).expect_err("v6 fails");
    assert!(
        err.to_string().contains("simulated ip6tables failure"),
        "{err}"
    );
    assert_eq!(ns.state(), before, "IPv4 rules were not rolled back");
}

fn check_reapply(ns: &Netns) {
    let before = ns.state();
    let cfg = config(&SIDECAR_FLAGS);
    apply(&cfg, &ns.runner()).expect("first apply");
    let first = ns.state();
    // Different settings replace the earlier ones.
    apply(&config(&["-i", "10.0.0.0/8"]), &ns.runner()).expect("apply other settings");
    assert!(
        !ns.must(&["iptables-save", "-t", "nat"])
            .contains("-A ISTIO_OUTPUT -j ISTIO_REDIRECT")
    );
    apply(&cfg, &ns.runner()).expect("apply again");
    assert_eq!(ns.state(), first, "reapplying changed the result");
    cleanup(&cfg, &ns.runner()).expect("cleanup");
    assert_eq!(ns.state(), before);
}

fn check_real_redirect(ns: &Netns) {
    // A remote host at 198.18.5.5 in its own namespace, reached through the veth pair.
    let remote = bare_namespace();
    ns.must(&["ip", "link", "set", "veth1", "netns", remote.name()]);
    remote.must(&["ip", "addr", "add", "198.18.5.5/15", "dev", "veth1"]);
    remote.must(&["ip", "link", "set", "veth1", "up"]);
    // Killed when the check ends, even on panic.
    let _server =
        ChildGuard::spawn(&mut remote.role_command("server")).expect("start remote server");

    let cfg = config(&SIDECAR_FLAGS);
    apply(&cfg, &ns.runner()).expect("apply");
    let out = ns.run_role("probe");
    let inbound = inbound_probe(ns, &remote);
    cleanup(&cfg, &ns.runner()).expect("cleanup");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}{inbound}");
    assert!(out.status.success(), "probe failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "app uid {APP_UID}: redirected, original destination {OUTBOUND_TARGET}"
        )),
        "app traffic was not redirected to 15001:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "proxy uid {PROXY_UID}: not redirected, reached the remote host"
        )),
        "proxy traffic was redirected:\n{stdout}\n{stderr}"
    );
    assert!(
        inbound.contains("accepted on 15006: original destination 198.18.0.1:8080"),
        "inbound traffic was not redirected to 15006:\n{inbound}"
    );
    assert!(
        inbound.contains("accepted on 15021: original destination 198.18.0.1:15021"),
        "an excluded inbound port was captured:\n{inbound}"
    );
}

/// Connects from the remote host to the pod's 8080 (captured) and 15021 (excluded) while the
/// pod listens on 15006 and 15021; returns what the pod saw.
fn inbound_probe(ns: &Netns, remote: &Netns) -> String {
    let mut probe = ns.role_command("inbound-probe");
    probe.stdout(std::process::Stdio::piped());
    let mut child = probe.spawn().expect("start inbound probe");
    let mut ready = String::new();
    if let Some(out) = child.stdout.as_mut() {
        let mut byte = [0u8; 1];
        // Read the READY line byte by byte so nothing after it is buffered away.
        while !ready.ends_with('\n') && out.read(&mut byte).unwrap_or(0) == 1 {
            ready.push(byte[0] as char);
        }
    }
    assert_eq!(ready.trim(), "READY", "inbound probe did not start");
    for target in ["198.18.0.1:8080", "198.18.0.1:15021"] {
        let _ = remote
            .role_command("connect")
            .env(TARGET_ENV, target)
            .output();
    }
    let out = child.wait_with_output().expect("inbound probe output");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Inside the namespace: listen on 15006 (inbound capture) and 15021 (excluded), report each
/// connection's port and original destination; two connections or 10 s.
fn role_inbound_probe() -> ExitCode {
    let mut listeners = Vec::new();
    for port in [15006u16, 15021] {
        match TcpListener::bind(("0.0.0.0", port)) {
            Ok(l) if l.set_nonblocking(true).is_ok() => listeners.push((port, l)),
            other => {
                eprintln!("cannot listen on {port}: {:?}", other.err());
                return ExitCode::FAILURE;
            }
        }
    }
    println!("READY");
    let _ = std::io::stdout().flush();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = 0;
    while seen < 2 && Instant::now() < deadline {
        for (port, listener) in &listeners {
            if let Some(mut stream) = accept_within(listener, Duration::from_millis(50)) {
                let _ = stream.write_all(b"inbound\n");
                println!(
                    "accepted on {port}: original destination {}",
                    original_dst(stream)
                );
                seen += 1;
            }
        }
    }
    ExitCode::SUCCESS
}

fn original_dst(stream: TcpStream) -> String {
    socket2::Socket::from(stream)
        .original_dst_v4()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Inside the namespace, as root: listen on 127.0.0.1:15001 and connect to the outbound
/// target as the app's UID and as the proxy's UID.
fn role_probe() -> ExitCode {
    let listener = match TcpListener::bind("127.0.0.1:15001") {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:15001: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = listener.set_nonblocking(true) {
        eprintln!("set_nonblocking: {e}");
        return ExitCode::FAILURE;
    }
    let mut ok = true;
    for uid in [APP_UID, PROXY_UID] {
        let exe = match std::env::current_exe() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("current_exe: {e}");
                return ExitCode::FAILURE;
            }
        };
        let child = Command::new(exe)
            .env(ROLE_ENV, "connect")
            .env(TARGET_ENV, OUTBOUND_TARGET)
            .uid(uid)
            .gid(uid)
            .stdout(std::process::Stdio::piped())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                eprintln!("spawn connector as uid {uid}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let accepted = accept_within(&listener, Duration::from_secs(3));
        if let Some(mut stream) = accepted.as_ref() {
            let _ = stream.write_all(b"proxy\n");
        }
        let reply = child
            .wait_with_output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        let who = if uid == PROXY_UID { "proxy" } else { "app" };
        match accepted {
            Some(stream) => {
                let original = original_dst(stream);
                println!("{who} uid {uid}: redirected, original destination {original}");
                ok &= uid != PROXY_UID;
            }
            None if reply.as_deref().is_ok_and(|r| r == "remote") => {
                println!("{who} uid {uid}: not redirected, reached the remote host");
                ok &= uid == PROXY_UID;
            }
            None => {
                println!(
                    "{who} uid {uid}: not redirected, and no answer from the remote host ({reply:?})"
                );
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn accept_within(listener: &TcpListener, limit: Duration) -> Option<TcpStream> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                return Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => {
                eprintln!("accept: {e}");
                return None;
            }
        }
    }
    None
}

/// The remote host: answers "remote" on 198.18.5.5:80 until killed (bounded to 60 s).
fn role_server() -> ExitCode {
    let listener = match TcpListener::bind(OUTBOUND_TARGET) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {OUTBOUND_TARGET}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = listener.set_nonblocking(true);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(mut stream) = accept_within(&listener, Duration::from_secs(1)) {
            let _ = stream.write_all(b"remote\n");
        }
    }
    ExitCode::SUCCESS
}

/// Connects to the target once (bounded by a timeout) and prints the peer's first line.
fn role_connect() -> ExitCode {
    let target: SocketAddr = match std::env::var(TARGET_ENV).ok().and_then(|t| t.parse().ok()) {
        Some(t) => t,
        None => return ExitCode::FAILURE,
    };
    match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
        Ok(mut stream) => {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut reply = [0u8; 16];
            let n = stream.read(&mut reply).unwrap_or(0);
            print!("{}", String::from_utf8_lossy(&reply[..n]));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("connect {target} as uid: {e}");
            ExitCode::FAILURE
        }
    }
}
