//! `lateen kube-inject`: offline sidecar injection of Kubernetes YAML (Istio: `istioctl
//! kube-inject`). Reads a file or stdin, writes the injected YAML to stdout or `-o FILE`.
//! The injection itself is `lateen_inject`, shared with the admission webhook.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use lateen_inject::InjectConfig;

#[derive(clap::Args)]
pub struct Args {
    /// Input Kubernetes YAML (multi-document and `List` objects work); `-` reads stdin.
    #[arg(short = 'f', long = "filename")]
    filename: String,
    /// Write the injected YAML here instead of stdout.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Injector config: Istio's istio-sidecar-injector ConfigMap (or its `config` key), or
    /// Lateen's format (same keys plus `values`, `meshConfig`, `revision`).
    #[arg(long = "injectConfigFile")]
    inject_config_file: Option<PathBuf>,
    /// Mesh config YAML (or the `istio` ConfigMap holding it under `mesh`).
    #[arg(long = "meshConfigFile")]
    mesh_config_file: Option<PathBuf>,
    /// Injector values (JSON or YAML; or the ConfigMap holding them under `values`).
    #[arg(long = "valuesFile")]
    values_file: Option<PathBuf>,
    /// Control plane revision to inject for (sets `istio.io/rev`).
    #[arg(short = 'r', long = "revision")]
    revision: Option<String>,
}

fn read_text(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Builds the injector configuration from the flags: defaults, then the inject config file,
/// then the values and mesh config files (which win), then `--revision`; then
/// `ENABLE_NATIVE_SIDECARS=true` turns native sidecars on, as for istioctl.
pub fn load_config(args: &Args) -> anyhow::Result<InjectConfig> {
    let mut cfg = InjectConfig::default();
    if let Some(path) = &args.inject_config_file {
        cfg.apply_inject_config_text(&read_text(path)?, &path.display().to_string())?;
    }
    if let Some(path) = &args.values_file {
        cfg.apply_values_text(&read_text(path)?, &path.display().to_string())?;
    }
    if let Some(path) = &args.mesh_config_file {
        cfg.apply_mesh_config_text(&read_text(path)?, &path.display().to_string())?;
    }
    if let Some(rev) = &args.revision {
        cfg.revision = rev.clone();
    }
    // As istioctl: with no cluster to ask, native sidecars only when ENABLE_NATIVE_SIDECARS=true.
    let native = lateen_inject::native::NativeSidecars {
        mode: lateen_inject::native::NativeSidecarMode::from_env_value(
            std::env::var(lateen_inject::native::NativeSidecarMode::ENV)
                .ok()
                .as_deref(),
        ),
        nodes: None,
    };
    cfg.values.native_sidecars |= native.for_pod("");
    Ok(cfg)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = load_config(&args)?;
    let (input, source) = if args.filename == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read stdin")?;
        (text, "<stdin>".to_string())
    } else {
        (
            read_text(&PathBuf::from(&args.filename))?,
            args.filename.clone(),
        )
    };
    let output = lateen_inject::inject_yaml(&input, &cfg)
        .with_context(|| format!("cannot inject {source}"))?;
    match &args.output {
        Some(path) => std::fs::write(path, output)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(output.as_bytes())
                .context("cannot write stdout")?;
            stdout.flush().context("cannot write stdout")?;
        }
    }
    Ok(())
}
