//! One serving CA for every lateend replica of a cluster, kept in the Secret
//! `lateend-serving-ca` (keys `ca-cert.pem`, `ca-key.pem`) of lateend's namespace: the first
//! replica to start creates it, the others read it (a create that loses the race reads the
//! winner's). Each replica signs its own serving certificate for 15012/15017 with it, so the
//! one `caBundle` and `istio-ca-root-cert` the leader publishes is trusted by every replica's
//! certificate. (istiod signs its serving certificate with the mesh CA in `istio-ca-secret`;
//! lateend's mesh CA is a later issue, and this Secret stays separate so it never takes an
//! Istio CA for its own.)

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use lateen_inject::webhook::ServingCa;

pub const SECRET_NAME: &str = "lateend-serving-ca";
const CERT_KEY: &str = "ca-cert.pem";
const KEY_KEY: &str = "ca-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum ServingCaError {
    #[error("Secret {namespace}/{SECRET_NAME}: {source}")]
    Api {
        namespace: String,
        source: kube::Error,
    },
    #[error("Secret {namespace}/{SECRET_NAME}: key {key} is missing or not UTF-8 PEM")]
    Malformed {
        namespace: String,
        key: &'static str,
    },
    #[error("generating the serving CA: {0}")]
    Generate(#[from] lateen_inject::webhook::CertError),
}

/// The cluster's serving CA: read from the Secret, or generated and stored there.
pub async fn shared(client: &kube::Client, namespace: &str) -> Result<ServingCa, ServingCaError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let api_error = |source| ServingCaError::Api {
        namespace: namespace.to_string(),
        source,
    };
    // Two rounds: a create that loses to another replica's reads that one's CA.
    for _ in 0..2 {
        if let Some(secret) = api.get_opt(SECRET_NAME).await.map_err(api_error)? {
            return from_secret(&secret, namespace);
        }
        let ca = ServingCa::generate()?;
        match api.create(&PostParams::default(), &to_secret(&ca)).await {
            Ok(_) => {
                tracing::info!(%namespace, "created the serving CA Secret {SECRET_NAME}");
                return Ok(ca);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(api_error(e)),
        }
    }
    let secret = api.get(SECRET_NAME).await.map_err(api_error)?;
    from_secret(&secret, namespace)
}

fn from_secret(secret: &Secret, namespace: &str) -> Result<ServingCa, ServingCaError> {
    let field = |key: &'static str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .filter(|pem| pem.contains("-----BEGIN"))
            .ok_or(ServingCaError::Malformed {
                namespace: namespace.to_string(),
                key,
            })
    };
    Ok(ServingCa {
        cert_pem: field(CERT_KEY)?,
        key_pem: field(KEY_KEY)?,
    })
}

fn to_secret(ca: &ServingCa) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.into()),
            labels: Some(BTreeMap::from([("app".into(), "lateend".into())])),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            (
                CERT_KEY.into(),
                ByteString(ca.cert_pem.clone().into_bytes()),
            ),
            (KEY_KEY.into(), ByteString(ca.key_pem.clone().into_bytes())),
        ])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_secret() {
        let ca = ServingCa::generate().unwrap();
        let back = from_secret(&to_secret(&ca), "istio-system").unwrap();
        assert_eq!(back.cert_pem, ca.cert_pem);
        assert_eq!(back.key_pem, ca.key_pem);
        let mut broken = to_secret(&ca);
        broken.data.as_mut().unwrap().remove(KEY_KEY);
        let err = from_secret(&broken, "istio-system")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lateend-serving-ca") && err.contains("ca-key.pem"),
            "{err}"
        );
    }
}
