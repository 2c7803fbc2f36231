//! Who calls ADS on the TLS port (15012): the listener asks for a client certificate without
//! requiring one (Istio's agents mostly authenticate with a token, checked per stream by
//! [`crate::xds_auth`]), and a certificate that chains to the mesh root proves a SPIFFE
//! identity. That identity goes to
//! the ADS streams of the connection ([`lateen_xds::AuthenticatedPeer`]), where
//! auto-registration ([`crate::registry::workload_group`]) takes the namespace and service
//! account from it rather than from the node's metadata. A certificate that does not chain to
//! the root fails the handshake; one without a SPIFFE URI SAN proves nothing and counts as
//! none.

use std::sync::Arc;

use lateen_inject::webhook::WebhookCert;
use lateen_xds::{AuthenticatedPeer, VerifiedIdentity};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// Why the TLS port's configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum XdsTlsError {
    #[error("xDS TLS: {what} is not usable PEM: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("xDS TLS: the mesh root certificate: {0}")]
    Root(String),
    #[error("xDS TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// The TLS port's server configuration: `cert` serves, and clients may present a mesh
/// certificate issued under `mesh_roots_pem`.
pub fn server_config(
    cert: &WebhookCert,
    mesh_roots_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, XdsTlsError> {
    let pem = |what: &'static str| {
        move |e: rustls::pki_types::pem::Error| XdsTlsError::Pem {
            what,
            reason: e.to_string(),
        }
    };
    let chain = CertificateDer::pem_slice_iter(cert.cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem("the serving certificate chain"))?;
    let key =
        PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).map_err(pem("the serving key"))?;
    let mut roots = rustls::RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(mesh_roots_pem.as_bytes()) {
        let root = root.map_err(pem("the mesh root certificate"))?;
        roots
            .add(root)
            .map_err(|e| XdsTlsError::Root(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| XdsTlsError::Root(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    // gRPC needs HTTP/2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// What the handshake of `connection` proved about the client.
pub fn peer_of(connection: &rustls::ServerConnection) -> AuthenticatedPeer {
    let identity = connection
        .peer_certificates()
        .and_then(<[_]>::first)
        .and_then(|leaf| match lateen_identity::identity_of(leaf) {
            Ok(identity) => Some(VerifiedIdentity {
                spiffe: identity.to_string(),
                namespace: identity.namespace,
                service_account: identity.service_account,
            }),
            Err(e) => {
                tracing::debug!(error = %e, "xDS TLS client certificate carries no mesh identity");
                None
            }
        });
    AuthenticatedPeer { identity }
}
