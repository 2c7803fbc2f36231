//! Delta client stream: subscribe/unsubscribe diffs, per-resource versions kept across
//! reconnects and sent back as `initial_resource_versions`.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use super::{AdsResponse, ClientState, ClientStream, nack_status};

#[derive(Default)]
pub(super) struct DeltaStream;

impl ClientStream for DeltaStream {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;

    fn initial_requests(&mut self, state: &ClientState) -> Vec<DeltaDiscoveryRequest> {
        state
            .config
            .subscriptions
            .iter()
            .map(|(type_url, names)| DeltaDiscoveryRequest {
                type_url: type_url.clone(),
                resource_names_subscribe: names.iter().cloned().collect(),
                initial_resource_versions: state
                    .resources
                    .get(type_url)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                ..Default::default()
            })
            .collect()
    }

    async fn open(
        mut client: AggregatedDiscoveryServiceClient<Channel>,
        requests: tonic::Request<UnboundedReceiverStream<DeltaDiscoveryRequest>>,
    ) -> Result<Streaming<DeltaDiscoveryResponse>, Status> {
        Ok(client
            .delta_aggregated_resources(requests)
            .await?
            .into_inner())
    }

    fn wrap(response: DeltaDiscoveryResponse) -> AdsResponse {
        AdsResponse::Delta(response)
    }

    fn answer(
        &mut self,
        state: &mut ClientState,
        response: &AdsResponse,
        verdict: Result<(), String>,
    ) -> DeltaDiscoveryRequest {
        let AdsResponse::Delta(response) = response else {
            unreachable!("a delta stream only yields delta responses")
        };
        let error_detail = match verdict {
            Ok(()) => {
                let known = state
                    .resources
                    .entry(response.type_url.clone())
                    .or_default();
                for r in &response.resources {
                    known.insert(r.name.clone(), r.version.clone());
                }
                for name in &response.removed_resources {
                    known.remove(name);
                }
                None
            }
            Err(detail) => nack_status(detail),
        };
        DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            error_detail,
            ..Default::default()
        }
    }

    fn resubscribe(
        &mut self,
        state: &mut ClientState,
        type_url: &str,
        old: &BTreeSet<String>,
    ) -> DeltaDiscoveryRequest {
        let names = state
            .config
            .subscriptions
            .get(type_url)
            .cloned()
            .unwrap_or_default();
        let unsubscribe: Vec<String> = old.difference(&names).cloned().collect();
        // Forgotten resources must not be claimed in `initial_resource_versions` later.
        if let Some(known) = state.resources.get_mut(type_url) {
            known.retain(|name, _| !unsubscribe.contains(name));
        }
        DeltaDiscoveryRequest {
            type_url: type_url.to_string(),
            resource_names_subscribe: names.difference(old).cloned().collect(),
            resource_names_unsubscribe: unsubscribe,
            ..Default::default()
        }
    }

    fn set_node(request: &mut DeltaDiscoveryRequest, node: Node) {
        request.node = Some(node);
    }
}
