//! The self-signed mesh CA kept in the Secret `istio-ca-secret` of lateend's namespace, as
//! istiod keeps it (type `istio.io/ca-root`, keys `ca-cert.pem`, `ca-key.pem`,
//! `cert-chain.pem`, `root-cert.pem`): the first replica makes it, the others (and later
//! starts) read it; a create that loses the race reads the winner's.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use lateen_identity::{CaFiles, MeshCa};

pub const SECRET_NAME: &str = "istio-ca-secret";
const SECRET_TYPE: &str = "istio.io/ca-root";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("Secret {namespace}/{SECRET_NAME}: {source}")]
    Api {
        namespace: String,
        source: kube::Error,
    },
    #[error("Secret {namespace}/{SECRET_NAME}: {reason}")]
    Malformed { namespace: String, reason: String },
    #[error("generating the mesh CA: {0}")]
    Generate(#[from] lateen_identity::CaError),
}

/// The cluster's mesh CA: read from the Secret, or generated and stored there.
pub async fn shared(
    client: &kube::Client,
    namespace: &str,
    trust_domain: &str,
) -> Result<MeshCa, SecretError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let api_error = |source| SecretError::Api {
        namespace: namespace.to_string(),
        source,
    };
    for _ in 0..2 {
        if let Some(secret) = api.get_opt(SECRET_NAME).await.map_err(api_error)? {
            tracing::info!(%namespace, "mesh CA: the root in Secret {SECRET_NAME}");
            return from_secret(&secret, namespace);
        }
        let ca = MeshCa::self_signed(trust_domain)?;
        match api
            .create(&PostParams::default(), &to_secret(ca.files()))
            .await
        {
            Ok(_) => {
                tracing::info!(%namespace, "mesh CA: a new self-signed root, kept in Secret {SECRET_NAME}");
                return Ok(ca);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(api_error(e)),
        }
    }
    let secret = api.get(SECRET_NAME).await.map_err(api_error)?;
    from_secret(&secret, namespace)
}

fn from_secret(secret: &Secret, namespace: &str) -> Result<MeshCa, SecretError> {
    let field = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default()
    };
    let files = CaFiles {
        ca_cert_pem: field(CaFiles::CA_CERT),
        ca_key_pem: field(CaFiles::CA_KEY),
        cert_chain_pem: field(CaFiles::CERT_CHAIN),
        root_cert_pem: field(CaFiles::ROOT_CERT),
    };
    MeshCa::from_files(files).map_err(|e| SecretError::Malformed {
        namespace: namespace.to_string(),
        reason: e.to_string(),
    })
}

fn to_secret(files: &CaFiles) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.into()),
            labels: Some(BTreeMap::from([("app".into(), "lateend".into())])),
            ..Default::default()
        },
        type_: Some(SECRET_TYPE.into()),
        data: Some(
            files
                .entries()
                .into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_secret() {
        let ca = MeshCa::self_signed("cluster.local").unwrap();
        let back = from_secret(&to_secret(ca.files()), "istio-system").unwrap();
        assert_eq!(back.root_cert_pem(), ca.root_cert_pem());
        let mut broken = to_secret(ca.files());
        broken.data.as_mut().unwrap().remove(CaFiles::CA_KEY);
        let err = from_secret(&broken, "istio-system")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("istio-ca-secret") && err.contains("ca-key.pem"),
            "{err}"
        );
    }
}
