//! lateend's mesh CA (istiod's Citadel): where its key material comes from, and Istio's
//! certificate API on 15012 ([`signer`], authentication in [`auth`]). The CA's root also
//! signs lateend's own serving certificate, so `istio-ca-root-cert` is one root for xDS
//! over TLS and for workload certificates, as with istiod.
//!
//! Where the CA comes from, first that applies (istiod's order):
//! 1. a plugged-in CA in `--cacerts-dir` (`ROOT_CA_DIR`, default `./etc/cacerts`: Istio's
//!    `cacerts` Secret mounted there) holding `ca-cert.pem` and `ca-key.pem` (and
//!    `cert-chain.pem`, `root-cert.pem` for an intermediate);
//! 2. on Kubernetes, the Secret `istio-ca-secret` in lateend's namespace, made with a new
//!    self-signed root by the first replica ([`secret`]); when the Secret cannot be read or
//!    made (no namespace, no RBAC) the steps below, with a warning;
//! 3. on one machine, `--ca-dir` (the same four files), made on first start;
//! 4. otherwise a self-signed root for this run only (a warning says so).

pub mod auth;
pub mod secret;
pub mod signer;

use std::path::PathBuf;

use lateen_identity::{CaFiles, MeshCa};

/// Why lateend has no CA.
#[derive(Debug, thiserror::Error)]
pub enum MeshCaError {
    #[error("plugged-in CA in {}: {source}", dir.display())]
    Plugged {
        dir: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("CA folder {}: {source}", dir.display())]
    Kept {
        dir: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("generating the self-signed root: {0}")]
    Generate(#[from] lateen_identity::CaError),
}

/// Where to look for the CA.
pub struct CaSource<'a> {
    pub cacerts_dir: Option<PathBuf>,
    pub ca_dir: Option<PathBuf>,
    pub cluster: Option<(&'a kube::Client, &'a str)>,
    pub trust_domain: &'a str,
}

/// The CA, from the first source that applies.
pub async fn load(source: CaSource<'_>) -> Result<MeshCa, MeshCaError> {
    if let Some(dir) = &source.cacerts_dir
        && CaFiles::present(dir)
    {
        let plugged = |e: Box<dyn std::error::Error + Send + Sync>| MeshCaError::Plugged {
            dir: dir.clone(),
            source: e,
        };
        let files = CaFiles::read_dir(dir).map_err(|e| plugged(e.into()))?;
        let ca = MeshCa::from_files(files).map_err(|e| plugged(e.into()))?;
        tracing::info!(dir = %dir.display(), "mesh CA: plugged-in certificates");
        return Ok(ca);
    }
    if let Some((client, namespace)) = source.cluster {
        match secret::shared(client, namespace, source.trust_domain).await {
            Ok(ca) => return Ok(ca),
            // Serving matters more than sharing a root with other replicas (a namespace that
            // does not exist yet, RBAC without secrets): a root of this replica's own, and say so.
            Err(e) => {
                tracing::warn!(error = %e, "no shared mesh CA; this replica uses a root of its own (other replicas will not trust its certificates)")
            }
        }
    }
    if let Some(dir) = &source.ca_dir {
        let kept = |e: Box<dyn std::error::Error + Send + Sync>| MeshCaError::Kept {
            dir: dir.clone(),
            source: e,
        };
        if CaFiles::present(dir) {
            let files = CaFiles::read_dir(dir).map_err(|e| kept(e.into()))?;
            let ca = MeshCa::from_files(files).map_err(|e| kept(e.into()))?;
            tracing::info!(dir = %dir.display(), "mesh CA: the self-signed root kept from an earlier start");
            return Ok(ca);
        }
        let ca = MeshCa::self_signed(source.trust_domain)?;
        ca.files().write_dir(dir).map_err(|e| kept(e.into()))?;
        tracing::info!(dir = %dir.display(), "mesh CA: a new self-signed root, kept for later starts");
        return Ok(ca);
    }
    tracing::warn!(
        "mesh CA: a self-signed root for this run only (give --ca-dir to keep it across restarts)"
    );
    Ok(MeshCa::self_signed(source.trust_domain)?)
}
