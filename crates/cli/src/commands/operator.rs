//! `lateen operator init|run|remove|dump` (istioctl operator): the in-cluster operator that
//! keeps IstioOperator resources installed. `init` installs it (namespace `lateen-operator`,
//! IstioOperator CRD, RBAC, a Deployment running `lateen operator run` from the
//! `<hub>/lateen-cli:<tag>` image), `run` is its reconcile loop, `remove` undoes `init`, and
//! `dump` prints what `init` applies.

use std::time::Duration;

use anyhow::Result;
use lateen_install::controller::Controller;
use lateen_install::operator_manifests::{self, OperatorOptions};
use lateen_install::{cluster, readiness};

use super::manifest::ClusterArgs;
use super::manifest::install_progress::{self, Progress, parse_duration};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Install the operator into the cluster (namespace lateen-operator).
    Init(InitArgs),
    /// Run the reconcile loop (what the operator's Deployment runs).
    Run(RunArgs),
    /// Remove the operator (the IstioOperator CRD stays unless --purge).
    Remove(RemoveArgs),
    /// Print the manifests `init` applies.
    Dump(DumpArgs),
}

/// How the operator's own install looks.
#[derive(clap::Args)]
struct OperatorFlags {
    /// Registry of the operator image (<hub>/lateen-cli:<tag>).
    #[arg(long, default_value = "docker.io/lateen")]
    hub: String,
    /// Tag of the operator image.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,
    /// Namespace whose IstioOperator resources the operator reconciles ("" for all).
    #[arg(long, default_value = "istio-system")]
    watched_namespace: String,
}

impl OperatorFlags {
    fn options(&self) -> OperatorOptions {
        OperatorOptions {
            hub: self.hub.clone(),
            tag: self.tag.clone(),
            watched_namespace: self.watched_namespace.clone(),
        }
    }
}

#[derive(clap::Args)]
struct InitArgs {
    #[command(flatten)]
    flags: OperatorFlags,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// How long to wait for the operator to become ready.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    readiness_timeout: Duration,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Reconcile only IstioOperators of this namespace (default: all namespaces).
    #[arg(long)]
    watched_namespace: Option<String>,
    /// Time between passes over the IstioOperators.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    interval: Duration,
    /// Re-apply unchanged resources this often (repairs manual changes).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    resync: Duration,
    /// Stop after this many passes (default: run until killed).
    #[arg(long)]
    max_passes: Option<u64>,
}

#[derive(clap::Args)]
struct RemoveArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Also delete the IstioOperator CRD, and with it every IstioOperator resource.
    #[arg(long)]
    purge: bool,
}

#[derive(clap::Args)]
struct DumpArgs {
    #[command(flatten)]
    flags: OperatorFlags,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Init(init) => run_init(init),
        Command::Run(run) => run_loop(run),
        Command::Remove(remove) => run_remove(remove),
        Command::Dump(dump) => {
            let objects = operator_manifests::render(&dump.flags.options());
            print!("{}", lateen_install::to_manifest(&objects)?);
            Ok(())
        }
    }
}

fn run_init(args: InitArgs) -> Result<()> {
    let objects = operator_manifests::render(&args.flags.options());
    let target = args.cluster.target();
    let mut progress = Progress::new(args.readiness_timeout);
    let report = cluster::block_on(async {
        let client = cluster::client(&target).await?;
        let applied = cluster::apply(&client, &objects).await?;
        progress.applied(&lateen_install::lifecycle::InstallOutcome {
            applied,
            pruned: Vec::new(),
        });
        readiness::wait(
            &client,
            &objects,
            args.readiness_timeout,
            install_progress::POLL_INTERVAL,
            |report| progress.update(report),
        )
        .await
    })?;
    progress.finish(&report)?;
    println!(
        "The operator reconciles IstioOperator resources in {}; create one with `kubectl apply -f <file>`",
        if args.flags.watched_namespace.is_empty() {
            "every namespace"
        } else {
            args.flags.watched_namespace.as_str()
        }
    );
    Ok(())
}

fn run_remove(args: RemoveArgs) -> Result<()> {
    let objects = operator_manifests::render(&OperatorOptions::default());
    let doomed: Vec<_> = objects
        .iter()
        .rev()
        .filter(|o| args.purge || o.kind() != "CustomResourceDefinition")
        .map(|o| lateen_install::inventory::ObjectRef::of(&o.object))
        .collect();
    let target = args.cluster.target();
    let purge = args.purge;
    let deleted = cluster::block_on(async {
        let client = cluster::client(&target).await?;
        if purge {
            // Without the operator nobody would take its finalizer off, and deleting the CRD
            // would hang on every IstioOperator.
            let released = lateen_install::controller::release_finalizers(&client).await?;
            println!("released {released} IstioOperator resources from the operator's finalizer");
        }
        cluster::delete_all(&client, &doomed).await
    })?;
    super::manifest::print_deleted(
        &deleted,
        (!args.purge)
            .then_some("The IstioOperator CRD and resources are kept; `--purge` removes them too"),
        "Operator removed",
    );
    Ok(())
}

fn run_loop(args: RunArgs) -> Result<()> {
    use std::io::Write;
    let target = args.cluster.target();
    let passes = args.max_passes.unwrap_or(u64::MAX);
    cluster::block_on(async {
        let client = cluster::client(&target).await?;
        // An empty namespace means all, as in the Deployment's flag.
        let watched = args.watched_namespace.clone().filter(|ns| !ns.is_empty());
        println!(
            "lateen operator: reconciling IstioOperator resources in {} every {:?}",
            watched.as_deref().unwrap_or("all namespaces"),
            args.interval
        );
        let mut controller = Controller::new(client, watched, args.resync);
        controller
            .run(args.interval, passes, |pass, outcome| {
                match outcome {
                    Ok(outcome) => {
                        for change in outcome.changes {
                            println!(
                                "IstioOperator {}: {} {}",
                                change.resource, change.status, change.message
                            );
                        }
                        for failure in outcome.failures {
                            eprintln!("pass {pass}: {failure}");
                        }
                    }
                    Err(err) => eprintln!("pass {pass}: {err}"),
                }
                let _ = std::io::stdout().flush();
            })
            .await;
        Ok(())
    })?;
    Ok(())
}
