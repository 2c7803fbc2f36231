//! `lateen profile list|dump|diff` (istioctl profile): the built-in installation profiles and
//! the IstioOperator they give once `-f` files and `--set` flags are laid over them.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, Result};
use lateen_install::diff::{DiffOptions, unified};
use lateen_install::{InputFile, Inputs, profiles};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// List the built-in profiles.
    List,
    /// Print the merged IstioOperator of a profile with -f files and --set flags laid over it.
    Dump(DumpArgs),
    /// Show how two profiles differ (unified diff of their merged documents).
    Diff(DiffArgs),
}

/// The layering inputs shared by `profile dump` and `manifest generate`.
#[derive(clap::Args)]
pub struct InputArgs {
    /// IstioOperator overlay file, applied in order after the profile ("-" reads stdin).
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Override one field, e.g. meshConfig.accessLogFile=/dev/stdout or profile=demo.
    #[arg(short = 's', long = "set")]
    pub sets: Vec<String>,
}

impl InputArgs {
    /// Reads the files and bundles them with the flags.
    pub fn to_inputs(&self, profile: Option<String>) -> Result<Inputs> {
        let mut files = Vec::with_capacity(self.files.len());
        for path in &self.files {
            let text = if path.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading stdin")?;
                text
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?
            };
            files.push(InputFile {
                name: path.display().to_string(),
                text,
            });
        }
        Ok(Inputs {
            profile,
            files,
            sets: self.sets.clone(),
        })
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum OutputFormat {
    Yaml,
    Json,
}

#[derive(clap::Args)]
struct DumpArgs {
    /// Profile to start from (default: the one the inputs name, else "default").
    profile: Option<String>,
    #[command(flatten)]
    inputs: InputArgs,
    /// Print only this subtree, e.g. components.pilot.
    #[arg(long = "config-path")]
    config_path: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    output: OutputFormat,
}

#[derive(clap::Args)]
struct DiffArgs {
    /// The first profile.
    a: String,
    /// The second profile.
    b: String,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::List => {
            println!("Lateen configuration profiles:");
            for name in profiles::SUPPORTED {
                println!("    {name}");
            }
            Ok(())
        }
        Command::Dump(dump) => {
            let merged = lateen_install::merge_inputs(&dump.inputs.to_inputs(dump.profile)?)?;
            let selected = match &dump.config_path {
                Some(path) => lateen_install::config_path(&merged.tree, path)?,
                None => &merged.tree,
            };
            print!("{}", render(selected, dump.output)?);
            Ok(())
        }
        Command::Diff(diff) => {
            let dump = |name: &str| -> Result<String> {
                let inputs = Inputs {
                    profile: Some(name.to_owned()),
                    ..Inputs::default()
                };
                Ok(lateen_install::to_yaml(
                    &lateen_install::merge_inputs(&inputs)?.tree,
                )?)
            };
            let (a, b) = (dump(&diff.a)?, dump(&diff.b)?);
            let options = DiffOptions {
                context: 3,
                color: std::io::stdout().is_terminal(),
            };
            let text = unified(&diff.a, &a, &diff.b, &b, options);
            if text.is_empty() {
                println!("Profiles {} and {} are the same", diff.a, diff.b);
            } else {
                println!("The difference between profiles {} and {}:", diff.a, diff.b);
                print!("{text}");
            }
            Ok(())
        }
    }
}

/// A tree as YAML or pretty JSON, ending in a newline.
pub fn render(value: &serde_json::Value, format: OutputFormat) -> Result<String> {
    Ok(match format {
        OutputFormat::Yaml => lateen_install::to_yaml(value)?,
        OutputFormat::Json => serde_json::to_string_pretty(value)? + "\n",
    })
}
