//! `lateen`, the mesh's command line (Istio: istioctl). Each subcommand lives in its own module
//! under `commands/`; this file only parses the command line and maps errors to exit codes.
#![forbid(unsafe_code)]

mod commands;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "lateen", version, about = "Lateen service mesh command line")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole mesh on this machine: lateend, a Bookinfo-shaped app and its sidecars.
    Demo(commands::demo::Args),
    /// Inject the lateen-proxy sidecar into Kubernetes workloads (like `istioctl kube-inject`).
    KubeInject(commands::kube_inject::Args),
    /// List, dump and diff installation profiles.
    Profile(commands::profile::Args),
    /// Render the Kubernetes manifests of an installation.
    Manifest(commands::manifest::Args),
    /// Install the mesh into the cluster (server-side apply, field manager `lateen`).
    Install(commands::manifest::InstallArgs),
    /// Remove what `install` created (CRDs only with --purge).
    Uninstall(commands::manifest::UninstallArgs),
    /// Check every rendered object against the cluster.
    VerifyInstall(commands::manifest::VerifyArgs),
    /// Install, run, remove or dump the in-cluster operator that reconciles IstioOperators.
    Operator(commands::operator::Args),
    /// Print the xDS sync status of every connected proxy (like `istioctl proxy-status`).
    ProxyStatus(commands::proxy_status::Args),
    /// Print the configuration lateend serves one proxy (like `istioctl proxy-config`).
    ProxyConfig(commands::proxy_config::Args),
    /// Access web UIs: Lateen's own dashboard (served by lateend), or an addon's in Kubernetes.
    #[command(visible_aliases = ["dash", "d"])]
    Dashboard(commands::dashboard::Args),
    /// Analyze Istio configuration files for problems (like `istioctl analyze` on files).
    Analyze(commands::analyze::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo(args) => commands::demo::run(args),
        Command::KubeInject(args) => commands::kube_inject::run(args),
        Command::Profile(args) => commands::profile::run(args),
        Command::Manifest(args) => commands::manifest::run(args),
        Command::Install(args) => commands::manifest::run_install(args),
        Command::Uninstall(args) => commands::manifest::run_uninstall(args),
        Command::VerifyInstall(args) => commands::manifest::run_verify(args),
        Command::Operator(args) => commands::operator::run(args),
        Command::ProxyStatus(args) => commands::proxy_status::run(args),
        Command::ProxyConfig(args) => commands::proxy_config::run(args),
        Command::Dashboard(args) => commands::dashboard::run(args),
        Command::Analyze(args) => commands::analyze::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
