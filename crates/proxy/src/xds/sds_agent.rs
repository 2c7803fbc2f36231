//! `lateen-proxy agent`: pilot-agent's certificate role for an Envoy sidecar. It runs the CA
//! client ([`super::ca_client`]) with the identity, CA address, root and token Istio's
//! injector provides, and serves the certificate to Envoy over SDS on Istio's Unix socket
//! (`lateen_xds::sds`): `default` (chain and key) and `ROOTCA` (the mesh root), a new
//! version on every rotation. Envoy's bootstrap names the socket in its `sds-grpc` cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lateen_identity::CertificateWatch;
use lateen_xds::sds::SecretMaterial;
use tokio::sync::watch;

use super::ca_client::{CaClientConfig, config_from_env, spawn};

/// Istio's SDS socket, relative to the working directory (`/` in Istio's proxy image).
pub const DEFAULT_SDS_SOCKET: &str = "./var/run/secrets/workload-spiffe-uds/socket";

/// Flags of `lateen-proxy agent`.
#[derive(clap::Args, Debug, Clone)]
pub struct AgentArgs {
    /// The certificate API's address (Istio's `CA_ADDR`); default the discovery address.
    #[arg(long, env = "CA_ADDR", value_name = "HOST:PORT")]
    pub ca_address: Option<String>,
    /// Control plane address, used for the CA when `CA_ADDR` is not set (as in `sidecar`).
    #[arg(long, env = "LATEEN_DISCOVERY_ADDRESS", value_name = "HOST:PORT")]
    pub discovery_address: Option<String>,
    /// The Unix socket SDS is served on.
    #[arg(long, default_value = DEFAULT_SDS_SOCKET, value_name = "PATH")]
    pub sds_socket: PathBuf,
    /// Requested certificate lifetime as a Go duration (`24h`, `90m`, `1h30m0s`; Istio's
    /// `SECRET_TTL`); default the CA's (24h on lateend).
    #[arg(long, env = "SECRET_TTL", value_name = "DURATION", value_parser = parse_go_duration)]
    pub secret_ttl: Option<Duration>,
    /// Log level or filter (RUST_LOG syntax).
    #[arg(long, default_value = "info", env = "LATEEN_LOG")]
    pub log_level: String,
}

/// Parses a Go `time.Duration` string as Istio's environment carries it (`24h0m0s`): one or
/// more `NUMBER UNIT` pieces, each read as a configuration duration.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut start = 0;
    let mut in_unit = false;
    let mut add = |piece: &str| -> Result<(), String> {
        total = total
            .checked_add(crate::config::duration::parse(piece)?)
            .ok_or_else(|| format!("duration {text:?} is out of range"))?;
        Ok(())
    };
    for (at, c) in text.char_indices() {
        let numeric = c.is_ascii_digit() || c == '.';
        if numeric && in_unit {
            add(&text[start..at])?;
            start = at;
        }
        in_unit = !numeric;
    }
    add(&text[start..])?;
    Ok(total)
}

/// The CA client's configuration from the flags and Istio's environment
/// ([`super::ca_client::config_from_env`]).
pub fn ca_client_config(
    args: &AgentArgs,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<CaClientConfig> {
    let address = args
        .ca_address
        .as_deref()
        .or(args.discovery_address.as_deref())
        .filter(|a| !a.is_empty());
    config_from_env(address, env, args.secret_ttl)
        .context("deciding how to reach the certificate authority")
}

/// The certificates as SDS material, a new version for each one (`1`, `2`, ...).
pub fn sds_material(mut certs: CertificateWatch) -> lateen_xds::sds::SecretsWatch {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let mut version: u64 = 0;
        loop {
            let current = certs.borrow_and_update().clone();
            if let Some(cert) = current {
                version += 1;
                let material = SecretMaterial {
                    version: version.to_string(),
                    cert_chain_pem: cert.chain_pem(),
                    private_key_pem: cert.key_pem(),
                    roots_pem: cert.roots_pem(),
                };
                if tx.send(Some(Arc::new(material))).is_err() {
                    return;
                }
            }
            if certs.changed().await.is_err() {
                return;
            }
        }
    });
    rx
}

/// Runs the CA client and serves SDS on `socket` until `shutdown` completes.
pub async fn serve(
    config: CaClientConfig,
    socket: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (certs, client) = spawn(config);
    let result = lateen_xds::sds::serve_unix(socket, sds_material(certs), shutdown).await;
    client.abort();
    result.context("serving SDS")
}

/// `lateen-proxy agent`: until SIGTERM or SIGINT.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let config = ca_client_config(&args, &env)?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let stop = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    serve(config, &args.sds_socket, stop).await
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("24h0m0s"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse_go_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("6s"), Ok(Duration::from_secs(6)));
        assert_eq!(parse_go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("5d").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("h").is_err());
    }
}
