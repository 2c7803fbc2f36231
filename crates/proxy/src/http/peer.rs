//! Istio's peer metadata exchange over plain HTTP: a sidecar sends its workload's identity
//! in `x-envoy-peer-metadata` (base64 of a protobuf `google.protobuf.Struct` with Istio's
//! keys: WORKLOAD_NAME, NAMESPACE, LABELS, CLUSTER_ID, NAME) and `x-envoy-peer-metadata-id`,
//! on requests (outbound) and responses (inbound). The receiving proxy uses it for the
//! `source_*` / `destination_*` metric labels and removes the headers, so applications
//! never see them.

use base64::Engine;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use lateen_xds::pb::google::protobuf::{Struct, Value, value::Kind};
use lateen_xds::prost::Message;
use std::sync::{Arc, Mutex};

use crate::metrics::PeerLabels;

pub static PEER_METADATA: HeaderName = HeaderName::from_static("x-envoy-peer-metadata");
pub static PEER_METADATA_ID: HeaderName = HeaderName::from_static("x-envoy-peer-metadata-id");

fn text(value: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(value.to_string())),
    }
}

fn known(value: &str) -> Option<&str> {
    (value != "unknown" && !value.is_empty()).then_some(value)
}

/// The header value describing `local`, or `None` when nothing about it is known.
pub fn encode(local: &PeerLabels, node_id: Option<&str>) -> Option<(HeaderValue, HeaderValue)> {
    let workload = known(&local.workload)?;
    let mut labels = Struct::default();
    for (key, value) in [("app", &local.app), ("version", &local.version)] {
        if let Some(value) = known(value) {
            labels.fields.insert(key.to_string(), text(value));
        }
    }
    let mut fields = Struct::default();
    fields.fields.insert("WORKLOAD_NAME".into(), text(workload));
    fields.fields.insert(
        "LABELS".into(),
        Value {
            kind: Some(Kind::StructValue(labels)),
        },
    );
    for (key, value) in [
        ("NAMESPACE", &local.namespace),
        ("CLUSTER_ID", &local.cluster),
    ] {
        if let Some(value) = known(value) {
            fields.fields.insert(key.to_string(), text(value));
        }
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(fields.encode_to_vec());
    let id = node_id.unwrap_or(workload);
    Some((
        HeaderValue::from_str(&encoded).ok()?,
        HeaderValue::from_str(id).ok()?,
    ))
}

/// Reads a peer's identity from the header value; `None` if it is not one.
pub fn decode(value: &HeaderValue) -> Option<PeerLabels> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_bytes())
        .ok()?;
    let fields = Struct::decode(bytes.as_slice()).ok()?;
    let string = |value: Option<&Value>| match value.and_then(|value| value.kind.as_ref()) {
        Some(Kind::StringValue(text)) => Some(text.clone()),
        _ => None,
    };
    let labels = match fields
        .fields
        .get("LABELS")
        .and_then(|value| value.kind.as_ref())
    {
        Some(Kind::StructValue(labels)) => labels.clone(),
        _ => Struct::default(),
    };
    let app = string(labels.fields.get("app"))
        .or_else(|| string(labels.fields.get("service.istio.io/canonical-name")));
    let version = string(labels.fields.get("version"))
        .or_else(|| string(labels.fields.get("service.istio.io/canonical-revision")));
    let workload = string(fields.fields.get("WORKLOAD_NAME"))?;
    let namespace = string(fields.fields.get("NAMESPACE"));
    let cluster = string(fields.fields.get("CLUSTER_ID"));
    Some(PeerLabels::new(
        Some(&workload),
        namespace.as_deref(),
        app.as_deref(),
        version.as_deref(),
        None,
        cluster.as_deref(),
        None,
        None,
    ))
}

/// Removes the exchange headers; returns the peer metadata value if there was one.
pub fn take(headers: &mut HeaderMap) -> Option<HeaderValue> {
    headers.remove(&PEER_METADATA_ID);
    headers.remove(&PEER_METADATA)
}

/// Decoded peers of one connection, so a connection that always talks to the same peer
/// decodes its metadata once, and merged destination labels are built once per peer and
/// service.
#[derive(Default)]
pub struct PeerCache {
    decoded: Mutex<Option<(HeaderValue, Arc<PeerLabels>)>>,
    /// Keyed by the service and peer values themselves (held, compared by address): a key
    /// that only remembered their addresses could match a new value allocated where a freed
    /// one was.
    merged: Mutex<Option<MergedEntry>>,
}

struct MergedEntry {
    service: Arc<PeerLabels>,
    peer: Arc<PeerLabels>,
    merged: Arc<PeerLabels>,
}

impl PeerCache {
    pub fn peer(&self, value: &HeaderValue) -> Option<Arc<PeerLabels>> {
        let mut cached = self
            .decoded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((seen, peer)) = cached.as_ref()
            && seen == value
        {
            return Some(peer.clone());
        }
        let peer = Arc::new(decode(value)?);
        *cached = Some((value.clone(), peer.clone()));
        Some(peer)
    }

    /// The upstream workload `peer` as the destination of the service in `service`.
    pub fn destination(
        &self,
        service: &Arc<PeerLabels>,
        peer: &Arc<PeerLabels>,
    ) -> Arc<PeerLabels> {
        let mut cached = self
            .merged
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = cached.as_ref()
            && Arc::ptr_eq(&entry.service, service)
            && Arc::ptr_eq(&entry.peer, peer)
        {
            return entry.merged.clone();
        }
        let merged = Arc::new(PeerLabels::local_destination(peer, service));
        *cached = Some(MergedEntry {
            service: service.clone(),
            peer: peer.clone(),
            merged: merged.clone(),
        });
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(name: &str) -> Arc<PeerLabels> {
        Arc::new(PeerLabels::new(
            Some(name),
            Some("default"),
            Some(name),
            Some("v1"),
            None,
            None,
            None,
            None,
        ))
    }

    #[test]
    fn merged_destinations_follow_the_values_not_their_addresses() {
        let cache = PeerCache::default();
        let peer = workload("reviews-v1");
        for round in 0..50 {
            // A service value dropped and a new one made: the allocator often hands the new
            // one the old one's address.
            let name = format!("service-{round}");
            let service = Arc::new(PeerLabels::from_destination(
                &crate::config::model::Destination {
                    service: Some(format!("{name}.default.svc.cluster.local")),
                    ..Default::default()
                },
            ));
            let merged = cache.destination(&service, &peer);
            let expected = PeerLabels::local_destination(&peer, &service);
            assert_eq!(*merged, expected, "round {round}");
        }
    }

    #[test]
    fn round_trips_a_workload() {
        let local = PeerLabels::new(
            Some("reviews-v2"),
            Some("default"),
            Some("reviews"),
            Some("v2"),
            None,
            Some("Kubernetes"),
            None,
            None,
        );
        let (value, id) = encode(
            &local,
            Some("sidecar~1.2.3.4~x.default~default.svc.cluster.local"),
        )
        .expect("encodes");
        assert!(id.to_str().is_ok_and(|id| id.starts_with("sidecar~")));
        let peer = decode(&value).expect("decodes");
        assert_eq!(
            (
                &*peer.workload,
                &*peer.namespace,
                &*peer.app,
                &*peer.version,
                &*peer.cluster
            ),
            ("reviews-v2", "default", "reviews", "v2", "Kubernetes")
        );
        assert!(decode(&HeaderValue::from_static("not base64!")).is_none());
        assert!(encode(&PeerLabels::unknown(), None).is_none());
    }
}
