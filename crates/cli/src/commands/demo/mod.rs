//! `lateen demo`: a whole mesh on this machine. lateend with a folder of Istio YAML, a
//! Bookinfo-shaped application (productpage → details, reviews v1/v2/v3 → ratings; the
//! `lateen-sample-app` binary), and a `lateen-proxy sidecar` beside every workload.
//!
//! Interception is NONE (explicit listeners from Sidecar resources): each workload has its
//! own loopback address (127.0.10.N, outbound listener on 127.0.20.N), so the demo needs no
//! root and no iptables. Ctrl-C stops everything; a run that was killed leaves a pid file
//! that the next run uses to clean up first.

mod http;
mod mesh;
mod processes;

use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;

use mesh::{SERVICE_PORT, WORKLOADS, Workload};
use processes::Supervisor;

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
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Scenario {
    /// Shift reviews traffic to v3 in steps (0 → 20 → 100 %) and print the split the
    /// proxies observed at each step.
    Canary,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    let binaries = std::env::current_exe()?.parent().map(PathBuf::from).context("cannot find the lateen binary's folder")?;
    for binary in ["lateend", "lateen-proxy", "lateen-sample-app"] {
        anyhow::ensure!(binaries.join(binary).exists(), "{} is missing: build it with `cargo build --release` (the demo runs the binaries beside `lateen`)", binaries.join(binary).display());
    }
    let config_dir = args.dir.join("config");
    write_config(&config_dir, args.reset)?;
    let mut supervisor = Supervisor::new(&args.dir)?;
    supervisor.clean_leftovers();

    supervisor.spawn(
        "lateend",
        binaries.join("lateend"),
        &[
            "--config-dir", &config_dir.to_string_lossy(),
            "--xds-address", "127.0.0.1:15010", "--xds-tls-address", "127.0.0.1:15012",
            "--debug-address", "127.0.0.1:15014", "--webhook-address", "127.0.0.1:15017",
            "--registration-grace", "2s",
        ],
        &[],
    )?;
    for workload in WORKLOADS {
        let calls: Vec<String> = workload
            .calls
            .iter()
            .map(|(service, path)| format!("http://{service}:{SERVICE_PORT}{path}@{}:{SERVICE_PORT}", workload.egress_address()))
            .collect();
        let listen = format!("127.0.0.1:{}", workload.app_port());
        let mut app_args = vec!["--name", workload.service, "--version", workload.version, "--listen", &listen];
        for call in &calls {
            app_args.extend(["--call", call.as_str()]);
        }
        supervisor.spawn(&format!("{}-app", workload.name()), binaries.join("lateen-sample-app"), &app_args, &[])?;
        spawn_sidecar(&mut supervisor, &binaries, workload)?;
    }

    let ready = wait_until_ready().await;
    if let Err(err) = ready {
        supervisor.stop().await;
        return Err(err.context(format!("the demo did not come up; logs are in {}", args.dir.join("logs").display())));
    }
    print_summary(&args.dir, &config_dir);

    let outcome = match args.scenario {
        Some(Scenario::Canary) => canary(&config_dir).await,
        None => Ok(()),
    };
    if outcome.is_ok() {
        match args.duration {
            Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
            None => wait_for_interrupt().await,
        }
    }
    supervisor.stop().await;
    println!("demo stopped: every process ended");
    outcome
}

