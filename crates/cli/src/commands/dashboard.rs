//! `lateen dashboard` (Istio: `istioctl dashboard`, aliases `dash` and `d`).
//!
//! Without an addon: Lateen's own dashboard, served by lateend on its debug port
//! (`http://LATEEND/dashboard/`): checks that it answers, prints its URL and opens a browser
//! (`--browser=false` to skip, as istioctl). Reaching a lateend inside a cluster (a
//! port-forward to its pod) is not done yet: pass its address with `--lateend`.
//!
//! With an addon (`prometheus`, `grafana`, `kiali`, `jaeger`, `zipkin`, `controlz`, `envoy`,
//! `proxy`): istioctl's lookup of the addon's pod in the cluster (`dashboard_kube.rs`), with
//! its messages and exit codes when there is none; the port-forward itself is `kubectl
//! port-forward`, when kubectl is installed.

use std::process::Command;

use anyhow::Context;

use super::dashboard_kube::{self, Addon};
use super::proxy_status::{DEFAULT_DEBUG_ADDRESS, http_get};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    addon: Option<Addon>,
    /// lateend's debug address (HOST:PORT), where the dashboard is served.
    #[arg(long, env = "LATEEND_DEBUG_ADDRESS", default_value = DEFAULT_DEBUG_ADDRESS)]
    lateend: String,
    #[command(flatten)]
    common: Common,
}

/// istioctl's flags of every `dashboard` command.
#[derive(clap::Args, Clone)]
pub struct Common {
    /// Local port to listen to (port-forwards; 0 prefers the remote port, then any).
    #[arg(short = 'p', long = "port", global = true, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on (port-forwards). Only accepts an IP address or localhost.
    #[arg(long, global = true, default_value = "localhost")]
    pub address: String,
    /// Open a browser on the URL (`--browser=false` only prints it).
    #[arg(long, global = true, num_args = 0..=1, default_value_t = true,
        default_missing_value = "true", action = clap::ArgAction::Set)]
    pub browser: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.addon {
        Some(addon) => dashboard_kube::run(addon, &args.common),
        None => open_lateend(&args.lateend, args.common.browser),
    }
}

/// The path of the dashboard on lateend's debug port.
const DASHBOARD_PATH: &str = "/dashboard/";

fn open_lateend(lateend: &str, browser: bool) -> anyhow::Result<()> {
    let url = format!("http://{lateend}{DASHBOARD_PATH}");
    http_get(lateend, "/dashboard/api/proxies")
        .with_context(|| format!("lateend's dashboard at {url} did not answer"))?;
    open_browser(&url, browser);
    Ok(())
}

/// Prints `url` and, unless told not to, hands it to the desktop's browser (`xdg-open`), as
/// istioctl does; a failure to start one is only reported.
pub fn open_browser(url: &str, browser: bool) {
    println!("{url}");
    if !browser {
        println!("skipping opening a browser");
        return;
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    if Command::new(opener).arg(url).spawn().is_err() {
        println!("Failed to open browser; open {url} in your browser.");
    }
}
