//! Responses encoded straight from the shared snapshot into one gRPC frame each.
//!
//! Building a `DiscoveryResponse` message would copy every packed resource into it before
//! encoding copies it again; here each resource is written once, from the `Arc` the snapshot
//! holds, into a buffer of exactly the frame's size that is freed as soon as it is sent.

use bytes::Bytes;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, message, string};

use crate::snapshot::{ResourceMap, VersionedResource};

/// gRPC message prefix: compressed flag and big-endian length.
const PREFIX: usize = 5;

/// `DiscoveryResponse.resources` for a set: every resource with a body, as `Any` messages.
pub(crate) fn sotw_resources(set: &ResourceMap) -> Bytes {
    let bodies = set.values().filter(|r| !r.resource.type_url.is_empty());
    let len = bodies
        .clone()
        .map(|r| message::encoded_len(2, &*r.resource))
        .sum();
    let mut buf = Vec::with_capacity(len);
    for r in bodies {
        message::encode(2, &*r.resource, &mut buf);
    }
    Bytes::from(buf)
}

/// `DeltaDiscoveryResponse.resources` for some resources: `Resource` messages.
pub(crate) fn delta_resources<'a>(
    resources: impl Iterator<Item = (&'a str, &'a VersionedResource)> + Clone,
) -> Bytes {
    // Resource: version 1, resource 2, name 3.
    let resource_len = |name: &str, r: &VersionedResource| {
        str_len(1, &r.version) + message::encoded_len(2, &*r.resource) + str_len(3, name)
    };
    let len = resources
        .clone()
        .map(|(name, r)| {
            let inner = resource_len(name, r);
            1 + encoded_len_varint(inner as u64) + inner
        })
        .sum();
    let mut buf = Vec::with_capacity(len);
    for (name, r) in resources {
        encode_key(2, WireType::LengthDelimited, &mut buf);
        encode_varint(resource_len(name, r) as u64, &mut buf);
        put_str(1, &r.version, &mut buf);
        message::encode(2, &*r.resource, &mut buf);
        put_str(3, name, &mut buf);
    }
    Bytes::from(buf)
}

/// A `DiscoveryResponse` (SotW) message in two pieces: the gRPC prefix with the small fields,
/// then `resources`, already encoded ([`sotw_resources`]) and shared by every stream sending
/// the same set. Field order is free in protobuf.
pub(crate) fn sotw_frame(
    version_info: &str,
    resources: Bytes,
    type_url: &str,
    nonce: &str,
) -> [Bytes; 2] {
    // Field numbers from envoy.service.discovery.v3.DiscoveryResponse.
    let head_len = str_len(1, version_info) + str_len(4, type_url) + str_len(5, nonce);
    let head = frame(head_len + resources.len(), head_len, |buf| {
        put_str(1, version_info, buf);
        put_str(4, type_url, buf);
        put_str(5, nonce, buf);
    });
    [head, resources]
}

/// A `DeltaDiscoveryResponse` message in two pieces, like [`sotw_frame`]: the head, then the
/// encoded `resources` ([`delta_resources`]).
pub(crate) fn delta_frame(
    system_version_info: &str,
    resources: Bytes,
    type_url: &str,
    removed: &[String],
    nonce: &str,
) -> [Bytes; 2] {
    // envoy.service.discovery.v3.DeltaDiscoveryResponse: system_version_info 1, resources 2,
    // type_url 4, nonce 5, removed_resources 6.
    let head_len = str_len(1, system_version_info)
        + str_len(4, type_url)
        + str_len(5, nonce)
        + removed
            .iter()
            .map(|n| string::encoded_len(6, n))
            .sum::<usize>();
    let head = frame(head_len + resources.len(), head_len, |buf| {
        put_str(1, system_version_info, buf);
        put_str(4, type_url, buf);
        put_str(5, nonce, buf);
        for name in removed {
            string::encode(6, name, buf);
        }
    });
    [head, resources]
}

