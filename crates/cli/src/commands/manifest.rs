//! `lateen manifest generate` (istioctl manifest generate): every Kubernetes object an install
//! creates, as one YAML stream ordered for a single `kubectl apply -f -`, or one file per
//! component under a directory.
//!
//! Also the top-level `lateen install`, `uninstall` and `verify-install` (istioctl's), which are
//! reachable as `lateen manifest install|uninstall|verify-install` too: install asks (unless
//! `-y`), applies, prunes what the previous install recorded and no longer renders, and waits
//! for readiness with a progress display ([`install_progress`]); uninstall removes what the
//! record lists; verify-install checks each rendered object. The logic is in `lateen-install`
//! (`lifecycle`, `inventory`, `readiness`); this file asks, prints and maps errors.

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
#[derive(clap::Args, Clone)]
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
    pub fn target(&self) -> lateen_install::cluster::Target {
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
    /// Install a revision: objects are named with `-<R>` and labelled istio.io/rev=R.
    #[arg(short = 'r', long)]
    revision: Option<String>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "skip-confirmation")]
    yes: bool,
    /// Show what would be applied and pruned; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// How long to wait for the components to become ready (e.g. 300s, 5m, 1m30s).
    #[arg(long, default_value = "5m", value_parser = install_progress::parse_duration)]
    readiness_timeout: std::time::Duration,
}

#[derive(clap::Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    inputs: InputArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Uninstall this revision's install.
    #[arg(short = 'r', long)]
    revision: Option<String>,
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
    /// Verify this revision's install.
    #[arg(short = 'r', long)]
    revision: Option<String>,
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

/// The merged configuration, its objects and where they go.
struct Rendered {
    merged: lateen_install::Merged,
    objects: Vec<lateen_install::RenderedObject>,
    scope: lateen_install::InstallScope,
}

fn rendered(inputs: &InputArgs, revision: Option<&str>) -> Result<Rendered> {
    let mut inputs = inputs.to_inputs(None)?;
    if let Some(revision) = revision {
        inputs.sets.push(format!("revision={revision}"));
    }
    let merged = lateen_install::merge_inputs(&inputs)?;
    let objects = lateen_install::render(&merged.operator)?;
    let scope = lateen_install::install_scope(&merged.operator);
    Ok(Rendered {
        merged,
        objects,
        scope,
    })
}

/// One sentence saying what an install of `rendered` is.
fn describe(rendered: &Rendered) -> String {
    let mut titles: Vec<&str> = Vec::new();
    for object in &rendered.objects {
        let title = lateen_install::readiness::component_title(object.component);
        if !titles.contains(&title) {
            titles.push(title);
        }
    }
    let revision = if rendered.scope.revision.is_empty() {
        String::new()
    } else {
        format!(" revision {:?}", rendered.scope.revision)
    };
    format!(
        "the Lateen {} {:?} profile{revision} into namespace {} with components: {} ({} objects)",
        env!("CARGO_PKG_VERSION"),
        rendered.merged.profile,
        rendered.scope.namespace,
        if titles.is_empty() {
            "none".to_owned()
        } else {
            titles.join(", ")
        },
        rendered.objects.len()
    )
}

