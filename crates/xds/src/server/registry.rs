//! Connected proxies and, per type, what was sent, acknowledged and rejected. The streams write
//! it; `/debug/syncz` reads it through [`crate::status`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use serde::Serialize;

/// Which ADS variant a stream speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamMode {
    /// `StreamAggregatedResources`.
    Sotw,
    /// `DeltaAggregatedResources`.
    Delta,
}

/// The identity a proxy sent in its first request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProxyNode {
    /// `node.id`, e.g. `sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local`.
    pub id: String,
    /// `node.cluster`.
    pub cluster: String,
    /// `node.metadata` as JSON.
    pub metadata: serde_json::Value,
    /// `node.user_agent_name`.
    pub user_agent: String,
}

impl ProxyNode {
    pub(crate) fn from_proto(node: &Node) -> Self {
        Self {
            id: node.id.clone(),
            cluster: node.cluster.clone(),
            metadata: node
                .metadata
                .as_ref()
                .map_or(serde_json::Value::Null, struct_to_json),
            user_agent: node.user_agent_name.clone(),
        }
    }
}

/// A rejected response.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NackRecord {
    /// `version_info` the proxy still runs (its last accepted version).
    pub version: String,
    /// Nonce of the rejected response.
    pub nonce: String,
    /// Version the server had sent and the proxy rejected.
    pub rejected_version: String,
    /// gRPC status code in `error_detail`.
    pub error_code: i32,
    /// `error_detail.message`: Envoy's reason.
    pub error_detail: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// Per-type state of one connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TypeRecord {
    /// Version of the last response sent.
    pub sent_version: Option<String>,
    /// Nonce of the last response sent.
    pub sent_nonce: Option<String>,
    /// Last version the proxy acknowledged.
    pub acked_version: Option<String>,
    /// Whether the last response sent is still waiting for ACK or NACK.
    pub awaiting_ack: bool,
    /// Version the current snapshot calls for (differs from `sent_version` while held back).
    pub desired_version: Option<String>,
    /// Most recent rejection, kept after later ACKs for diagnosis.
    pub last_nack: Option<NackRecord>,
    /// Whether the last response sent was rejected.
    pub last_response_nacked: bool,
    /// Responses sent.
    pub pushes: u64,
}

/// One connected stream.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionRecord {
    /// Server-assigned stream id.
    pub connection_id: u64,
    /// The proxy.
    pub node: ProxyNode,
    /// SotW or delta.
    pub mode: StreamMode,
    /// Who the stream was authenticated as (a verified client certificate's or bearer
    /// token's identity, as the listener put it in the request's [`super::peer::AuthenticatedPeer`]).
    pub verified_identity: Option<super::peer::VerifiedIdentity>,
    /// Connect time, milliseconds since the Unix epoch.
    pub connected_at_unix_ms: u64,
    /// Per type URL.
    pub types: BTreeMap<String, TypeRecord>,
}

/// All connected streams.
#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    connections: Mutex<BTreeMap<u64, ConnectionRecord>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, ConnectionRecord>> {
        self.connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn register(
        &self,
        node: ProxyNode,
        mode: StreamMode,
        verified_identity: Option<super::peer::VerifiedIdentity>,
    ) -> u64 {
        let connection_id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let record = ConnectionRecord {
            connection_id,
            node,
            mode,
            verified_identity,
            connected_at_unix_ms: now_unix_ms(),
            types: BTreeMap::new(),
        };
        self.lock().insert(connection_id, record);
        connection_id
    }

    pub(crate) fn deregister(&self, connection_id: u64) {
        self.lock().remove(&connection_id);
    }

    pub(crate) fn with_type(
        &self,
        connection_id: u64,
        type_url: &str,
        f: impl FnOnce(&mut TypeRecord),
    ) {
        if let Some(conn) = self.lock().get_mut(&connection_id) {
            f(conn.types.entry(type_url.to_string()).or_default());
        }
    }

    /// Copies of every connection record, ordered by connection id.
    pub fn connections(&self) -> Vec<ConnectionRecord> {
        self.lock().values().cloned().collect()
    }

    /// Connection records of one node id.
    pub fn connections_of(&self, node_id: &str) -> Vec<ConnectionRecord> {
        self.lock()
            .values()
            .filter(|c| c.node.id == node_id)
            .cloned()
            .collect()
    }
}

pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Converts a protobuf `Struct` (node metadata) to JSON.
pub fn struct_to_json(s: &Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(v: &Value) -> serde_json::Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(value_to_json).collect())
        }
    }
}
