//! Incremental ADS stream (`DeltaAggregatedResources`): per-resource versions, removals, and
//! the proxy's `initial_resource_versions` honoured on reconnect.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};

use super::registry::StreamMode;
use super::stream::{Planned, Protocol, StreamCore, initial_wildcard};

/// Delta plugged into the shared stream loop.
pub(super) struct Delta;

impl Protocol for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
    const MODE: StreamMode = StreamMode::Delta;

    fn node(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    fn on_request(core: &mut StreamCore, request: DeltaDiscoveryRequest) {
        let type_url = request.type_url.as_str();
        if type_url.is_empty() {
            return;
        }
        let error = request
            .error_detail
            .as_ref()
            .map(|e| (e.code, e.message.clone()));
        let first_for_type = !core.types.contains_key(type_url);
        // Delta ACKs carry no version; the registry records the version sent with the nonce.
        // A stale nonce only voids the ACK part: subscription changes are diffs and must
        // not be lost.
        core.answer(type_url, &request.response_nonce, "", error);
        let state = core.subscription(type_url);
        if first_for_type {
            state.wildcard = initial_wildcard(type_url, &request.resource_names_subscribe);
        }
        for name in request.resource_names_subscribe {
            if name == "*" {
                state.wildcard = true;
            } else {
                state.names.insert(name);
            }
        }
        for name in &request.resource_names_unsubscribe {
            if name == "*" {
                state.wildcard = false;
            } else {
                state.names.remove(name);
            }
        }
        // What the proxy already has (after a reconnect) is not resent while unchanged.
        for (name, version) in request.initial_resource_versions {
            if state.wants(&name) {
                state.sent.insert(name, version);
            }
        }
        // Unsubscribed resources are forgotten without a removal message.
        let wanted: Vec<String> = state
            .sent
            .keys()
            .filter(|n| state.wants(n))
            .cloned()
            .collect();
        state.sent.retain(|n, _| wanted.contains(n));
    }

    fn respond(core: &StreamCore, planned: &Planned, nonce: String) -> DeltaDiscoveryResponse {
        let empty = Default::default();
        let sent = core
            .types
            .get(&planned.type_url)
            .map_or(&empty, |s| &s.sent);
        let resources = planned
            .view
            .iter()
            .filter(|(name, r)| sent.get(*name) != Some(&r.version))
            .map(|(name, r)| Resource {
                name: name.clone(),
                version: r.version.clone(),
                resource: Some(r.resource.clone()),
                ..Default::default()
            })
            .collect();
        let removed_resources = sent
            .keys()
            .filter(|n| !planned.view.contains_key(*n))
            .cloned()
            .collect();
        DeltaDiscoveryResponse {
            system_version_info: planned.version.clone(),
            resources,
            type_url: planned.type_url.clone(),
            removed_resources,
            nonce,
            ..Default::default()
        }
    }
}
