//! Incremental ADS stream (`DeltaAggregatedResources`): per-resource versions, removals, and
//! the proxy's `initial_resource_versions` honoured on reconnect.

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;

use super::registry::StreamMode;
use super::stream::{Planned, Protocol, StreamCore, initial_wildcard, placeholder, same_entry};
use crate::snapshot::{ResourceMap, VersionedResource, Wire};

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
        // An ACK (or NACK) that changes no subscription and reports nothing held: done. This is
        // almost every request, one per response per stream.
        if !first_for_type
            && request.resource_names_subscribe.is_empty()
            && request.resource_names_unsubscribe.is_empty()
            && request.initial_resource_versions.is_empty()
        {
            return;
        }
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
        let (changed, removed) = changes_between(view, sent);
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

/// What `view` changes and removes against `sent`, in one walk over both sorted maps (a
/// thousand streams do this on every push; looking each name up cost most of lateend's CPU
/// under endpoint churn). Placeholders (versions the proxy reported having) are never sent.
fn changes_between<'a>(
    view: &'a ResourceMap,
    sent: &ResourceMap,
) -> (Vec<(&'a str, &'a VersionedResource)>, Vec<String>) {
    let mut changed = Vec::new();
    let mut removed = Vec::new();
    let mut sent_iter = sent.iter().peekable();
    for entry in view {
        // Names only in `sent`, before this one, were removed.
        while let Some(&(sent_name, _)) = sent_iter.peek() {
            if sent_name < entry.0 {
                removed.push(sent_name.clone());
                sent_iter.next();
            } else {
                break;
            }
        }
        let unchanged = match sent_iter.peek() {
            Some(&sent_entry) if same_entry(entry, sent_entry) => true,
            Some(&(sent_name, sent_resource)) if sent_name == entry.0 => {
                sent_resource.version == entry.1.version
            }
            _ => false,
        };
        if sent_iter.peek().is_some_and(|(n, _)| *n == entry.0) {
            sent_iter.next();
        }
        if !unchanged && !entry.1.resource.type_url.is_empty() {
            changed.push((entry.0.as_str(), entry.1));
        }
    }
    removed.extend(sent_iter.map(|(n, _)| n.clone()));
    (changed, removed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use envoy_types::pb::google::protobuf::Any;

    use super::*;

    fn entry(version: &str) -> VersionedResource {
        VersionedResource {
            resource: Arc::new(Any {
                type_url: "t".into(),
                value: version.as_bytes().to_vec(),
            }),
            version: version.into(),
        }
    }

    #[test]
    fn changes_between_walks_both_maps() {
        let shared = entry("1");
        let sent: ResourceMap = [
            ("a".to_string(), entry("1")),
            ("b".to_string(), shared.clone()),
            ("c".to_string(), entry("1")),
            ("e".to_string(), entry("1")),
        ]
        .into();
        let view: ResourceMap = [
            ("a".to_string(), entry("2")),
            ("b".to_string(), shared),
            ("d".to_string(), entry("1")),
            ("e".to_string(), entry("1")),
            ("f".to_string(), placeholder("9".into())),
        ]
        .into();
        let (changed, removed) = changes_between(&view, &sent);
        let names: Vec<&str> = changed.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["a", "d"]);
        assert_eq!(removed, ["c"]);
        let nothing = ResourceMap::new();
        let (changed, removed) = changes_between(&nothing, &sent);
        assert!(changed.is_empty());
        assert_eq!(removed, ["a", "b", "c", "e"]);
    }
}
