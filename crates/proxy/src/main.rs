//! `lateen-proxy`: the sidecar.
//! - `lateen-proxy --config FILE` (or `lateen-proxy run --config FILE`) runs the proxy from a
//!   static YAML bootstrap (format: docs/proxy-config.md);
//! - `lateen-proxy capture ...` writes the pod's iptables rules (the injected init container
//!   runs it) and `lateen-proxy capture-cleanup ...` removes them;
//! - `lateen-proxy sidecar|router --discovery-address HOST:PORT` runs the proxy from the
//!   control plane over xDS (docs/proxy-xds.md);
//! - `lateen-proxy agent` gets the workload certificate from the mesh CA and serves it to an
//!   Envoy sidecar over SDS (docs/mesh-ca.md).
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lateen-proxy",
    version,
    about = "Lateen's sidecar proxy",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy from a static configuration file.
    Run(RunArgs),
    /// Redirect the pod's traffic to the proxy with iptables (Istio's istio-iptables).
    #[command(args_override_self = true)]
    Capture(lateen_capture::CaptureArgs),
    /// Remove the rules `capture` added.
    #[command(args_override_self = true)]
    CaptureCleanup(lateen_capture::CleanupArgs),
    /// Run as a sidecar configured by the control plane over xDS (identity from Istio's
    /// injected environment).
    Sidecar(lateen_proxy::xds::agent::XdsArgs),
    /// Run as a gateway (node type `router`) configured by the control plane over xDS.
    Router(lateen_proxy::xds::agent::XdsArgs),
    /// Get the workload certificate from the mesh CA and serve it to Envoy over SDS
    /// (pilot-agent's certificate role).
    Agent(lateen_proxy::xds::sds_agent::AgentArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Static configuration file (YAML).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Worker threads; defaults to the number of cores.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Distinct label sets kept per group of Istio metrics (HTTP, TCP); label sets beyond it
    /// are not recorded and are counted in `/stats` as `lateen.metrics_series_dropped`.
    #[arg(long, default_value_t = lateen_proxy::series_cap::DEFAULT_MAX_SERIES)]
    max_metric_series: usize,
    /// Check the configuration and exit.
    #[arg(long)]
    validate: bool,
    /// Log level or filter (RUST_LOG syntax).
    #[arg(long, default_value = "info", env = "LATEEN_LOG")]
    log_level: String,
    /// Folder of Istio's file-mounted workload certificate (`cert-chain.pem`, `key.pem`,
    /// `root-cert.pem`; Istio mounts it at /etc/certs) for mesh mTLS; reloaded when it changes.
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,
    #[command(flatten)]
    overload: lateen_proxy::overload::OverloadArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any thread starts: a thread's malloc arena is chosen when it first allocates.
    let workers = match &cli.command {
        None => cli.run.concurrency,
        Some(Command::Run(args)) => args.concurrency,
        Some(Command::Sidecar(args) | Command::Router(args)) => args.concurrency,
        Some(Command::Capture(_) | Command::CaptureCleanup(_) | Command::Agent(_)) => Some(1),
    };
    // The default is ProxyOptions' (one worker per core).
    lateen_alloc_tuning::limit_arenas(
        workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    );
    let result = match cli.command {
        None => run(cli.run),
        Some(Command::Run(args)) => run(args),
        Some(Command::Capture(args)) => lateen_capture::run(args).context("capture failed"),
        Some(Command::CaptureCleanup(args)) => {
            lateen_capture::run_cleanup(args).context("capture clean-up failed")
        }
        Some(Command::Sidecar(args)) => {
            run_xds(lateen_proxy::xds::identity::NodeType::Sidecar, args)
        }
        Some(Command::Router(args)) => run_xds(lateen_proxy::xds::identity::NodeType::Router, args),
        Some(Command::Agent(args)) => run_agent(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("lateen-proxy: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn run_xds(
    node_type: lateen_proxy::xds::identity::NodeType,
    args: lateen_proxy::xds::agent::XdsArgs,
) -> anyhow::Result<()> {
    init_logging(&args.log_level);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the main runtime")?;
    runtime.block_on(lateen_proxy::xds::agent::run(node_type, args))?;
    std::process::exit(0)
}

fn run_agent(args: lateen_proxy::xds::sds_agent::AgentArgs) -> anyhow::Result<()> {
    init_logging(&args.log_level);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the main runtime")?;
    runtime.block_on(lateen_proxy::xds::sds_agent::run(args))
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    init_logging(&args.log_level);
    let Some(config) = args.config else {
        anyhow::bail!("no configuration: pass --config FILE (see docs/proxy-config.md)");
    };
    let snapshot = lateen_proxy::config::bootstrap::load(&config)?;
    if args.validate {
        println!("{}: configuration is valid", config.display());
        return Ok(());
    }
    let mut options = lateen_proxy::proxy::ProxyOptions {
        max_metric_series: args.max_metric_series,
        ..Default::default()
    };
    if let Some(concurrency) = args.concurrency {
        options.concurrency = concurrency;
    }
    options.overload = args
        .overload
        .limits(&snapshot.source.runtime, options.concurrency);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the main runtime")?;
    if let Some(dir) = &args.cert_dir {
        let _entered = runtime.enter();
        options.certificates = Some(
            lateen_proxy::tls::files::watch_dir(dir)
                .with_context(|| format!("--cert-dir {}", dir.display()))?,
        );
    }
    runtime.block_on(lateen_proxy::proxy::run(snapshot, options))?;
    // Workers may still hold connections past the drain deadline; leave without waiting.
    std::process::exit(0)
}
