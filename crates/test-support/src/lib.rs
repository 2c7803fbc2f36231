//! Helpers the integration tests of several crates share: finding the real Envoy the test
//! command installs (and failing, not skipping, under CI when it is missing), free ports, and
//! [`kube::TestCluster`], a real Kubernetes control plane (etcd, kube-apiserver with RBAC,
//! kube-controller-manager) on loopback, with [`test_ca::TestCa`] for TLS servers it must trust;
//! network namespaces for pod-like processes and labs of them joined by veth pairs
//! ([`netns`]); child processes ended when a test ends ([`process`]); bounded waiting for a
//! condition or a port ([`wait`]); a kubelet's part in starting a Pod's
//! container as a local process is [`kube::pod_container_command`]; [`probe`] reads logged
//! addresses and asks HTTP; [`istio_corpus`], Istio's validation corpus with Istio's verdicts; [`relay`], a TCP
//! relay that keeps what crosses the wire; [`envoy`], real Envoy on a static configuration, and [`envoy_bootstrap`], the one builder of Envoy
//! bootstraps (node, admin, ADS, static clusters and listeners);
//! [`mesh_fixtures`], a small mesh's Istio YAML for translation tests and fuzz seeds;
//! [`prometheus`], a real Prometheus scraping a test's processes and answering PromQL;
//! [`demo`], what the tests of `lateen demo` share; [`otlp_receiver`], a real OTLP/gRPC trace
//! receiver collecting the spans proxies export; [`metrics_text`], samples read from Prometheus text;
//! [`jwt`], a token issuer (ES256 key, JWKS,
//! signed tokens) for RequestAuthentication tests; [`chromium`], a headless browser for the
//! dashboard's page; [`static_http`], fixed documents by path with their fetches counted
//! (a `jwksUri`); [`proc_stats`], a process's descriptors and resident memory from /proc.
//! A dev-dependency only; nothing here runs outside tests.
//!
//! Owns: test plumbing. Must not touch: any product code.
#![forbid(unsafe_code)]
// Test plumbing: a helper that cannot do its job fails the test that called it, by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

pub mod chromium;
pub mod demo;
pub mod envoy;
pub mod envoy_bootstrap;
pub mod istio_corpus;
pub mod jwt;
pub mod kube;
pub mod mesh_fixtures;
pub mod metrics_text;
pub mod netns;
pub mod otlp_receiver;
pub mod probe;
pub mod proc_stats;
pub mod process;
pub mod prometheus;
pub mod relay;
pub mod static_http;
pub mod test_ca;
pub mod tools;
pub mod wait;

/// True when CI demands every tool (`LATEEN_REQUIRE_TOOLS` set and non-empty): a missing tool
/// then fails a test instead of skipping it.
pub fn tools_required() -> bool {
    std::env::var_os("LATEEN_REQUIRE_TOOLS").is_some_and(|v| !v.is_empty())
}

/// Envoy on PATH, else in the workspace's `.venv` (where `scripts/test.sh` installs it).
pub fn find_envoy() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/envoy");
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("envoy"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| venv.is_file().then_some(venv))
}

/// [`find_envoy`], or `None` to skip `test` with a notice; under CI (`LATEEN_REQUIRE_TOOLS`
/// set and non-empty) a missing Envoy fails the test instead.
pub fn envoy_or_skip(test: &str) -> Option<PathBuf> {
    let found = find_envoy();
    if found.is_none() {
        if tools_required() {
            panic!("envoy not found on PATH or in .venv/bin (run scripts/test.sh)");
        }
        eprintln!("NOTICE: envoy not found; skipping {test}");
    }
    found
}

/// A command that runs `program` with its open-file limit (`RLIMIT_NOFILE`, soft and hard)
/// set to `limit`, through util-linux's `prlimit`, which then execs the program (the child's
/// pid is the program's). `None` to skip `test` with a notice when `prlimit` is missing;
/// under CI (`LATEEN_REQUIRE_TOOLS`) a missing `prlimit` fails the test instead.
pub fn with_open_files_limit(
    program: &Path,
    limit: u64,
    test: &str,
) -> Option<std::process::Command> {
    let prlimit = ["/usr/bin/prlimit", "/bin/prlimit"]
        .into_iter()
        .map(Path::new)
        .find(|path| path.is_file());
    let Some(prlimit) = prlimit else {
        if tools_required() {
            panic!("prlimit (util-linux) not found");
        }
        eprintln!("NOTICE: prlimit not found; skipping {test}");
        return None;
    };
    let mut command = std::process::Command::new(prlimit);
    command
        .arg(format!("--nofile={limit}:{limit}"))
        .arg("--")
        .arg(program);
    Some(command)
}

/// Writes the file `name` in `dir` atomically (a hidden temporary file, then a rename), as
/// an editor would: a watcher such as lateend's folder source never reads half a file.
pub fn write_config(dir: &Path, name: &str, text: &str) {
    let temporary = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, text).expect("write temporary config file");
    std::fs::rename(&temporary, dir.join(name)).expect("rename config file into place");
}

/// Lowest and one past the highest port [`free_port`] hands out: below the kernel's
/// ephemeral range (32768..61000 here). A port from `bind(0)` is in that range, and another
/// process's outgoing connection can take it between our probe and the child's bind (what
/// made Envoy NACK a listener with "Address already in use" under the full test run). Below
/// it no connection is given a port, and the project's rule "bind port 0 or below 32768"
/// holds for processes told their port.
const LOW_PORTS: std::ops::Range<u16> = 20000..32768;

/// A port free on 127.0.0.1 right now, chosen at random below 32768, and never handed out
/// before in this test process. For a process that must be told its port (a listener in
/// xDS, a child's flag). Never twice: tests run in parallel threads, and a port one test took
/// for a "dead" upstream could otherwise be handed to another test's proxy, which then
/// answers where nothing should. Random so that tests in other processes rarely collide.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let span = u64::from(LOW_PORTS.end - LOW_PORTS.start);
    for _ in 0..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        let offset = u16::try_from(h.finish() % span).unwrap_or(0);
        let port = LOW_PORTS.start + offset;
        if given.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        given.push(port);
        return port;
    }
    panic!("no free port in {LOW_PORTS:?} on 127.0.0.1 after 1000 tries");
}
