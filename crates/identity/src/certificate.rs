//! The certificate a workload proves its identity with, and how it reaches TLS code.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::spiffe::Identity;

/// Istio's file-mounted certificate names (pilot-agent reads them from `/etc/certs/`).
pub const FILE_MOUNTED_CERT_CHAIN: &str = "cert-chain.pem";
pub const FILE_MOUNTED_KEY: &str = "key.pem";
pub const FILE_MOUNTED_ROOT_CERT: &str = "root-cert.pem";

/// The latest certificate of a proxy; `None` until the first one arrives. TLS code reads the
/// current value for each new handshake, so a rotation never touches open connections.
pub type CertificateWatch = tokio::sync::watch::Receiver<Option<Arc<WorkloadCertificate>>>;

/// A workload's leaf certificate with its chain, private key and the roots it trusts.
pub struct WorkloadCertificate {
    /// From the leaf's URI SAN.
    pub identity: Identity,
    /// Leaf first, then intermediates (not the root).
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Roots peers' chains must lead to (more than one while a root rotates).
    pub roots: Vec<CertificateDer<'static>>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// Why a certificate bundle cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("certificate chain is empty")]
    EmptyChain,
    #[error("no trusted root certificate")]
    NoRoots,
    #[error("leaf certificate: {0}")]
    Leaf(String),
}

impl WorkloadCertificate {
    /// Builds a bundle from DER parts, reading identity and validity from the leaf.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, CertificateError> {
        let leaf = chain.first().ok_or(CertificateError::EmptyChain)?;
        if roots.is_empty() {
            return Err(CertificateError::NoRoots);
        }
        let (identity, not_before, not_after) = leaf_facts(leaf)?;
        Ok(WorkloadCertificate {
            identity,
            chain,
            key,
            roots,
            not_before,
            not_after,
        })
    }

    /// Reads Istio's file-mounted certificates from `dir` (`cert-chain.pem`, `key.pem`,
    /// `root-cert.pem`).
    pub fn from_dir(dir: &Path) -> Result<Self, CertificateError> {
        Self::from_pem_files(
            &dir.join(FILE_MOUNTED_CERT_CHAIN),
            &dir.join(FILE_MOUNTED_KEY),
            &dir.join(FILE_MOUNTED_ROOT_CERT),
        )
    }

    /// Reads a PEM chain, a PEM private key (PKCS#8, SEC1 or PKCS#1) and PEM roots.
    pub fn from_pem_files(
        chain: &Path,
        key: &Path,
        roots: &Path,
    ) -> Result<Self, CertificateError> {
        let chain_ders = read_certs(chain)?;
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| CertificateError::File {
            path: key.to_path_buf(),
            reason: format!("no usable private key: {e}"),
        })?;
        let root_ders = read_certs(roots)?;
        Self::new(chain_ders, key_der, root_ders)
    }

    /// Time left before `not_after` (zero once expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or(Duration::ZERO)
    }

    /// The whole lifetime of the leaf.
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO)
    }
}

/// The SPIFFE identity of a peer's leaf certificate (its first `spiffe://` URI SAN), as TLS
/// code reads it after a handshake.
pub fn identity_of(leaf: &CertificateDer<'_>) -> Result<Identity, CertificateError> {
    leaf_facts(leaf).map(|(identity, _, _)| identity)
}

impl fmt::Debug for WorkloadCertificate {
    // Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadCertificate")
            .field("identity", &self.identity.to_string())
            .field("chain_len", &self.chain.len())
            .field("roots", &self.roots.len())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    let file_error = |reason: String| CertificateError::File {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_error("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The SPIFFE identity (first `spiffe://` URI SAN) and validity of a leaf certificate.
fn leaf_facts(
    leaf: &CertificateDer<'_>,
) -> Result<(Identity, SystemTime, SystemTime), CertificateError> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| CertificateError::Leaf(format!("not X.509 DER: {e}")))?;
    let to_time = |t: ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            SystemTime::UNIX_EPOCH
        }
    };
    let validity = cert.validity();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertificateError::Leaf(format!("subjectAltName: {e}")))?
        .ok_or_else(|| CertificateError::Leaf("no subjectAltName".into()))?;
    let identity = san
        .value
        .general_names
        .iter()
        .find_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with("spiffe://") => uri.parse::<Identity>().ok(),
            _ => None,
        })
        .ok_or_else(|| CertificateError::Leaf("no spiffe:// URI SAN".into()))?;
    Ok((
        identity,
        to_time(validity.not_before),
        to_time(validity.not_after),
    ))
}
