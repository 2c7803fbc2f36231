//! `lateen manifest generate` (istioctl manifest generate): every Kubernetes object an install
//! creates, as one YAML stream ordered for a single `kubectl apply -f -`, or one file per
//! component under a directory.
//!
//! Also `install`, `uninstall` and `verify-install` (istioctl install/uninstall/verify-install),
//! reachable as `lateen manifest install|uninstall|verify-install`; their [`InstallArgs`],
//! [`UninstallArgs`] and [`VerifyArgs`] with [`run_install`], [`run_uninstall`] and
//! [`run_verify`] are ready to be top-level `lateen install ...` commands.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::profile::InputArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Render the manifests of an install.
    Generate(GenerateArgs),
    /// Apply the install to the cluster (server-side apply, field manager "lateen").
    Install(InstallArgs),
    /// Remove the install from the cluster (CRDs and namespaces stay unless --purge).
    Uninstall(UninstallArgs),
    /// Check that every object of the install exists and its Deployments are ready.
    VerifyInstall(VerifyArgs),
}

/// Which cluster to talk to.
#[derive(clap::Args)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster account).
    #[arg(long = "kubeconfig", short = 'c')]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long = "context")]
    context: Option<String>,
    /// API server URL used directly, without credentials (e.g. from `kubectl proxy`).
    #[arg(long = "server")]
    server: Option<String>,
}

impl ClusterArgs {
    fn target(&self) -> lateen_install::cluster::Target {
        lateen_install::cluster::Target {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            server: self.server.clone(),
        }
    }
}

#[derive(clap::Args)]
pub struct InstallArgs {
    #[command(flatten)]
    inputs: InputArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(clap::Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    inputs: InputArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Also delete the CRDs (and with them every mesh config) and the namespaces.
    #[arg(long)]
    purge: bool,
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    inputs: InputArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(clap::Args)]
struct GenerateArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// Write DIR/<Component>/<Component>.yaml files instead of printing one stream.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let generate = match args.command {
        Command::Generate(generate) => generate,
        Command::Install(install) => return run_install(install),
        Command::Uninstall(uninstall) => return run_uninstall(uninstall),
        Command::VerifyInstall(verify) => return run_verify(verify),
    };
    let merged = lateen_install::merge_inputs(&generate.inputs.to_inputs(None)?)?;
    let objects = lateen_install::render(&merged.operator)?;
    match &generate.output {
        None => print!("{}", lateen_install::to_manifest(&objects)?),
        Some(dir) => {
            let mut components: Vec<&'static str> = objects.iter().map(|o| o.component).collect();
            components.dedup();
            components.sort_unstable();
            components.dedup();
            for component in components {
                let part: Vec<_> = objects
                    .iter()
                    .filter(|o| o.component == component)
                    .cloned()
                    .collect();
                let folder = dir.join(component);
                std::fs::create_dir_all(&folder)
                    .with_context(|| format!("creating {}", folder.display()))?;
                let file = folder.join(format!("{component}.yaml"));
                std::fs::write(&file, lateen_install::to_manifest(&part)?)
                    .with_context(|| format!("writing {}", file.display()))?;
            }
        }
    }
    Ok(())
}

fn rendered(inputs: &InputArgs) -> Result<Vec<lateen_install::RenderedObject>> {
    let merged = lateen_install::merge_inputs(&inputs.to_inputs(None)?)?;
    Ok(lateen_install::render(&merged.operator)?)
}

/// `lateen install`: renders and server-side applies every object.
pub fn run_install(args: InstallArgs) -> Result<()> {
    use lateen_install::cluster;
    let objects = rendered(&args.inputs)?;
    let target = args.cluster.target();
    let applied = cluster::block_on(async {
        let client = cluster::client(&target).await?;
        cluster::apply(&client, &objects).await
    })?;
    for object in &applied {
        println!("applied {object}");
    }
    println!("Installation complete: {} objects applied", applied.len());
    Ok(())
}

/// `lateen uninstall`: deletes what the install created.
pub fn run_uninstall(args: UninstallArgs) -> Result<()> {
    use lateen_install::cluster;
    let objects = rendered(&args.inputs)?;
    let target = args.cluster.target();
    let deleted = cluster::block_on(async {
        let client = cluster::client(&target).await?;
        cluster::uninstall(&client, &objects, args.purge).await
    })?;
    for object in &deleted {
        println!("deleted {object}");
    }
    println!("Uninstall complete: {} objects deleted", deleted.len());
    Ok(())
}

/// `lateen verify-install`: fails unless every object exists and every Deployment is ready.
pub fn run_verify(args: VerifyArgs) -> Result<()> {
    use lateen_install::cluster;
    let objects = rendered(&args.inputs)?;
    let target = args.cluster.target();
    let report = cluster::block_on(async {
        let client = cluster::client(&target).await?;
        cluster::verify(&client, &objects).await
    })?;
    for missing in &report.missing {
        println!("missing {missing}");
    }
    for not_ready in &report.not_ready {
        println!("not ready {not_ready}");
    }
    if !report.is_healthy() {
        anyhow::bail!(
            "{} of {} objects missing, {} Deployments not ready",
            report.missing.len(),
            report.checked.len(),
            report.not_ready.len()
        );
    }
    println!(
        "{} objects checked: the installation is complete and ready",
        report.checked.len()
    );
    Ok(())
}
