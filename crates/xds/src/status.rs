//! `/debug/syncz` rows: one per connected stream, like `istioctl proxy-status`.

use serde::Serialize;

use crate::server::registry::{ConnectionRecord, StreamMode, TypeRecord};
use crate::types::{CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET};

/// Sync state of one type on one proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SyncState {
    /// The proxy acknowledged the latest version the snapshot calls for.
    #[serde(rename = "SYNCED")]
    Synced,
    /// Nothing of this type was sent.
    #[serde(rename = "NOT SENT")]
    NotSent,
    /// Sent and waiting for an answer, or a newer version is not sent yet.
    #[serde(rename = "STALE")]
    Stale,
    /// The last response was rejected; the proxy runs its previous config.
    #[serde(rename = "NACK")]
    Nack,
}

/// One row of `/debug/syncz`.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyStatus {
    /// Node id.
    pub proxy: String,
    /// `node.cluster`.
    pub cluster: String,
    /// Stream id.
    pub connection_id: u64,
    /// SotW or delta.
    pub mode: StreamMode,
    /// Connect time, ms since the Unix epoch.
    pub connected_at_unix_ms: u64,
    /// CDS state.
    pub cds: SyncState,
    /// LDS state.
    pub lds: SyncState,
    /// EDS state.
    pub eds: SyncState,
    /// RDS state.
    pub rds: SyncState,
    /// SDS state.
    pub sds: SyncState,
    /// Per type details (versions, last NACK).
    pub types: std::collections::BTreeMap<String, TypeRecord>,
    /// Node metadata.
    pub metadata: serde_json::Value,
    /// `node.user_agent_name` (`envoy`, `lateen-proxy`, ...).
    pub user_agent: String,
}

/// State of one type record.
pub fn type_state(record: Option<&TypeRecord>) -> SyncState {
    let Some(r) = record else {
        return SyncState::NotSent;
    };
    if r.sent_version.is_none() {
        SyncState::NotSent
    } else if r.last_response_nacked {
        SyncState::Nack
    } else if r.awaiting_ack || r.acked_version != r.desired_version {
        SyncState::Stale
    } else {
        SyncState::Synced
    }
}

impl From<ConnectionRecord> for ProxyStatus {
    fn from(c: ConnectionRecord) -> Self {
        let state = |t: &str| type_state(c.types.get(t));
        Self {
            cds: state(CLUSTER),
            lds: state(LISTENER),
            eds: state(ENDPOINT),
            rds: state(ROUTE),
            sds: state(SECRET),
            proxy: c.node.id,
            cluster: c.node.cluster,
            connection_id: c.connection_id,
            mode: c.mode,
            connected_at_unix_ms: c.connected_at_unix_ms,
            types: c.types,
            metadata: c.node.metadata,
            user_agent: c.node.user_agent,
        }
    }
}
