//! `lateen demo`: a whole mesh on this machine. lateend with a folder of Istio YAML, a
//! Bookinfo-shaped application (productpage → details, reviews v1/v2/v3 → ratings; the
//! `lateen-sample-app` binary), and a `lateen-proxy sidecar` beside every workload.
//!
//! Two modes (`--mode`, see `mode.rs`): as root on Linux each workload is a "pod" in its own
//! network namespace with Istio's capture rules and its sidecar running as UID 1337
//! (interception REDIRECT), lateend on the host; otherwise each workload has its own loopback
//! address and explicit listeners (interception NONE), so no root and no iptables are needed.
//! Ctrl-C, the end of `--duration` or an error stops every process and removes every
//! namespace and link; a run that was killed leaves a record (DIR/pids, DIR/created) that
//! the next run uses to clean up first.

mod binaries;
mod config;
mod http;
mod identity;
mod leftovers;
mod mesh;
mod mesh_config;
mod mode;
mod netns;
mod network;
mod processes;
mod scenario;
mod state;
mod summary;
mod traffic;
mod workloads;
mod zero_trust;

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Duration;

use identity::MeshCaFiles;
use mesh::{SERVICE_PORT, WORKLOADS};
use mode::{Mode, ModeArg};
use processes::Supervisor;
use state::Record;
use workloads::Programs;

#[derive(clap::Args)]
pub struct Args {
    /// Folder for the demo's configuration (DIR/config), logs (DIR/logs) and state.
    #[arg(long, default_value = "lateen-demo")]
    dir: PathBuf,
    /// Rewrite the configuration folder from the built-in one, dropping your edits.
    #[arg(long)]
    reset: bool,
    /// A scripted walk-through to run once the mesh is up.
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long)]
    duration: Option<u64>,
    /// Where the workloads run: network namespaces with iptables capture (needs root on
    /// Linux), loopback addresses with explicit listeners, or auto (namespaces when possible).
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    mode: ModeArg,
    /// Mesh config for the demo's lateend, as `istioctl install --set`, e.g.
    /// `--set meshConfig.accessLogFile=/dev/stdout` (each sidecar's access log then goes to
    /// its log in DIR/logs). Repeatable.
    #[arg(long = "set", value_name = "meshConfig.KEY=VALUE")]
    set: Vec<String>,
    /// Send this many requests a second to productpage while the demo runs (0: none), so the
    /// dashboard's service graph shows live rates.
    #[arg(long, default_value_t = 0, value_name = "RPS")]
    traffic: u32,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Scenario {
    /// Shift reviews traffic to v3 in steps (0 → 20 → 100 %) and print the split the
    /// proxies observed at each step.
    Canary,
    /// Show auto mTLS (both principals in the metrics), a PeerAuthentication STRICT refusing
    /// a plaintext call from outside the mesh, and an AuthorizationPolicy denying one caller
    /// with 403 while another passes (loopback mode).
    ZeroTrust,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

/// What a run has started and created, for stopping it.
struct Demo {
    supervisor: Supervisor,
    record: Record,
}

impl Demo {
    async fn stop(&mut self) {
        self.supervisor.stop().await;
        self.record.undo();
    }
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    // Installed first, so a Ctrl-C during start-up also ends in a clean stop.
    let mut interrupt = Interrupt::new()?;
    let mode_arg = zero_trust::mode_for(
        args.scenario
            .is_some_and(|s| matches!(s, Scenario::ZeroTrust)),
        args.mode,
    )?;
    let (mode, fallback) = mode::choose(mode_arg)?;
    if let Some(why) = fallback {
        println!(
            "capture is off: {why}; running on loopback addresses with explicit listeners (interception NONE)"
        );
    }
    let folder = binaries::folder()?;
    let config_dir = args.dir.join("config");
    config::write(&config_dir, args.reset, mode)?;
    mesh_config::write(&config_dir, &args.set)?;
    let supervisor = Supervisor::new(&args.dir)?;
    if mode == Mode::Netns {
        leftovers::ensure_no_other_demo()?;
    }
    supervisor.clean_leftovers();
    let mut record = Record::open(&args.dir);
    if !record.is_empty() {
        println!(
            "removing what an earlier demo run created (recorded in {})",
            args.dir.join("created").display()
        );
        record.undo();
    }
    if mode == Mode::Netns {
        leftovers::sweep_unrecorded()?;
    }

    let mut demo = Demo { supervisor, record };
    let outcome = tokio::select! {
        outcome = run_mesh(&mut demo, &args, &folder, &config_dir, mode) => outcome,
        () = interrupt.wait() => Ok(()),
    };
    demo.stop().await;
    match mode {
        Mode::Loopback => println!("demo stopped: every process ended"),
        Mode::Netns => println!("demo stopped: every process ended, namespaces and links removed"),
    }
    outcome
}

/// Starts the mesh, prints where it is, runs the scenario, then waits out `--duration` (or
/// forever: the caller's Ctrl-C ends it).
async fn run_mesh(
    demo: &mut Demo,
    args: &Args,
    folder: &Path,
    config_dir: &Path,
    mode: Mode,
) -> anyhow::Result<()> {
    let logs = args.dir.join("logs");
    start(demo, &args.dir, folder, config_dir, mode)
        .await
        .with_context(|| format!("starting the demo (logs in {})", logs.display()))?;
    wait_until_ready(&mut demo.supervisor, mode)
        .await
        .with_context(|| format!("the demo did not come up; logs are in {}", logs.display()))?;
    summary::print(&args.dir, config_dir, mode);
    // Dropped (and so stopped) when the demo ends, however it ends.
    let _traffic =
        (args.traffic > 0).then(|| AbortOnDrop(tokio::spawn(traffic::run(mode, args.traffic))));
    match args.scenario {
        Some(Scenario::Canary) => scenario::canary(config_dir, mode).await?,
        Some(Scenario::ZeroTrust) => zero_trust::run(config_dir, mode).await?,
        None => {}
    }
    match args.duration {
        Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
        None => std::future::pending().await,
    }
    Ok(())
}

/// A task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn start(
    demo: &mut Demo,
    dir: &Path,
    folder: &Path,
    config_dir: &Path,
    mode: Mode,
) -> anyhow::Result<()> {
    let mut programs = Programs {
        lateend: folder.join("lateend"),
        app: folder.join("lateen-sample-app"),
        proxy: folder.join("lateen-proxy"),
    };
    let mesh_ca = MeshCaFiles::new(dir);
    if mode == Mode::Loopback {
        workloads::start_lateend(&mut demo.supervisor, &programs, config_dir, &mesh_ca, mode)?;
        let credentials = mesh_ca.credentials(None).await?;
        return workloads::start_all(&mut demo.supervisor, &programs, &credentials, mode);
    }
    // lateend listens on the host's end of the demo network, so that comes first.
    network::create_hub(&mut demo.record)?;
    workloads::start_lateend(&mut demo.supervisor, &programs, config_dir, &mesh_ca, mode)?;
    let capture_tool = programs.proxy.clone();
    programs.proxy = binaries::proxy_for_uid_1337(folder, &mut demo.record)?;
    let credentials = mesh_ca.credentials(programs.proxy.parent()).await?;
    for workload in WORKLOADS {
        network::create_pod(&mut demo.record, workload, &capture_tool)?;
        workloads::start(
            &mut demo.supervisor,
            &programs,
            &credentials,
            workload,
            mode,
        )?;
    }
    Ok(())
}