fn write_config(config_dir: &std::path::Path, reset: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(config_dir).with_context(|| format!("creating {}", config_dir.display()))?;
    for (name, text) in mesh::config_files() {
        let path = config_dir.join(name);
        if reset || !path.exists() {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

fn spawn_sidecar(supervisor: &mut Supervisor, binaries: &std::path::Path, workload: &Workload) -> anyhow::Result<()> {
    let address = workload.address();
    let labels = format!(r#"{{"app":"{}","version":"{}"}}"#, workload.service, workload.version);
    let pod_ports = format!(r#"[{{"name":"http","containerPort":{SERVICE_PORT},"protocol":"TCP"}}]"#);
    let env = [
        ("POD_NAME", format!("{}-demo", workload.name())),
        ("POD_NAMESPACE", "default".to_string()),
        ("INSTANCE_IP", address.clone()),
        ("SERVICE_ACCOUNT", format!("bookinfo-{}", workload.service)),
        ("ISTIO_META_INTERCEPTION_MODE", "NONE".to_string()),
        ("ISTIO_META_WORKLOAD_NAME", workload.name()),
        ("ISTIO_METAJSON_LABELS", labels),
        ("ISTIO_META_POD_PORTS", pod_ports),
        ("LATEEN_LOG", "warn".to_string()),
    ];
    let admin = format!("{address}:15000");
    let health = format!("{address}:15021");
    let metrics = format!("{address}:15090");
    supervisor.spawn(
        &format!("{}-proxy", workload.name()),
        binaries.join("lateen-proxy"),
        &["sidecar", "--discovery-address", "127.0.0.1:15010", "--admin-address", &admin, "--health-address", &health, "--metrics-address", &metrics, "--concurrency", "1"],
        &env,
    )
}

async fn wait_until_ready() -> anyhow::Result<()> {
    for workload in WORKLOADS {
        let address = format!("{}:15021", workload.address());
        http::wait_for(&format!("{} sidecar ready", workload.name()), Duration::from_secs(30), move || http::get(&address, "/healthz/ready", None).map(|(status, _)| status == 200).unwrap_or(false)).await?;
    }
    let productpage = format!("{}:{SERVICE_PORT}", WORKLOADS[0].address());
    http::wait_for("productpage answering through the mesh", Duration::from_secs(30), move || {
        http::get(&productpage, "/productpage", Some("productpage")).map(|(status, body)| status == 200 && body.contains("reviews")).unwrap_or(false)
    })
    .await
}

fn print_summary(dir: &std::path::Path, config_dir: &std::path::Path) {
    let productpage = &WORKLOADS[0];
    println!("\nLateen demo is running (interception NONE: explicit listeners, no iptables).\n");
    println!("  productpage     http://{}:{SERVICE_PORT}/productpage", productpage.address());
    println!("  control plane   lateend: xDS 127.0.0.1:15010, debug http://127.0.0.1:15014/debug/syncz, metrics http://127.0.0.1:15014/metrics");
    println!("  workloads       (app → its sidecar's inbound listener; metrics; admin)");
    for workload in WORKLOADS {
        println!(
            "    {:<15} app 127.0.0.1:{}  inbound {}:{SERVICE_PORT}  metrics http://{}:15090/stats/prometheus  admin http://{}:15000/config_dump",
            workload.name(),
            workload.app_port(),
            workload.address(),
            workload.address(),
            workload.address()
        );
    }
    println!("  config folder   {} (edit virtual-service-reviews.yaml to move traffic)", config_dir.display());
    println!("  logs            {}", dir.join("logs").display());
    println!("\nPress Ctrl-C to stop.");
}

/// Counts of requests from productpage's sidecar to reviews, by destination version.
fn reviews_counts() -> std::collections::BTreeMap<String, f64> {
    let address = format!("{}:15090", WORKLOADS[0].address());
    let mut counts = std::collections::BTreeMap::new();
    let Ok((_, text)) = http::get(&address, "/stats/prometheus", None) else { return counts };
    for line in text.lines().filter(|line| line.starts_with("istio_requests_total{") && line.contains("destination_service_name=\"reviews\"") && line.contains("reporter=\"source\"")) {
        let version = line.split("destination_version=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("unknown");
        let value: f64 = line.rsplit(' ').next().and_then(|value| value.parse().ok()).unwrap_or(0.0);
        *counts.entry(version.to_string()).or_insert(0.0) += value;
    }
    counts
}

async fn canary(config_dir: &std::path::Path) -> anyhow::Result<()> {
    let productpage = format!("{}:{SERVICE_PORT}", WORKLOADS[0].address());
    println!("\nScenario canary: reviews traffic moves from v1 to v3 in steps.");
    for share in [0u32, 20, 100] {
        let weights = [("v1", 100 - share), ("v3", share)];
        std::fs::write(config_dir.join("virtual-service-reviews.yaml"), mesh::reviews_virtual_service(&weights))?;
        // lateend polls the folder every 500 ms and debounces pushes; give it time to land.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let before = reviews_counts();
        let requests = 200;
        let mut failed = 0;
        for _ in 0..requests {
            match tokio::task::spawn_blocking({
                let productpage = productpage.clone();
                move || http::get(&productpage, "/productpage", Some("productpage"))
            })
            .await?
            {
                Ok((200, _)) => {}
                _ => failed += 1,
            }
        }
        let after = reviews_counts();
        let observed: Vec<String> = after
            .iter()
            .map(|(version, count)| (version, count - before.get(version).copied().unwrap_or(0.0)))
            .filter(|(_, delta)| *delta > 0.0)
            .map(|(version, delta)| format!("{version} {:.0}%", delta * 100.0 / requests as f64))
            .collect();
        println!("  v3 weight {share:>3}%: {requests} requests, {failed} failed; observed by productpage's sidecar: {}", observed.join(", "));
    }
    Ok(())
}

async fn wait_for_interrupt() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
