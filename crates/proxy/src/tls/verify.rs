//! The outbound side's check of a server: its chain must lead to the mesh roots (webpki, with
//! validity dates) and its SPIFFE identity must be one the control plane expects for the
//! destination (Envoy's `match_typed_subject_alt_names`, URI SANs, exact). The TLS server
//! name is Istio's `outbound_...` SNI, never a name in the certificate, so webpki's name check
//! does not apply. The same verifier checks a server outside the mesh for DestinationRule
//! SIMPLE/MUTUAL ([`super::origination`]): roots from a file, DNS or URI SANs.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

/// Why a peer's certificate was refused although its chain was good.
#[derive(Debug, thiserror::Error)]
pub enum PeerIdentityError {
    #[error("peer certificate has no SPIFFE identity: {0}")]
    NoIdentity(String),
    #[error("peer identity {found} is not one of the expected {expected:?}")]
    Unexpected {
        found: String,
        expected: Vec<String>,
    },
}

#[derive(Debug)]
pub(crate) struct SpiffeServerVerifier {
    /// `None` trusts any chain (DestinationRule `insecureSkipVerify`).
    roots: Option<Arc<RootCertStore>>,
    /// SPIFFE URIs accepted; empty accepts any identity the roots signed (Istio sends no
    /// SANs when it does not know the destination's service accounts).
    expected: Vec<String>,
    /// Mesh peers are checked by SPIFFE identity; an external server by its DNS or URI SANs.
    external: bool,
    provider: Arc<CryptoProvider>,
}

impl SpiffeServerVerifier {
    pub(crate) fn new(
        roots: Arc<RootCertStore>,
        expected: Vec<String>,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        SpiffeServerVerifier {
            roots: Some(roots),
            expected,
            external: false,
            provider,
        }
    }

    /// The check of a server outside the mesh ([`super::origination`]): its chain to `roots`
    /// (none: not checked), then one of `expected` among its DNS or URI SANs (any when
    /// empty).
    pub(crate) fn external(
        roots: Option<Arc<RootCertStore>>,
        expected: Vec<String>,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        SpiffeServerVerifier {
            roots,
            expected,
            external: true,
            provider,
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        if self.external {
            super::origination::check_names(end_entity, &self.expected)?;
        } else {
            check_identity(end_entity, &self.expected)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The leaf's SPIFFE identity must be one of `expected` (any when empty).
fn check_identity(leaf: &CertificateDer<'_>, expected: &[String]) -> Result<(), Error> {
    let refuse = |err: PeerIdentityError| {
        Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            Arc::new(err),
        )))
    };
    let identity = lateen_identity::identity_of(leaf)
        .map_err(|err| refuse(PeerIdentityError::NoIdentity(err.to_string())))?
        .to_string();
    if expected.is_empty() || expected.contains(&identity) {
        Ok(())
    } else {
        Err(refuse(PeerIdentityError::Unexpected {
            found: identity,
            expected: expected.to_vec(),
        }))
    }
}
