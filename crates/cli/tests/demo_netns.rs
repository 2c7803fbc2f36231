//! `lateen demo --mode netns` end to end, as root: the workloads run in network namespaces
//! with Istio's capture rules and their sidecars as UID 1337; productpage is fetched from the
//! host through its pod address; an edit of the config folder spreads reviews over v1/v2/v3;
//! both sides' sidecars count the calls; Ctrl-C removes every process, namespace and link.
//! Then a run killed with SIGKILL is cleaned up by the next run, which runs the canary
//! scenario. Skips when not root (fails instead when LATEEN_REQUIRE_TOOLS is set).
//! The two tests share the demo's fixed namespace names, so they run one at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lateen_test_support::netns;
use lateen_test_support::process::ChildGuard;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

const PRODUCTPAGE: &str = "198.18.10.11";
const REVIEWS_V2: &str = "198.18.10.14";

/// True when the test should go on; skips (or fails under LATEEN_REQUIRE_TOOLS) otherwise.
fn can_run(test: &str) -> bool {
    netns::can_run(test, netns::missing(&["ip", "iptables-restore", "setpriv"]))
}

fn lateen() -> PathBuf {
    let lateen = PathBuf::from(env!("CARGO_BIN_EXE_lateen"));
    for binary in ["lateend", "lateen-proxy", "lateen-sample-app"] {
        assert!(
            lateen.with_file_name(binary).exists(),
            "{binary} must be built beside lateen (cargo build --bins -p lateen-cli -p lateen-proxy -p lateen-discovery -p lateen-sample-app)"
        );
    }
    lateen
}

/// A running `lateen demo`, its stdout collected as it comes. Dropping it stops the demo
/// (SIGTERM: the demo cleans up), so a failed assertion leaves nothing behind.
struct Demo {
    child: ChildGuard,
    stdout: Arc<Mutex<String>>,
    dir: PathBuf,
}

impl Demo {
    fn start(dir: &Path, args: &[&str]) -> Demo {
        let mut child = Command::new(lateen())
            .arg("demo")
            .args(args)
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lateen demo");
        let stdout = Arc::new(Mutex::new(String::new()));
        for mut stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sink = stdout.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            });
        }
        Demo {
            child: ChildGuard::with_grace(child, Duration::from_secs(30)),
            stdout,
            dir: dir.to_path_buf(),
        }
    }

    fn output(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Output and every log, for failure messages.
    fn report(&self) -> String {
        let logs = lateen_test_support::demo::logs(&self.dir);
        format!("{}\n{logs}", self.output())
    }

    /// Waits until the output contains `text`; fails if the demo exits first or after `within`.
    fn wait_for_output(&mut self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.output().contains(text) {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "demo exited ({status}) before printing {text:?}:\n{}",
                    self.report()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} after {within:?}:\n{}",
                self.report()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the demo to exit on its own; kills it after `within`.
    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let Some(status) = self.child.wait_exit(within) else {
            self.child.kill_now();
            panic!("demo did not exit within {within:?}:\n{}", self.report());
        };
        // Let the reader threads drain the pipes.
        std::thread::sleep(Duration::from_millis(200));
        status
    }

    fn signal(&self, signal: &str) {
        assert!(self.child.signal(signal), "kill -{signal} failed");
    }

    /// The pids the demo recorded for its processes.
    fn recorded_pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.join("pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }
}

/// A process that is still running (zombies have an empty command line).
fn alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| !cmdline.is_empty())
}

fn demo_namespaces() -> Vec<String> {
    let output = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with("lateen-demo-"))
        .map(str::to_string)
        .collect()
}

