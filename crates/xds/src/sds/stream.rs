//! One state-of-the-world SDS stream: the names Envoy asked for, a response with every
//! known one whenever the names or the secrets change, and ACK/NACK bookkeeping by nonce.

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::{SECRET_TYPE_URL, SecretsWatch, secret_resources};

/// A request for another type on the SDS endpoint is a client bug; say so.
pub(super) fn check_type(type_url: &str) -> Result<(), Status> {
    if type_url.is_empty() || type_url == SECRET_TYPE_URL {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "SDS serves {SECRET_TYPE_URL}, not {type_url}"
        )))
    }
}

/// What was last sent on the stream.
struct Sent {
    nonce: String,
    version: String,
}

pub(super) async fn serve(
    mut requests: Streaming<DiscoveryRequest>,
    mut secrets: SecretsWatch,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
) {
    let mut names: Option<Vec<String>> = None;
    let mut sent: Option<Sent> = None;
    let mut nonces: u64 = 0;
    loop {
        let mut push = false;
        tokio::select! {
            request = requests.message() => {
                let request = match request {
                    Ok(Some(request)) => request,
                    Ok(None) => return,
                    Err(status) => {
                        tracing::debug!(%status, "SDS stream ended");
                        return;
                    }
                };
                if let Err(status) = check_type(&request.type_url) {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                if !request.response_nonce.is_empty() {
                    match &sent {
                        Some(last) if last.nonce == request.response_nonce => {
                            match &request.error_detail {
                                Some(error) => tracing::warn!(
                                    secrets = ?request.resource_names,
                                    version = %last.version,
                                    error = %error.message,
                                    "Envoy rejected (NACK) the secrets; it keeps its previous ones"
                                ),
                                None => tracing::debug!(
                                    secrets = ?request.resource_names,
                                    version = %request.version_info,
                                    "Envoy accepted (ACK) the secrets"
                                ),
                            }
                        }
                        // An answer to an older response: the newer one is on its way.
                        _ => continue,
                    }
                }
                if names.as_ref() != Some(&request.resource_names) {
                    names = Some(request.resource_names);
                    push = true;
                }
            }
            changed = secrets.changed() => {
                if changed.is_err() {
                    return;
                }
                push = names.is_some();
            }
        }
        if !push {
            continue;
        }
        let Some(material) = secrets.borrow_and_update().clone() else {
            // No certificate yet: the first one wakes the `changed` branch.
            continue;
        };
        let Some(names) = &names else { continue };
        let resources = secret_resources(&material, names);
        if resources.is_empty() {
            continue;
        }
        nonces += 1;
        let nonce = nonces.to_string();
        let response = DiscoveryResponse {
            version_info: material.version.clone(),
            resources,
            type_url: SECRET_TYPE_URL.to_string(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        tracing::debug!(secrets = ?names, version = %material.version, "pushing secrets");
        if tx.send(Ok(response)).await.is_err() {
            return;
        }
        sent = Some(Sent {
            nonce,
            version: material.version.clone(),
        });
    }
}
