//! The webhook's serving certificate: generated (a private CA signing a leaf for
//! `lateend.istio-system.svc`, with the CA exposed as the webhook's `caBundle`) or loaded from PEM.

use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {reason}")]
    Pem { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// A serving certificate chain, its key, and the CA that clients (the API server) trust.
#[derive(Clone)]
pub struct WebhookCert {
    pub cert_chain_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for WebhookCert {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookCert")
            .field("cert_chain_pem", &self.cert_chain_pem)
            .finish_non_exhaustive()
    }
}

impl WebhookCert {
    /// DNS names of the webhook service `service.namespace` (short and cluster-qualified forms).
    pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
        vec![
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
            format!("{service}.{namespace}"),
            service.to_string(),
        ]
    }

    /// A fresh CA and a leaf for `lateend.istio-system.svc` (and its other service names).
    pub fn generate_for_lateend() -> Result<WebhookCert, CertError> {
        Self::generate(&Self::service_names("lateend", "istio-system"))
    }

    /// A fresh private CA and a server certificate it signs for `dns_names` (IP literals work too).
    pub fn generate(dns_names: &[String]) -> Result<WebhookCert, CertError> {
        ServingCa::generate()?.issue(dns_names)
    }

    /// Loads a certificate chain and key (and optionally the CA for `caBundle`; without it the
    /// last certificate of the chain is used) from PEM files.
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        ca: Option<&Path>,
    ) -> Result<WebhookCert, CertError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| CertError::Pem {
                path: p.display().to_string(),
                reason: e.to_string(),
            })
        };
        let cert_chain_pem = read(cert)?;
        let key_pem = read(key)?;
        let ca_pem = match ca {
            Some(p) => read(p)?,
            None => {
                let last = CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
                    .filter_map(Result::ok)
                    .last();
                let der = last.ok_or_else(|| CertError::Pem {
                    path: cert.display().to_string(),
                    reason: "no certificate".into(),
                })?;
                pem_encode("CERTIFICATE", &der)
            }
        };
        let loaded = WebhookCert {
            cert_chain_pem,
            key_pem,
            ca_pem,
        };
        loaded.parse_chain(&cert.display().to_string())?;
        loaded.parse_key(&key.display().to_string())?;
        Ok(loaded)
    }

    /// The webhook configuration's `caBundle`: the CA PEM, base64-encoded.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes())
    }

    fn parse_chain(&self, path: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
        let chain: Vec<_> = CertificateDer::pem_slice_iter(self.cert_chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| CertError::Pem {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(CertError::Pem {
                path: path.to_string(),
                reason: "no certificate".into(),
            });
        }
        Ok(chain)
    }

    fn parse_key(&self, path: &str) -> Result<PrivateKeyDer<'static>, CertError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).map_err(|e| CertError::Pem {
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    /// A rustls server configuration (ring provider, HTTP/2 and HTTP/1.1 ALPN) for this cert.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, CertError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                self.parse_chain("certificate chain")?,
                self.parse_key("private key")?,
            )?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The private CA of lateend's serving certificates: its certificate and key (PEM). Replicas
/// that share one (e.g. through a Secret) present certificates the same `caBundle` trusts.
#[derive(Clone)]
pub struct ServingCa {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ServingCa {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCa")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl ServingCa {
    /// The CA's fixed name and usages: [`ServingCa::issue`] rebuilds the issuer from them and
    /// the stored key, so a CA read back from storage signs exactly as the one generated.
    fn params() -> Result<CertificateParams, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Lateen");
        params
            .distinguished_name
            .push(DnType::CommonName, "lateend webhook CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Ok(params)
    }

    /// A fresh CA.
    pub fn generate() -> Result<ServingCa, CertError> {
        let key = KeyPair::generate()?;
        let cert = Self::params()?.self_signed(&key)?;
        Ok(ServingCa {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A server certificate for `dns_names` signed by this CA (which must be one
    /// [`ServingCa::generate`] made).
    pub fn issue(&self, dns_names: &[String]) -> Result<WebhookCert, CertError> {
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        let issuer = Issuer::new(Self::params()?, ca_key);
        let mut leaf_params = CertificateParams::new(dns_names.to_vec())?;
        if let Some(first) = dns_names.first() {
            leaf_params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        leaf_params.use_authority_key_identifier_extension = true;
        leaf_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate()?;
        let leaf = leaf_params.signed_by(&leaf_key, &issuer)?;
        Ok(WebhookCert {
            cert_chain_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
            ca_pem: self.cert_pem.clone(),
        })
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    /// Whether `cert`'s leaf verifies for `name` against `ca_pem` alone.
    fn verifies(cert: &WebhookCert, ca_pem: &str, name: &str) -> bool {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(der.unwrap()).unwrap();
        }
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        let leaf = CertificateDer::pem_slice_iter(cert.cert_chain_pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let server = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &server, &[], rustls_pki_types::UnixTime::now())
            .is_ok()
    }

    #[test]
    fn a_stored_ca_issues_certificates_its_bundle_trusts() {
        let names = WebhookCert::service_names("lateend", "istio-system");
        let ca = ServingCa::generate().unwrap();
        // As another replica would: only the PEM text survives the trip through a Secret.
        let reloaded = ServingCa {
            cert_pem: ca.cert_pem.clone(),
            key_pem: ca.key_pem.clone(),
        };
        let a = ca.issue(&names).unwrap();
        let b = reloaded.issue(&names).unwrap();
        assert_ne!(
            a.cert_chain_pem, b.cert_chain_pem,
            "each replica its own leaf"
        );
        assert!(verifies(&a, &ca.cert_pem, "lateend.istio-system.svc"));
        assert!(verifies(&b, &a.ca_pem, "lateend.istio-system.svc"));
        let other = ServingCa::generate().unwrap();
        assert!(!verifies(&b, &other.cert_pem, "lateend.istio-system.svc"));
    }
}
