//! A workload's side of getting a certificate: a fresh ECDSA P-256 key (Istio's default,
//! `ECC_SIGNATURE_ALGORITHM` aside) and a CSR naming its SPIFFE identity, then the bundle
//! built from the CA's answer. The key stays in the returned value; nothing here prints it.

use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::certificate::{CertificateError, WorkloadCertificate};
use crate::spiffe::Identity;

/// A CSR to send and the private key that stays behind.
pub struct CertificateRequest {
    /// PEM `CERTIFICATE REQUEST`, what `IstioCertificateRequest.csr` carries.
    pub csr_pem: String,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for CertificateRequest {
    // Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateRequest")
            .field("csr_pem", &self.csr_pem)
            .finish_non_exhaustive()
    }
}

/// Why a key or CSR could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("generating the key or CSR: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the CA's answer: {0}")]
    Response(String),
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

impl CertificateRequest {
    /// A new key and a CSR for `identity` (its URI SAN; empty subject, as Istio's agent).
    pub fn generate(identity: &Identity) -> Result<Self, CsrError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(identity.to_string().try_into()?)];
        let csr = params.serialize_request(&key)?;
        Ok(CertificateRequest {
            csr_pem: csr.pem()?,
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }

    /// The bundle from the CA's `cert_chain` (leaf, intermediates, root last, each PEM):
    /// the last element is the trusted root when there is more than one, else `roots` are.
    pub fn into_certificate(
        self,
        cert_chain: &[String],
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<WorkloadCertificate, CsrError> {
        let mut ders = Vec::new();
        for pem in cert_chain {
            for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                ders.push(der.map_err(|e| CsrError::Response(format!("not PEM: {e}")))?);
            }
        }
        if ders.is_empty() {
            return Err(CsrError::Response("empty certificate chain".into()));
        }
        let roots = if ders.len() > 1 {
            let root = ders.pop().into_iter().collect();
            if roots.is_empty() { root } else { roots }
        } else {
            roots
        };
        Ok(WorkloadCertificate::new(ders, self.key, roots)?)
    }
}