/// The gRPC prefix for a message of `message_len` bytes, then the first `written` of them.
fn frame(message_len: usize, written: usize, write: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut buf = Vec::with_capacity(PREFIX + written);
    buf.push(0);
    // A response over 4 GiB cannot be framed; the length field says so by saturating and the
    // peer rejects it, which is the most a server can do.
    buf.extend_from_slice(&u32::try_from(message_len).unwrap_or(u32::MAX).to_be_bytes());
    write(&mut buf);
    debug_assert_eq!(
        buf.len(),
        PREFIX + written,
        "encoded length matches the computed one"
    );
    Bytes::from(buf)
}

/// proto3 leaves empty strings out.
fn str_len(tag: u32, value: &str) -> usize {
    if value.is_empty() {
        0
    } else {
        prost::encoding::key_len(tag) + encoded_len_varint(value.len() as u64) + value.len()
    }
}

fn put_str(tag: u32, value: &str, buf: &mut Vec<u8>) {
    if !value.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(value.len() as u64, buf);
        buf.extend_from_slice(value.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use envoy_types::pb::envoy::service::discovery::v3::{
        DeltaDiscoveryResponse, DiscoveryResponse, Resource,
    };
    use envoy_types::pb::google::protobuf::Any;
    use prost::Message;

    use super::*;

    fn resource(type_url: &str, body: &[u8], version: &str) -> VersionedResource {
        VersionedResource {
            resource: Arc::new(Any {
                type_url: type_url.into(),
                value: body.to_vec(),
            }),
            version: version.into(),
        }
    }

    fn payload(frame: &[u8]) -> &[u8] {
        assert_eq!(frame[0], 0, "uncompressed");
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(frame.len(), PREFIX + len);
        &frame[PREFIX..]
    }

    fn sotw(version: &str, resources: &[&VersionedResource], nonce: &str) -> Vec<u8> {
        let set = crate::snapshot::TypeResources::new(
            resources
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("r{i}"), (*r).clone()))
                .collect(),
        );
        let pieces = sotw_frame(version, sotw_resources(set.map()), "t/a", nonce);
        pieces.concat()
    }

    #[test]
    fn sotw_frame_decodes_as_the_message() {
        let a = resource("t/a", &[1, 2, 3], "v1");
        let b = resource("t/a", &[7; 300], "v2");
        let frame = sotw("set-1", &[&a, &b], "n-9");
        let decoded = DiscoveryResponse::decode(payload(&frame)).expect("decodes");
        assert_eq!(
            decoded,
            DiscoveryResponse {
                version_info: "set-1".into(),
                resources: vec![(*a.resource).clone(), (*b.resource).clone()],
                type_url: "t/a".into(),
                nonce: "n-9".into(),
                ..Default::default()
            }
        );
        let empty = sotw("", &[], "n");
        let decoded = DiscoveryResponse::decode(payload(&empty)).expect("decodes");
        assert!(decoded.resources.is_empty());
    }

    #[test]
    fn delta_frame_decodes_as_the_message() {
        let a = resource("t/a", &[5; 200], "v1");
        let frame = delta_frame(
            "sys",
            delta_resources([("alpha", &a)].into_iter()),
            "t/a",
            &["gone".to_string()],
            "n-1",
        )
        .concat();
        let decoded = DeltaDiscoveryResponse::decode(payload(&frame)).expect("decodes");
        assert_eq!(
            decoded,
            DeltaDiscoveryResponse {
                system_version_info: "sys".into(),
                resources: vec![Resource {
                    name: "alpha".into(),
                    version: "v1".into(),
                    resource: Some((*a.resource).clone()),
                    ..Default::default()
                }],
                type_url: "t/a".into(),
                removed_resources: vec!["gone".into()],
                nonce: "n-1".into(),
                ..Default::default()
            }
        );
    }
}