/// Nothing of a demo run is left: processes, namespaces, the host link, hosts files, records.
fn assert_nothing_left(dir: &Path, pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && pids.iter().any(|pid| alive(*pid)) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let running: Vec<&u32> = pids.iter().filter(|pid| alive(**pid)).collect();
    assert!(running.is_empty(), "processes left running: {running:?}");
    assert_eq!(demo_namespaces(), Vec::<String>::new(), "namespaces left");
    assert!(
        !Path::new("/sys/class/net/lateen-demo0").exists(),
        "host link lateen-demo0 left"
    );
    let etc: Vec<String> = std::fs::read_dir("/etc/netns")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("lateen-demo-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(etc.is_empty(), "/etc/netns folders left: {etc:?}");
    assert!(
        !dir.join("pids").exists() && !dir.join("created").exists(),
        "records left in {}",
        dir.display()
    );
}

/// GET from the host with a bounded connect and read.
fn get(address: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut stream =
        std::net::TcpStream::connect_timeout(&address.parse().ok()?, Duration::from_secs(2))
            .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: productpage\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((
        status,
        text.split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default(),
    ))
}

/// Sum of the `istio_requests_total` samples on a sidecar's 15090 that contain every part.
fn requests(pod: &str, parts: &[&str]) -> f64 {
    let Some((_, text)) = get(&format!("{pod}:15090"), "/stats/prometheus") else {
        return 0.0;
    };
    lateen_test_support::metrics_text::sum(&text, "istio_requests_total", parts)
}

/// Takes this file's lock and starts a namespace demo that runs until stopped, waiting until
/// it is up; `None` when the test must skip.
fn start_running_demo(
    test: &str,
) -> Option<(std::sync::MutexGuard<'static, ()>, tempfile::TempDir, Demo)> {
    if !can_run(test) {
        return None;
    }
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().expect("temp dir");
    let mut demo = Demo::start(dir.path(), &["--mode", "netns", "--duration", "300"]);
    demo.wait_for_output("Press Ctrl-C", Duration::from_secs(120));
    Some((serial, dir, demo))
}

const THREE_WAY: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n  namespace: default\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: { host: reviews, subset: v1 }\n      weight: 34\n    - destination: { host: reviews, subset: v2 }\n      weight: 33\n    - destination: { host: reviews, subset: v3 }\n      weight: 33\n";

#[test]
fn netns_demo_serves_productpage_through_capture_and_ctrl_c_removes_everything() {
    let Some((_serial, dir, mut demo)) = start_running_demo(
        "netns_demo_serves_productpage_through_capture_and_ctrl_c_removes_everything",
    ) else {
        return;
    };
    let output = demo.output();
    assert!(
        output.contains("network namespaces with capture"),
        "{output}"
    );
    assert!(
        output.contains(&format!("http://{PRODUCTPAGE}:9080/productpage")),
        "{output}"
    );
    assert_eq!(demo_namespaces().len(), 7, "a hub and six pods");

    // The sidecars run as the proxy's UID, the apps as root.
    let pids = demo.recorded_pids();
    let uids: Vec<(String, String)> = pids
        .iter()
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let uid = status
                .lines()
                .find(|l| l.starts_with("Uid:"))?
                .split_whitespace()
                .nth(2)?
                .to_string();
            Some((String::from_utf8_lossy(&cmdline).replace('\0', " "), uid))
        })
        .collect();
    let sidecars: Vec<&(String, String)> = uids
        .iter()
        .filter(|(cmdline, _)| cmdline.contains(" sidecar "))
        .collect();
    assert_eq!(sidecars.len(), 6, "{uids:?}");
    assert!(
        sidecars.iter().all(|(_, uid)| uid == "1337"),
        "sidecars run as UID 1337: {uids:?}"
    );

    // The user's edit spreads reviews over three versions; the page served from the host
    // through productpage's pod address shows each of them.
    std::fs::write(
        dir.path().join("config/virtual-service-reviews.yaml"),
        THREE_WAY,
    )
    .expect("edit the VirtualService");
    let mut seen = std::collections::BTreeSet::new();
    let mut fetched = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 3 && Instant::now() < deadline {
        if let Some((200, body)) = get(&format!("{PRODUCTPAGE}:9080"), "/productpage") {
            fetched += 1;
            for version in ["v1", "v2", "v3"] {
                if body.contains(&format!("<b>reviews</b> {version}")) {
                    seen.insert(version);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        seen.len(),
        3,
        "reviews versions seen in {fetched} pages: {seen:?}\n{}",
        demo.report()
    );

    // Both sides counted: productpage's sidecar as source, reviews-v2's as destination, and
    // productpage's own inbound side for the requests from the host.
    let outbound = requests(
        PRODUCTPAGE,
        &[
            "reporter=\"source\"",
            "source_workload=\"productpage-v1\"",
            "destination_service_name=\"reviews\"",
            "response_code=\"200\"",
        ],
    );
    let inbound_v2 = requests(
        REVIEWS_V2,
        &[
            "reporter=\"destination\"",
            "source_workload=\"productpage-v1\"",
            "destination_workload=\"reviews-v2\"",
            "response_code=\"200\"",
        ],
    );
    let page_inbound = requests(
        PRODUCTPAGE,
        &[
            "reporter=\"destination\"",
            "destination_workload=\"productpage-v1\"",
            "response_code=\"200\"",
        ],
    );
    assert!(
        outbound >= fetched as f64,
        "productpage's sidecar counted {outbound} calls to reviews for {fetched} pages"
    );
    assert!(
        inbound_v2 >= 1.0,
        "reviews-v2's sidecar counted {inbound_v2} calls from productpage"
    );
    assert!(
        page_inbound >= fetched as f64,
        "productpage's inbound side counted {page_inbound} of {fetched} pages"
    );

    // Ctrl-C: everything goes.
    demo.signal("INT");
    let status = demo.wait_exit(Duration::from_secs(60));
    assert!(
        status.success(),
        "demo after Ctrl-C: {status}\n{}",
        demo.report()
    );
    assert!(demo.output().contains("demo stopped"), "{}", demo.output());
    assert_nothing_left(dir.path(), &pids);
}

#[test]
fn a_killed_netns_demo_is_cleaned_up_by_the_next_run_which_runs_the_canary() {
    let Some((_serial, dir, mut first)) = start_running_demo(
        "a_killed_netns_demo_is_cleaned_up_by_the_next_run_which_runs_the_canary",
    ) else {
        return;
    };
    let pids = first.recorded_pids();
    assert_eq!(
        pids.len(),
        13,
        "lateend and six apps and sidecars: {pids:?}"
    );
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    assert!(
        pids.iter().all(|pid| alive(*pid)),
        "a SIGKILL leaves the processes behind"
    );
    assert_eq!(demo_namespaces().len(), 7, "and the namespaces");

    let mut second = Demo::start(
        dir.path(),
        &["--mode", "netns", "--scenario", "canary", "--duration", "1"],
    );
    let status = second.wait_exit(Duration::from_secs(240));
    let output = second.output();
    assert!(
        status.success(),
        "second run failed: {status}\n{}",
        second.report()
    );
    assert!(
        output.contains("ending 13 processes left by an earlier demo run"),
        "{output}"
    );
    assert!(
        output.contains("removing what an earlier demo run created"),
        "{output}"
    );
    assert!(
        output.contains(
            "v3 weight   0%: 200 requests, 0 failed; observed by productpage's sidecar: v1 100%"
        ),
        "{output}"
    );
    assert!(
        output.contains(
            "v3 weight 100%: 200 requests, 0 failed; observed by productpage's sidecar: v3 100%"
        ),
        "{output}"
    );
    let twenty = output
        .lines()
        .find(|line| line.contains("v3 weight  20%"))
        .unwrap_or_default();
    let v3_share: f64 = twenty
        .split("v3 ")
        .last()
        .and_then(|share| share.trim().trim_end_matches('%').parse().ok())
        .unwrap_or(0.0);
    assert!(
        (8.0..=35.0).contains(&v3_share),
        "20% step observed {v3_share}% on v3: {twenty}"
    );
    assert_nothing_left(dir.path(), &pids);
}