/// Asks on stdin; no answer (stdin closed or not given) is "no".
fn confirm(question: &str) -> Result<bool> {
    use std::io::Write;
    print!("{question} Proceed? (y/N) ");
    std::io::stdout().flush().context("writing to stdout")?;
    let mut answer = String::new();
    let read = std::io::stdin()
        .read_line(&mut answer)
        .context("reading the answer from stdin")?;
    if read == 0 {
        println!();
        anyhow::bail!(
            "no answer on stdin; nothing was installed (pass -y to install without asking)"
        );
    }
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

/// `lateen install`: renders, asks, server-side applies, prunes what the previous install left,
/// records the install and waits for every component to become ready.
pub fn run_install(args: InstallArgs) -> Result<()> {
    use lateen_install::{cluster, lifecycle, readiness};
    let rendered = rendered(&args.inputs, args.revision.as_deref())?;
    let target = args.cluster.target();
    if args.dry_run {
        println!("Dry run: would install {}.", describe(&rendered));
        for object in &rendered.objects {
            println!(
                "would apply {}",
                lateen_install::inventory::ObjectRef::of(&object.object)
            );
        }
        let plan = cluster::block_on(async {
            let client = cluster::client(&target).await?;
            lifecycle::plan_prune(&client, &rendered.scope, &rendered.objects).await
        });
        match plan {
            Ok(stale) => {
                for object in stale {
                    println!("would prune {object} (installed before, no longer rendered)");
                }
            }
            Err(err) => println!("(cannot tell what would be pruned: {err})"),
        }
        return Ok(());
    }
    let record = cluster::block_on(async {
        let client = cluster::client(&target).await?;
        lateen_install::inventory::read_record(&client, &rendered.scope).await
    })?;
    if let Some(record) = record
        && record.installed_by.starts_with("IstioOperator ")
    {
        println!(
            "warning: this install is managed by the operator ({}); it will re-apply that resource's configuration. Change the IstioOperator instead.",
            record.installed_by
        );
    }
    if !args.yes && !confirm(&format!("This will install {}.", describe(&rendered)))? {
        anyhow::bail!("installation cancelled");
    }
    let mut progress = install_progress::Progress::new(args.readiness_timeout);
    let report = cluster::block_on(async {
        let client = cluster::client(&target).await?;
        let outcome = lifecycle::install(
            &client,
            &rendered.scope,
            "lateen install",
            &rendered.objects,
        )
        .await?;
        progress.applied(&outcome);
        readiness::wait(
            &client,
            &rendered.objects,
            args.readiness_timeout,
            install_progress::POLL_INTERVAL,
            |report| progress.update(report),
        )
        .await
    })?;
    progress.finish(&report)
}

/// `lateen uninstall`: deletes what the install recorded (or, without a record, what the flags
/// render); CRDs and namespaces only with --purge.
pub fn run_uninstall(args: UninstallArgs) -> Result<()> {
    use lateen_install::{cluster, lifecycle};
    let rendered = rendered(&args.inputs, args.revision.as_deref())?;
    let target = args.cluster.target();
    let deleted = cluster::block_on(async {
        let client = cluster::client(&target).await?;
        lifecycle::uninstall(&client, &rendered.scope, &rendered.objects, args.purge).await
    })?;
    print_deleted(
        &deleted,
        (!args.purge)
            .then_some("CRDs and namespaces are kept; `lateen uninstall --purge` removes them too"),
        "Uninstall complete",
    );
    Ok(())
}

/// Lists what was deleted, says what was kept (`kept_note`) and sums up.
pub(crate) fn print_deleted(deleted: &[String], kept_note: Option<&str>, done: &str) {
    for object in deleted {
        println!("deleted {object}");
    }
    if let Some(note) = kept_note {
        println!("{note}");
    }
    println!("✔ {done}: {} objects deleted", deleted.len());
}

/// `lateen verify-install`: fails unless every rendered object exists and every Deployment is
/// ready; warns about objects the last install recorded that these flags do not render.
pub fn run_verify(args: VerifyArgs) -> Result<()> {
    use lateen_install::{cluster, inventory, lifecycle};
    let rendered = rendered(&args.inputs, args.revision.as_deref())?;
    let target = args.cluster.target();
    let (report, recorded) = cluster::block_on(async {
        let client = cluster::client(&target).await?;
        let report = cluster::verify(&client, &rendered.objects).await?;
        let recorded = inventory::read(&client, &rendered.scope).await?;
        Ok((report, recorded))
    })?;
    for label in &report.checked {
        if report.missing.contains(label) {
            println!("✘ {label}: missing");
        } else if let Some(reason) = report
            .not_ready
            .iter()
            .find(|n| n.starts_with(&format!("{label}: ")))
        {
            println!("✘ {reason}");
        } else {
            let prefix = format!("{label}: ");
            let drifted: Vec<&String> = report
                .drifted
                .iter()
                .filter(|d| d.starts_with(&prefix))
                .collect();
            if drifted.is_empty() {
                println!("✔ {label} checked successfully");
            }
            for difference in drifted {
                println!("! {difference}");
            }
        }
    }
    if !report.drifted.is_empty() {
        println!(
            "warning: {} fields differ from what these flags render; `lateen install` with the same flags puts them back",
            report.drifted.len()
        );
    }
    match recorded {
        None => println!(
            "note: no install record ({}) in namespace {}; was this installed by `lateen install`?",
            inventory::inventory_name(&rendered.scope),
            rendered.scope.namespace
        ),
        Some(recorded) => {
            for object in lifecycle::prunable(&recorded, &rendered.objects) {
                println!(
                    "warning: {object} was installed but these flags do not render it (another profile or --set?)"
                );
            }
        }
    }
    if !report.is_healthy() {
        anyhow::bail!(
            "{} of {} objects missing, {} not ready",
            report.missing.len(),
            report.checked.len(),
            report.not_ready.len()
        );
    }
    println!(
        "✔ {} objects checked: the installation is complete and ready",
        report.checked.len()
    );
    Ok(())
}

/// The progress display of `lateen install`, as istioctl's: a line per component, a spinner
/// while waiting when stdout is a terminal (plain lines otherwise), a tick when ready, and what is
/// not ready, with why, when the time limit passes.
pub(crate) mod install_progress {
    use std::collections::BTreeMap;
    use std::io::{IsTerminal, Write};
    use std::time::Duration;

    use anyhow::Result;
    use lateen_install::lifecycle::InstallOutcome;
    use lateen_install::readiness::ComponentReadiness;

    /// How often readiness is checked (and the spinner turns).
    pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
    const SPINNER: &[char] = &['|', '/', '-', '\\'];

    pub struct Progress {
        terminal: bool,
        timeout: Duration,
        done: Vec<&'static str>,
        /// The last waiting text printed per component (plain output prints changes only).
        said: BTreeMap<&'static str, String>,
        frame: usize,
    }

    impl Progress {
        pub fn new(timeout: Duration) -> Self {
            Progress {
                terminal: std::io::stdout().is_terminal(),
                timeout,
                done: Vec::new(),
                said: BTreeMap::new(),
                frame: 0,
            }
        }

        fn clear_line(&self) {
            if self.terminal {
                print!("\r\x1b[2K");
            }
        }

        pub fn applied(&mut self, outcome: &InstallOutcome) {
            for object in &outcome.pruned {
                println!("✔ Pruned {object} (no longer part of the install)");
            }
            println!(
                "✔ Applied {} objects (server-side apply, field manager \"lateen\")",
                outcome.applied.len()
            );
        }

        pub fn update(&mut self, report: &[ComponentReadiness]) {
            for component in report {
                if component.is_ready() && !self.done.contains(&component.component) {
                    self.clear_line();
                    println!("✔ {} installed", component.title());
                    self.done.push(component.component);
                }
            }
            let waiting: Vec<&ComponentReadiness> =
                report.iter().filter(|c| !c.is_ready()).collect();
            if self.terminal {
                if let Some(first) = waiting.first() {
                    let titles: Vec<&str> = waiting.iter().map(|c| c.title()).collect();
                    self.frame = (self.frame + 1) % SPINNER.len();
                    print!(
                        "\r\x1b[2K{} Processing resources for {}. Waiting for {}",
                        SPINNER[self.frame],
                        titles.join(", "),
                        first
                            .waiting
                            .first()
                            .map(String::as_str)
                            .unwrap_or_default()
                    );
                }
            } else {
                for component in waiting {
                    let text = component.waiting.join("; ");
                    if self.said.get(component.component) != Some(&text) {
                        println!("- Waiting for {}: {text}", component.title());
                        self.said.insert(component.component, text);
                    }
                }
            }
            let _ = std::io::stdout().flush();
        }

        pub fn finish(&mut self, report: &[ComponentReadiness]) -> Result<()> {
            self.clear_line();
            let waiting: Vec<&ComponentReadiness> =
                report.iter().filter(|c| !c.is_ready()).collect();
            if waiting.is_empty() {
                println!("✔ Installation complete");
                return Ok(());
            }
            for component in &waiting {
                println!(
                    "✘ {} is not ready after {}:",
                    component.title(),
                    show_duration(self.timeout)
                );
                for item in &component.waiting {
                    println!("  - {item}");
                }
            }
            let titles: Vec<&str> = waiting.iter().map(|c| c.title()).collect();
            anyhow::bail!(
                "the installation was applied, but {} did not become ready within {} (see above; `lateen verify-install` checks again)",
                titles.join(", "),
                show_duration(self.timeout)
            )
        }
    }

    fn show_duration(duration: Duration) -> String {
        let seconds = duration.as_secs();
        match (seconds / 60, seconds % 60) {
            (0, s) => format!("{s}s"),
            (m, 0) => format!("{m}m"),
            (m, s) => format!("{m}m{s}s"),
        }
    }

    /// `300`, `300s`, `5m`, `1m30s`, `1h`, `500ms`.
    pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
        let bad = || format!("{text:?} is not a duration (e.g. 300s, 5m, 1m30s)");
        if let Ok(seconds) = text.parse::<u64>() {
            return Ok(Duration::from_secs(seconds));
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = match &rest[..unit_len] {
                "ms" => Duration::from_millis(number),
                "s" => Duration::from_secs(number),
                "m" => Duration::from_secs(number * 60),
                "h" => Duration::from_secs(number * 3600),
                _ => return Err(bad()),
            };
            total += unit;
            rest = &rest[unit_len..];
        }
        if text.is_empty() {
            return Err(bad());
        }
        Ok(total)
    }
}
