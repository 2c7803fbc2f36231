//! What the SDS server hands out, and how each named secret is built from it.

use std::fmt;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::DataSource;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate, secret,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use super::{ROOT_SECRET, SECRET_TYPE_URL, WORKLOAD_SECRET};

/// The workload's certificate as PEM, with the version SDS announces for it (a new one on
/// every rotation).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretMaterial {
    pub version: String,
    /// Leaf first, then intermediates.
    pub cert_chain_pem: String,
    pub private_key_pem: String,
    /// The roots peers' chains must lead to.
    pub roots_pem: String,
}

impl fmt::Debug for SecretMaterial {
    // Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretMaterial")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The current secrets; `None` until the first certificate.
pub type SecretsWatch = tokio::sync::watch::Receiver<Option<Arc<SecretMaterial>>>;

fn inline(pem: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(Specifier::InlineBytes(pem.as_bytes().to_vec())),
        ..Default::default()
    })
}

/// The packed secrets among `names` that this server knows (`default`, `ROOTCA`); other
/// names are left out (logged), so Envoy keeps waiting for them as for any missing resource.
pub fn secret_resources(material: &SecretMaterial, names: &[String]) -> Vec<Any> {
    let mut out = Vec::new();
    for name in names {
        let kind = match name.as_str() {
            WORKLOAD_SECRET => secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: inline(&material.cert_chain_pem),
                private_key: inline(&material.private_key_pem),
                ..Default::default()
            }),
            ROOT_SECRET => secret::Type::ValidationContext(CertificateValidationContext {
                trusted_ca: inline(&material.roots_pem),
                ..Default::default()
            }),
            other => {
                tracing::warn!(
                    secret = other,
                    "SDS request for an unknown secret; only \"{WORKLOAD_SECRET}\" and \"{ROOT_SECRET}\" are served"
                );
                continue;
            }
        };
        let secret = Secret {
            name: name.clone(),
            r#type: Some(kind),
        };
        out.push(Any {
            type_url: SECRET_TYPE_URL.to_string(),
            value: secret.encode_to_vec(),
        });
    }
    out
}
