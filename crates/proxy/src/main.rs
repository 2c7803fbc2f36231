//! `lateen-proxy`: the sidecar. `lateen-proxy --config FILE` runs the proxy from a static
//! YAML bootstrap (format: docs/proxy-config.md).
#![forbid(unsafe_code)]

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "lateen-proxy", version, about = "Lateen's sidecar proxy")]
struct Cli {
    /// Static configuration file (YAML).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// Worker threads; defaults to the number of cores.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Check the configuration and exit.
    #[arg(long)]
    validate: bool,
    /// Log level or filter (RUST_LOG syntax).
    #[arg(long, default_value = "info", env = "LATEEN_LOG")]
    log_level: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log_level).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("lateen-proxy: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let snapshot = lateen_proxy::config::bootstrap::load(&cli.config)?;
    if cli.validate {
        println!("{}: configuration is valid", cli.config.display());
        return Ok(());
    }
    let mut options = lateen_proxy::proxy::ProxyOptions::default();
    if let Some(concurrency) = cli.concurrency {
        options.concurrency = concurrency;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the main runtime")?;
    runtime.block_on(lateen_proxy::proxy::run(snapshot, options))?;
    // Workers may still hold connections past the drain deadline; leave without waiting.
    std::process::exit(0)
}
