//! What mesh mTLS established about a downstream connection, for authorization (the peer's
//! identity) and Istio's metric labels (`connection_security_policy`, both principals).

use std::sync::Arc;

use lateen_identity::Identity;

use super::MeshTls;
use crate::metrics::PeerLabels;

/// Istio's `connection_security_policy` value of an inbound mTLS connection.
pub const MUTUAL_TLS: &str = "mutual_tls";

/// The security of one downstream connection. `peer` is set only for a verified mTLS
/// client; authorization reads it as the source principal.
#[derive(Debug, Clone, Default)]
pub struct ConnSecurity {
    /// The client's SPIFFE identity.
    pub peer: Option<Arc<Identity>>,
    /// This proxy's identity, `spiffe://...` (set with `peer`).
    local: Option<Arc<str>>,
    /// This proxy has a workload certificate source, so the mesh can authenticate peers.
    mesh_mtls: bool,
}

impl ConnSecurity {
    pub fn new(peer: Option<Arc<Identity>>, mesh: Option<&MeshTls>) -> ConnSecurity {
        let local = peer
            .as_ref()
            .and(mesh)
            .and_then(MeshTls::local_identity)
            .map(|identity| Arc::from(identity.to_string()));
        ConnSecurity {
            peer,
            local,
            mesh_mtls: mesh.is_some(),
        }
    }

    /// Whether the caller's `x-envoy-peer-metadata` may name the source in the metrics: only
    /// from a peer the mesh authenticated (a verified mTLS client), since anyone can send the
    /// header and each distinct value is a new series. A proxy without any certificate source
    /// (a mesh running without mTLS) cannot authenticate anyone and keeps trusting it, as
    /// before mTLS existed; its series stay bounded by `--max-metric-series`.
    pub fn trusts_peer_metadata(&self) -> bool {
        self.peer.is_some() || !self.mesh_mtls
    }

    /// The inbound side's labels: `mutual_tls` and both principals for an mTLS client,
    /// Istio's `none` and the labels as they were otherwise.
    pub fn inbound_labels(
        &self,
        source: Arc<PeerLabels>,
        destination: Arc<PeerLabels>,
    ) -> (Arc<PeerLabels>, Arc<PeerLabels>, &'static str) {
        let Some(peer) = &self.peer else {
            return (source, destination, "none");
        };
        let source = Arc::new(PeerLabels {
            principal: Arc::from(peer.to_string()),
            ..(*source).clone()
        });
        let destination = match &self.local {
            Some(local) => Arc::new(PeerLabels {
                principal: local.clone(),
                ..(*destination).clone()
            }),
            None => destination,
        };
        (source, destination, MUTUAL_TLS)
    }
}
