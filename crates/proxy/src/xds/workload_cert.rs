//! Where `lateen-proxy sidecar|router` gets its workload certificate, decided as pilot-agent
//! decides it for Envoy: Istio's file-mounted certificates when `--cert-dir` names them;
//! else the mesh CA ([`super::ca_client`]) when one is configured: `CA_ADDR` (what Istio's
//! injector always sets) or, without it, a control plane reached over TLS (istiod serves its
//! CA on the same 15012 port). A proxy that talks plaintext to a local control plane and has
//! no `CA_ADDR` holds no certificate and stays plaintext, as before.
//!
//! A proxy with a certificate source tells lateend so in its node metadata
//! (`LATEEN_MTLS: "true"`), which turns on Istio's mTLS listeners and clusters for it; it is
//! not ready until it holds its first certificate (Istio's Envoy waits for its SDS secrets
//! the same way), so no mTLS configuration is served without a certificate behind it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use lateen_identity::CertificateWatch;
use lateen_xds::client::Transport;

use super::ca_client::{self, CaClientConfig};
use super::control_plane::ControlPlane;

/// The node metadata key lateend reads to give a proxy Istio's mTLS (crates/discovery's
/// `proxy.rs`).
pub const MTLS_METADATA: &str = "LATEEN_MTLS";

/// Where the certificate comes from.
#[derive(Debug)]
pub enum CertificateSource {
    /// Istio's file-mounted `cert-chain.pem`, `key.pem`, `root-cert.pem`.
    Files(PathBuf),
    /// The mesh CA's `CreateCertificate`.
    Ca(Box<CaClientConfig>),
    /// No certificate: mesh traffic stays plaintext.
    None,
}

impl CertificateSource {
    /// Chooses the source: `cert_dir`, else `CA_ADDR` (`ca_address`), else the control plane
    /// when it is reached over TLS.
    pub fn choose(
        cert_dir: Option<&PathBuf>,
        ca_address: Option<&str>,
        control_plane: &ControlPlane,
        env: &BTreeMap<String, String>,
        ttl: Option<Duration>,
    ) -> anyhow::Result<CertificateSource> {
        if let Some(dir) = cert_dir {
            return Ok(CertificateSource::Files(dir.clone()));
        }
        let address = match ca_address.filter(|a| !a.is_empty()) {
            Some(address) => address,
            None if matches!(control_plane.transport, Transport::Tls(_)) => {
                control_plane.address.as_str()
            }
            None => return Ok(CertificateSource::None),
        };
        let config = ca_client::config_from_env(Some(address), env, ttl).with_context(|| {
            format!("deciding how to reach the certificate authority {address}")
        })?;
        Ok(CertificateSource::Ca(Box::new(config)))
    }

    /// Starts reading or requesting the certificate; `None` for [`CertificateSource::None`].
    /// The watch holds `None` until the CA's first answer.
    pub fn start(self) -> anyhow::Result<Option<CertificateWatch>> {
        match self {
            CertificateSource::Files(dir) => crate::tls::files::watch_dir(&dir)
                .with_context(|| format!("--cert-dir {}", dir.display()))
                .map(Some),
            CertificateSource::Ca(config) => {
                tracing::info!(ca = %config.address, identity = %config.identity, "requesting the workload certificate");
                // The task ends by itself once every receiver of the watch is gone.
                let (watch, _task) = ca_client::spawn(*config);
                Ok(Some(watch))
            }
            CertificateSource::None => {
                tracing::info!(
                    "no certificate source (no --cert-dir, no CA_ADDR, plaintext control plane): mesh mTLS is off"
                );
                Ok(None)
            }
        }
    }

    pub fn is_some(&self) -> bool {
        !matches!(self, CertificateSource::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::control_plane::resolve;
    use crate::xds::identity::tests::env;

    fn choose(
        cert_dir: Option<&str>,
        ca: Option<&str>,
        discovery: &str,
        vars: &[(&str, &str)],
    ) -> CertificateSource {
        let env = env(vars);
        let control_plane = resolve(Some(discovery), &env, &|_| false).expect("resolves");
        CertificateSource::choose(
            cert_dir.map(PathBuf::from).as_ref(),
            ca,
            &control_plane,
            &env,
            None,
        )
        .expect("chooses")
    }

    #[test]
    fn the_injected_ca_address_wins_over_a_plaintext_control_plane() {
        let CertificateSource::Ca(config) = choose(
            None,
            Some("lateend.istio-system.svc:15012"),
            "127.0.0.1:15010",
            &[("POD_NAMESPACE", "shop"), ("SERVICE_ACCOUNT", "web")],
        ) else {
            panic!("CA_ADDR configures the CA");
        };
        assert_eq!(config.address, "lateend.istio-system.svc:15012");
        assert!(matches!(config.transport, Transport::Tls(_)));
        assert_eq!(
            config.identity.to_string(),
            "spiffe://cluster.local/ns/shop/sa/web"
        );
    }

    #[test]
    fn a_tls_control_plane_is_the_ca_and_plaintext_without_ca_addr_is_none() {
        let CertificateSource::Ca(config) =
            choose(None, None, "lateend.istio-system.svc:15012", &[])
        else {
            panic!("the TLS control plane is the CA");
        };
        assert_eq!(config.address, "lateend.istio-system.svc:15012");
        assert!(!choose(None, None, "127.0.0.1:15010", &[]).is_some());
        assert!(!choose(None, Some(""), "127.0.0.1:15010", &[]).is_some());
    }

    #[test]
    fn cert_dir_wins() {
        assert!(matches!(
            choose(Some("/etc/certs"), Some("x:15012"), "x:15012", &[]),
            CertificateSource::Files(_)
        ));
    }
}
