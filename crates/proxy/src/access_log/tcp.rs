//! The access-log line of an opaque TCP connection: no request, so `%REQ(...)%` is `-`,
//! `%RESPONSE_CODE%` 0 and `%PROTOCOL%` `-`, as Envoy's tcp_proxy logs them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::Entry;
use crate::config::snapshot::{ClusterRt, ListenerRt};
use crate::tcp::TcpOutcome;

pub struct TcpLog {
    entry: Entry,
    started: Instant,
    listener: Arc<ListenerRt>,
}

impl TcpLog {
    /// Starts the entry of a connection on a listener with access logs; `None` otherwise.
    pub fn begin(
        listener: &Arc<ListenerRt>,
        cluster: &ClusterRt,
        peer: SocketAddr,
        original_dst: Option<SocketAddr>,
    ) -> Option<TcpLog> {
        if listener.access_logs.is_empty() {
            return None;
        }
        let mut entry = Entry::new(SystemTime::now());
        entry.downstream_remote_address = Some(peer);
        entry.downstream_local_address = Some(original_dst.unwrap_or(listener.address));
        entry.upstream_cluster = Some(cluster.name.clone());
        Some(TcpLog {
            entry,
            started: Instant::now(),
            listener: listener.clone(),
        })
    }

    pub fn finish(mut self, outcome: &TcpOutcome) {
        let entry = &mut self.entry;
        entry.duration = self.started.elapsed();
        entry.upstream_host = outcome.upstream_host;
        entry.bytes_received = outcome.received;
        entry.bytes_sent = outcome.sent;
        if !outcome.response_flags.is_empty() {
            entry.response_flags = outcome.response_flags.to_string();
        }
        super::log_all(&self.listener.access_logs, &self.entry);
    }
}
