//! State-of-the-world ADS stream (`StreamAggregatedResources`): every response carries the
//! full set of subscribed resources of its type, except for the types that send only what
//! changed ([`crate::types::sotw_sends_changes_only`]: endpoints) once the stream has sent the
//! type before.

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;

use super::registry::StreamMode;
use super::stream::{Planned, Protocol, StreamCore, initial_wildcard};
use crate::snapshot::ResourceMap;
use crate::types::sotw_sends_changes_only;

/// SotW plugged into the shared stream loop.
pub(super) struct Sotw;

impl Protocol for Sotw {
    type Request = DiscoveryRequest;
    const MODE: StreamMode = StreamMode::Sotw;

    fn node(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    fn on_request(core: &mut StreamCore, request: DiscoveryRequest) {
        let type_url = request.type_url.as_str();
        if type_url.is_empty() {
            return;
        }
        let error = request
            .error_detail
            .as_ref()
            .map(|e| (e.code, e.message.clone()));
        if !core.answer(
            type_url,
            &request.response_nonce,
            &request.version_info,
            error,
        ) {
            return;
        }
        // Every SotW request restates the whole subscription of its type; an ACK usually
        // restates the same one.
        let wildcard = initial_wildcard(type_url, &request.resource_names);
        let listed: Vec<String> = request
            .resource_names
            .into_iter()
            .filter(|n| n != "*")
            .collect();
        let same = core.types.get(type_url).is_some_and(|s| {
            s.names.len() == listed.len() && listed.iter().all(|n| s.names.contains(n))
        });
        let names = (!same).then(|| {
            core.shared
                .subscriptions
                .intern(listed.into_iter().collect())
        });
        let state = core.subscription(type_url);
        state.wildcard = wildcard;
        if let Some(names) = names {
            state.names = names;
        }
    }

    fn respond(core: &StreamCore, planned: &Planned, nonce: &str) -> Vec<Bytes> {
        let resources = match changed_only(core, planned) {
            Some(changed) => super::wire::sotw_resources(&changed),
            // Every stream sending this set shares its encoding (a kept resource without a
            // body, delta bookkeeping only, is left out of it).
            None => planned
                .view
                .encoded(crate::snapshot::Wire::Sotw, super::wire::sotw_resources),
        };
        super::wire::sotw_frame(&planned.version, resources, &planned.type_url, nonce).into()
    }
}

/// The resources of `planned` that differ from what the stream last sent (new names, new
/// versions), when its type sends only changes and the proxy accepted the last response of
/// the type (after a NACK, or a response never answered, the whole set goes out again);
/// `None` when the whole set goes out.
fn changed_only(core: &StreamCore, planned: &Planned) -> Option<ResourceMap> {
    if !sotw_sends_changes_only(&planned.type_url) {
        return None;
    }
    let sent = &core
        .types
        .get(&planned.type_url)
        .filter(|s| s.responded && s.acked_version.as_deref() == Some(s.sent.version()))?
        .sent;
    let changed: ResourceMap = planned
        .view
        .map()
        .iter()
        .filter(|(name, r)| sent.map().get(*name).is_none_or(|s| s.version != r.version))
        .map(|(name, r)| (name.clone(), r.clone()))
        .collect();
    // Everything changed: the shared encoding of the whole set says the same.
    (changed.len() < planned.view.len()).then_some(changed)
}
