//! lateend's command line as Kubernetes runs it: the rendered Deployment (and Istio-shaped
//! overlays written for istiod) start it as `discovery --monitoringAddr=:15014 ...`, istiod's
//! `pilot-discovery` form. This module makes that form mean the same thing to lateend:
//!
//! - [`normalize_argv`]: `lateend discovery FLAGS` is `lateend FLAGS`; `lateend version` is
//!   `lateend --version`.
//! - [`parse_listen_addr`]: Go's listen addresses (`:15014` is every address, port 15014).
//! - [`IstiodFlags`]: istiod's common flags without a lateend twin (`--domain`, keepalive,
//!   logging, `--clusterID`, ...), each mapped to what it means here or accepted and reported
//!   as having no effect; an unknown flag is still an error naming it.
//! - [`logging`]: `--log_output_level`, `--log_as_json` and `--log_target` as tracing settings.
//!
//! The flags that have a lateend twin (`--grpcAddr` is `--xds-address`, ...) are aliases on
//! lateend's own arguments (`src/bin/lateend.rs`), so there is one value for each setting.

pub mod istiod;
pub mod logging;

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use istiod::IstiodFlags;

/// istiod's subcommand that starts the control plane; lateend has only that one.
pub const DISCOVERY_SUBCOMMAND: &str = "discovery";

/// `argv` with istiod's subcommand form folded into lateend's: a first argument `discovery`
/// is dropped and `version` becomes `--version`. Anything else is left for clap to judge.
pub fn normalize_argv(argv: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = argv.into_iter().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some(DISCOVERY_SUBCOMMAND) => {
            args.remove(1);
        }
        Some("version") => args[1] = OsString::from("--version"),
        _ => {}
    }
    args
}

/// A listen address as lateend's flags and Go's `net.Listen` write it: `HOST:PORT`,
/// `[V6]:PORT`, `:PORT` (every IPv4 address, as istiod's `:15014` means) or
/// `localhost:PORT`.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    let text = s.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!(
            "{s:?}: expected HOST:PORT or :PORT (e.g. \":15014\" or \"127.0.0.1:15014\")"
        ));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{s:?}: port {port:?} is not a number from 0 to 65535"))?;
    let ip = match host {
        "" | "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        other => other
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| {
                format!("{s:?}: host {other:?} is not an IP address (or empty, or localhost)")
            })?,
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn discovery_subcommand_is_folded_into_the_flags() {
        assert_eq!(
            normalize_argv(argv(&["lateend", "discovery", "--domain", "cluster.local"])),
            argv(&["lateend", "--domain", "cluster.local"])
        );
        assert_eq!(
            normalize_argv(argv(&["lateend", "version"])),
            argv(&["lateend", "--version"])
        );
        // Only the first position is a subcommand: a flag value named "discovery" stays.
        assert_eq!(
            normalize_argv(argv(&["lateend", "--config-dir", "discovery"])),
            argv(&["lateend", "--config-dir", "discovery"])
        );
    }

    #[test]
    fn go_listen_addresses() {
        assert_eq!(
            parse_listen_addr(":15014").unwrap(),
            "0.0.0.0:15014".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("localhost:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("[::]:15010").unwrap(),
            "[::]:15010".parse().unwrap()
        );
        let err = parse_listen_addr("istiod:15010").unwrap_err();
        assert!(err.contains("not an IP address"), "{err}");
        let err = parse_listen_addr(":http").unwrap_err();
        assert!(err.contains("port \"http\""), "{err}");
        assert!(parse_listen_addr("15010").is_err());
    }
}
