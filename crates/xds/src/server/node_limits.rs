//! Bounds on what a proxy says about itself (issue #16 item 7). Anyone who reaches the
//! plaintext ADS port can send a first request, and its `node` is kept for the life of the
//! stream, shown on the debug endpoints and written to logs: an over-large id or metadata is
//! refused with INVALID_ARGUMENT, and ids are shortened wherever they are logged.

use envoy_types::pb::envoy::config::core::v3::Node;
use prost::Message;
use tonic::Status;

/// Longest `node.id` accepted. Istio's ids (`sidecar~IP~POD.NS~NS.svc.DOMAIN`) are made of a
/// pod name (at most 253 bytes), a namespace (63), an address and a DNS domain.
pub const MAX_NODE_ID_BYTES: usize = 1024;
/// Largest encoded `node.metadata` accepted: Istio's carries the pod's labels and
/// annotations, which Kubernetes bounds to 256 KiB together; twice that leaves room.
pub const MAX_NODE_METADATA_BYTES: usize = 512 * 1024;
/// How much of an id a log line shows.
const LOGGED_ID_BYTES: usize = 128;

/// Refuses a node whose id or metadata is over its bound.
pub fn check(node: &Node) -> Result<(), Status> {
    if node.id.len() > MAX_NODE_ID_BYTES {
        return Err(Status::invalid_argument(format!(
            "node.id of {} bytes is over the limit of {MAX_NODE_ID_BYTES} bytes",
            node.id.len()
        )));
    }
    let metadata = node.metadata.as_ref().map_or(0, Message::encoded_len);
    if metadata > MAX_NODE_METADATA_BYTES {
        return Err(Status::invalid_argument(format!(
            "node.metadata of {metadata} bytes is over the limit of {MAX_NODE_METADATA_BYTES} bytes"
        )));
    }
    Ok(())
}

/// `id` as a log line shows it: whole when short, else its start and its length.
pub fn for_log(id: &str) -> String {
    if id.len() <= LOGGED_ID_BYTES {
        return id.to_string();
    }
    let mut end = LOGGED_ID_BYTES;
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &id[..end], id.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

    #[test]
    fn over_large_ids_and_metadata_are_refused() {
        let mut node = Node {
            id: "sidecar~10.0.0.1~a.default~default.svc.cluster.local".into(),
            ..Default::default()
        };
        assert!(check(&node).is_ok());
        node.id = "x".repeat(MAX_NODE_ID_BYTES + 1);
        let refused = check(&node).err().map(|status| status.code());
        assert_eq!(refused, Some(tonic::Code::InvalidArgument));
        node.id = "ok".into();
        node.metadata = Some(Struct {
            fields: [(
                "BIG".to_string(),
                Value {
                    kind: Some(Kind::StringValue("y".repeat(MAX_NODE_METADATA_BYTES))),
                },
            )]
            .into(),
        });
        let refused = check(&node).err().map(|status| status.code());
        assert_eq!(refused, Some(tonic::Code::InvalidArgument));
    }

    #[test]
    fn long_ids_are_shortened_in_logs() {
        assert_eq!(for_log("short"), "short");
        let long = "é".repeat(1000);
        let shown = for_log(&long);
        assert!(shown.len() < 200, "{shown}");
        assert!(shown.ends_with("… (2000 bytes)"), "{shown}");
    }
}
