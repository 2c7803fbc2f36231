//! `lateen-xds-load`: the control-plane benchmark's load tool (issue 3).
//!
//! - `generate --dir D`: writes the benchmark mesh (1000 ServiceEntries with three STATIC
//!   endpoints each in 198.18.0.0/15, DestinationRules and weighted VirtualServices).
//! - `run --xds ADDR --config-dir D --lateend-pid PID`: connects N simulated REDIRECT-mode
//!   sidecars (real ADS clients, one gRPC connection each) to lateend, waits until all are
//!   synced, then rewrites one VirtualService's weights a few times and measures, for every
//!   proxy, the file write to the proxy receiving and ACKing the new route; reads lateend's RSS
//!   and CPU time from /proc around it. Prints one JSON object on stdout, progress on stderr.
//! - `kube --kubeconfig K --xds ADDR --lateend-pid PID` (issue 12): writes Services, Pods and
//!   EndpointSlices through a real API server that lateend reads, connects the proxies, then
//!   changes endpoints at a fixed rate and measures each EndpointSlice write to every proxy's
//!   receipt of it, with lateend's CPU and RSS.
//!
//! Owns: bench/xds-load. Must not touch: lateend or the xDS crate (it only uses their public
//! interfaces). Only talks to the address it is given (127.0.0.1 in bench/xds.sh).
#![forbid(unsafe_code)]

mod kube_mesh;
mod kube_run;
mod procstat;
mod route_scan;
mod run;
mod sim;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use lateen_xds_load::generate;

#[derive(Parser)]
#[command(about = "Simulated sidecars against lateend: push latency, RSS and CPU per proxy")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the benchmark mesh into a folder.
    Generate {
        /// Folder to write (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// ServiceEntries (svc-N.bench.svc.cluster.local).
        #[arg(long, default_value_t = 1000)]
        services: u32,
        /// Services that also get a DestinationRule (subsets v1, v2) and a weighted
        /// VirtualService.
        #[arg(long, default_value_t = 100)]
        routed: u32,
        /// Also route by the caller's `app` label (a `sourceLabels` match), so that proxies of
        /// different workloads get different configurations.
        #[arg(long)]
        select_by_app: bool,
    },
    /// Connect the simulated proxies and measure.
    Run(run::RunArgs),
    /// Kubernetes: write the cluster state through an API server, connect the proxies, churn
    /// endpoints and measure.
    Kube(kube_run::KubeRunArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate {
            dir,
            services,
            routed,
            select_by_app,
        } => {
            let mut files = generate::write_mesh(&dir, services, routed)?;
            if select_by_app {
                files += generate::write_app_selector(&dir, services)?;
            }
            eprintln!(
                "[xds-load] wrote {files} files ({services} services, {routed} routed) to {}",
                dir.display()
            );
            Ok(())
        }
        Command::Run(args) => print_result(run::run(args)),
        Command::Kube(args) => print_result(kube_run::run(args)),
    }
}

/// Runs a measurement on a multi-threaded runtime and prints its JSON result on stdout.
fn print_result(
    measurement: impl std::future::Future<Output = anyhow::Result<serde_json::Value>>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(measurement)?;
    println!("{result}");
    Ok(())
}
