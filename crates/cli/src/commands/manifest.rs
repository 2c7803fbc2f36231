//! `lateen manifest generate` (istioctl manifest generate): every Kubernetes object an install
//! creates, as one YAML stream ordered for a single `kubectl apply -f -`, or one file per
//! component under a directory.

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
    let Command::Generate(generate) = args.command;
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
