//! TLS origination to a service outside the mesh with credentials from files: Istio's
//! DestinationRule `tls.mode` SIMPLE (the server is verified) and MUTUAL (the proxy also
//! presents `clientCertificate`/`privateKey`), as Envoy does it with the UpstreamTlsContext
//! lateend sends: the server's chain must lead to `caCertificates`, and when
//! `subjectAltNames` are given one of them must be among the server certificate's DNS or URI
//! SANs (exact); without them only the chain is checked, as Envoy does when no SAN matcher is
//! set. `insecureSkipVerify` trusts any server (Envoy: no validation context), signatures
//! still checked. The files are read when the configuration is compiled, so a missing or
//! broken file is a configuration error naming it (the last good configuration stays); the
//! mesh certificate plays no part.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, Error, RootCertStore};
use serde::{Deserialize, Serialize};

use super::UpstreamAlpn;

/// The files of a DestinationRule's SIMPLE or MUTUAL `tls` (paths on the proxy's host).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM roots the server's chain must lead to; required unless `insecure_skip_verify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<PathBuf>,
    /// MUTUAL: the PEM chain presented to the server, with `private_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

/// The client configurations of one origination, by the protocol spoken inside.
pub struct Origination {
    pub files: TlsFiles,
    by_alpn: [Arc<ClientConfig>; 3],
}

impl std::fmt::Debug for Origination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origination")
            .field("files", &self.files)
            .finish()
    }
}

/// A problem with the files: (which field, why).
pub type FileProblem = (&'static str, String);

impl Origination {
    /// Reads the files and builds the configurations; `subject_alt_names` are the SANs the
    /// server may present (empty: any).
    pub fn new(
        files: &TlsFiles,
        subject_alt_names: &[String],
        provider: Arc<CryptoProvider>,
    ) -> Result<Origination, FileProblem> {
        let roots = match (&files.ca_certificates, files.insecure_skip_verify) {
            (_, true) => None,
            (Some(path), false) => Some(read_roots(path)?),
            (None, false) => {
                return Err((
                    "ca_certificates",
                    "required to verify the server (or set insecure_skip_verify)".into(),
                ));
            }
        };
        let verifier = Arc::new(super::verify::SpiffeServerVerifier::external(
            roots,
            subject_alt_names.to_vec(),
            provider.clone(),
        ));
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(super::PROTOCOL_VERSIONS)
            .map_err(|e| ("ca_certificates", e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match (&files.client_certificate, &files.private_key) {
            (Some(chain), Some(key)) => {
                let chain = read_certs(chain, "client_certificate")?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| ("private_key", format!("{}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| ("private_key", e.to_string()))?
            }
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => {
                return Err(("private_key", "required with client_certificate".into()));
            }
            (None, Some(_)) => {
                return Err(("client_certificate", "required with private_key".into()));
            }
        };
        let with_alpn = |alpn: UpstreamAlpn| {
            let mut config = config.clone();
            config.alpn_protocols = match alpn {
                UpstreamAlpn::Http2 => vec![super::ALPN_H2.to_vec()],
                UpstreamAlpn::Http1 | UpstreamAlpn::Tcp => Vec::new(),
            };
            Arc::new(config)
        };
        Ok(Origination {
            files: files.clone(),
            by_alpn: [
                with_alpn(UpstreamAlpn::Http1),
                with_alpn(UpstreamAlpn::Http2),
                with_alpn(UpstreamAlpn::Tcp),
            ],
        })
    }

    /// The configuration for a connection speaking `alpn` inside.
    pub fn config(&self, alpn: UpstreamAlpn) -> Arc<ClientConfig> {
        self.by_alpn[alpn as usize].clone()
    }
}

fn read_certs(
    path: &Path,
    field: &'static str,
) -> Result<Vec<CertificateDer<'static>>, FileProblem> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| (field, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err((field, format!("{}: no PEM certificate", path.display())));
    }
    Ok(certs)
}

fn read_roots(path: &Path) -> Result<Arc<RootCertStore>, FileProblem> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path, "ca_certificates")? {
        roots
            .add(cert)
            .map_err(|e| ("ca_certificates", format!("{}: {e}", path.display())))?;
    }
    Ok(Arc::new(roots))
}

/// One of `expected` must be among the server certificate's DNS or URI SANs (any when
/// empty).
pub(super) fn check_names(leaf: &CertificateDer<'_>, expected: &[String]) -> Result<(), Error> {
    if expected.is_empty() {
        return Ok(());
    }
    let names = san_names(leaf);
    if names.iter().any(|n| expected.contains(n)) {
        Ok(())
    } else {
        Err(Error::General(format!(
            "server certificate names {names:?}, none of the expected {expected:?}"
        )))
    }
}

/// The DNS and URI SANs of a certificate.
fn san_names(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, parsed)) = X509Certificate::from_der(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            GeneralName::URI(uri) => Some(uri.to_string()),
            _ => None,
        })
        .collect()
}
