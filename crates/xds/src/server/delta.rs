//! Incremental ADS stream (`DeltaAggregatedResources`): per-resource versions, removals, and
//! the proxy's `initial_resource_versions` honoured on reconnect.

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;

use super::registry::StreamMode;
use super::stream::{Planned, Protocol, StreamCore, initial_wildcard, placeholder};
use crate::snapshot::{VersionedResource, Wire};

/// Delta plugged into the shared stream loop.
pub(super) struct Delta;

impl Protocol for Delta {
    type Request = DeltaDiscoveryRequest;
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
        let mut wildcard = core.types.get(type_url).is_some_and(|s| s.wildcard);
        if first_for_type {
            wildcard = initial_wildcard(type_url, &request.resource_names_subscribe);
        }
        // Most requests (ACKs) change no subscription: only then copy the shared name set.
        let mut names = None;
        if !request.resource_names_subscribe.is_empty()
            || !request.resource_names_unsubscribe.is_empty()
        {
            let current = core
                .types
                .get(type_url)
                .map(|s| s.names.clone())
                .unwrap_or_default();
            let mut next = (*current).clone();
            for name in request.resource_names_subscribe {
                if name == "*" {
                    wildcard = true;
                } else {
                    next.insert(name);
                }
            }
            for name in &request.resource_names_unsubscribe {
                if name == "*" {
                    wildcard = false;
                } else {
                    next.remove(name);
                }
            }
            if next != *current {
                names = Some(core.shared.subscriptions.intern(next));
            }
        }
        let state = core.subscription(type_url);
        state.wildcard = wildcard;
        if let Some(names) = names {
            state.names = names;
        }
        // What the proxy already has (after a reconnect) is not resent while unchanged.
        let has: Vec<(String, String)> = request
            .initial_resource_versions
            .into_iter()
            .filter(|(name, _)| state.wants(name))
            .collect();
        let forgotten = state.sent.map().keys().any(|n| !state.wants(n));
        if has.is_empty() && !forgotten {
            return;
        }
        let (wildcard, names) = (state.wildcard, &state.names);
        let sent = std::sync::Arc::make_mut(&mut state.sent).edit();
        for (name, version) in has {
            sent.insert(name, placeholder(version));
        }
        // Unsubscribed resources are forgotten without a removal message.
        sent.retain(|n, _| wildcard || names.contains(n));
    }

    fn respond(core: &StreamCore, planned: &Planned, nonce: &str) -> Vec<Bytes> {
        let empty = Default::default();
        let sent = core
            .types
            .get(&planned.type_url)
            .map_or(&empty, |s| s.sent.map());
        let view = planned.view.map();
        let changed: Vec<(&str, &VersionedResource)> = view
            .iter()
            .filter(|(name, r)| sent.get(*name).map(|s| &s.version) != Some(&r.version))
            .filter(|(_, r)| !r.resource.type_url.is_empty())
            .map(|(name, r)| (name.as_str(), r))
            .collect();
        let removed: Vec<String> = sent
            .keys()
            .filter(|n| !view.contains_key(*n))
            .cloned()
            .collect();
        // When everything is new (a first push, or a route table that changed as a whole) the
        // set's shared encoding serves every stream.
        let resources = if changed.len() == view.len() {
            planned.view.encoded(Wire::Delta, |all| {
                super::wire::delta_resources(all.iter().map(|(n, r)| (n.as_str(), r)))
            })
        } else {
            super::wire::delta_resources(changed.iter().copied())
        };
        super::wire::delta_frame(
            &planned.version,
            resources,
            &planned.type_url,
            &removed,
            nonce,
        )
        .into()
    }
}