/// Waits for every sidecar and then the page; a process that died is named rather than the
/// timeout it caused.
async fn wait_until_ready(supervisor: &mut Supervisor, mode: Mode) -> anyhow::Result<()> {
    for workload in WORKLOADS {
        let address = format!("{}:15021", workload.address(mode));
        let ready = http::wait_for(
            &format!("{} sidecar ready", workload.name()),
            Duration::from_secs(30),
            move || {
                http::get(&address, "/healthz/ready", None)
                    .map(|(status, _)| status == 200)
                    .unwrap_or(false)
            },
        )
        .await;
        supervisor.ensure_running()?;
        ready?;
    }
    let productpage = format!("{}:{SERVICE_PORT}", WORKLOADS[0].address(mode));
    let ready = http::wait_for(
        "productpage answering through the mesh",
        Duration::from_secs(30),
        move || {
            http::get(&productpage, "/productpage", Some("productpage"))
                .map(|(status, body)| status == 200 && body.contains("<b>reviews</b>"))
                .unwrap_or(false)
        },
    )
    .await;
    supervisor.ensure_running()?;
    ready
}

/// Ctrl-C (SIGINT) or SIGTERM.
struct Interrupt {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Interrupt {
    fn new() -> anyhow::Result<Interrupt> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Interrupt {
            interrupt: signal(SignalKind::interrupt()).context("installing the Ctrl-C handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
