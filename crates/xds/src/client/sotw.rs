//! State-of-the-world client stream: every request restates the type's names and the last
//! accepted `version_info`.

use std::collections::{BTreeSet, HashMap};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use super::{AdsResponse, ClientState, ClientStream, nack_status};

#[derive(Default)]
pub(super) struct SotwStream {
    /// Last nonce received per type on this stream.
    nonces: HashMap<String, String>,
}

fn request(state: &ClientState, type_url: &str, nonce: String) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.to_string(),
        version_info: state.versions.get(type_url).cloned().unwrap_or_default(),
        resource_names: state
            .config
            .subscriptions
            .get(type_url)
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default(),
        response_nonce: nonce,
        ..Default::default()
    }
}

impl ClientStream for SotwStream {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;

    fn initial_requests(&mut self, state: &ClientState) -> Vec<DiscoveryRequest> {
        state
            .config
            .subscriptions
            .keys()
            .map(|t| request(state, t, String::new()))
            .collect()
    }

    async fn open(
        mut client: AggregatedDiscoveryServiceClient<Channel>,
        requests: tonic::Request<UnboundedReceiverStream<DiscoveryRequest>>,
    ) -> Result<Streaming<DiscoveryResponse>, Status> {
        Ok(client
            .stream_aggregated_resources(requests)
            .await?
            .into_inner())
    }

    fn wrap(response: DiscoveryResponse) -> AdsResponse {
        AdsResponse::Sotw(response)
    }

    fn answer(
        &mut self,
        state: &mut ClientState,
        response: &AdsResponse,
        verdict: Result<(), String>,
    ) -> DiscoveryRequest {
        let AdsResponse::Sotw(response) = response else {
            unreachable!("a SotW stream only yields SotW responses")
        };
        let type_url = &response.type_url;
        self.nonces.insert(type_url.clone(), response.nonce.clone());
        let error_detail = match verdict {
            Ok(()) => {
                state
                    .versions
                    .insert(type_url.clone(), response.version_info.clone());
                None
            }
            Err(detail) => nack_status(detail),
        };
        DiscoveryRequest {
            error_detail,
            ..request(state, type_url, response.nonce.clone())
        }
    }

    fn resubscribe(
        &mut self,
        state: &mut ClientState,
        type_url: &str,
        _old: &BTreeSet<String>,
    ) -> DiscoveryRequest {
        let nonce = self.nonces.get(type_url).cloned().unwrap_or_default();
        request(state, type_url, nonce)
    }

    fn set_node(request: &mut DiscoveryRequest, node: Node) {
        request.node = Some(node);
    }
}
