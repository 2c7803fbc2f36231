//! Istio's mutual TLS between sidecars, with rustls on aws-lc-rs.
//!
//! The proxy's certificate arrives on a [`CertificateWatch`](lateen_identity::CertificateWatch)
//! (the mesh CA client, or Istio's file-mounted certificates); [`MeshTls`] reads its current
//! value for every new handshake, so a rotation never touches an open connection. Inbound
//! ([`inbound`]): the TLS inspector's job (a ClientHello is sniffed before anything is read,
//! its SNI and ALPN kept), termination with a required client certificate, the peer's SPIFFE
//! identity for authorization and metrics. Outbound ([`upstream`]): Istio's SNI
//! `outbound_.PORT_.SUBSET_.HOST` and ALPN, the server's chain checked to the mesh roots and its
//! SPIFFE identity against the SANs the control plane expects ([`verify`]).
//!
//! Key exchange prefers the hybrid post-quantum group X25519MLKEM768 (then X25519, P-256,
//! P-384); TLS 1.3 and 1.2 are accepted, as Envoy does.

mod config;
pub mod files;
pub mod inbound;
pub mod origination;
mod security;
pub mod upstream;
mod verify;

pub use config::{MeshTls, TlsError, UpstreamAlpn, UpstreamTlsRt};
pub use security::{ConnSecurity, MUTUAL_TLS};

use std::sync::Arc;

/// ALPN an Istio sidecar offers on a TCP connection to another sidecar (metadata exchange).
pub const ALPN_PEER_EXCHANGE: &[u8] = b"istio-peer-exchange";
/// ALPN marking in-mesh traffic; offered after the protocol-specific value.
pub const ALPN_ISTIO: &[u8] = b"istio";
/// ALPNs Istio's `istio.alpn` filter sets for the upstream HTTP protocol.
pub const ALPN_ISTIO_HTTP10: &[u8] = b"istio-http/1.0";
pub const ALPN_ISTIO_HTTP11: &[u8] = b"istio-http/1.1";
pub const ALPN_ISTIO_H2: &[u8] = b"istio-h2";
/// What an inbound sidecar listener negotiates for HTTP (Istio's `ALPNHttp`).
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Istio's endpoint `tlsMode` for "has a sidecar that accepts mesh mTLS".
pub const TLS_MODE_ISTIO: &str = "istio";

/// Istio's SNI for a connection to a mesh service:
/// `outbound_.9080_.v1_.reviews.default.svc.cluster.local` (subset empty when none).
pub fn outbound_sni(port: u16, subset: &str, host: &str) -> String {
    format!("outbound_.{port}_.{subset}_.{host}")
}

/// rustls' aws-lc-rs provider: its default key-exchange order already puts X25519MLKEM768
/// first (feature `prefer-post-quantum`).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Says, once per configuration, that mesh mTLS is configured but the proxy has no
/// certificate source: its TLS clusters will fail to connect (`UF`) and its listeners will
/// refuse TLS clients, which is hard to tell from the traffic alone.
pub fn warn_without_certificates(snapshot: &crate::config::Snapshot, has_source: bool) {
    if has_source {
        return;
    }
    let listeners = snapshot
        .listeners
        .iter()
        .filter(|l| !l.mtls.is_disable())
        .map(|l| l.name.to_string());
    let clusters = snapshot
        .clusters
        .values()
        .filter(|c| c.tls.as_ref().is_some_and(|t| t.origination.is_none()))
        .map(|c| c.name.to_string());
    let uses: Vec<String> = listeners.chain(clusters).collect();
    if !uses.is_empty() {
        tracing::warn!(
            uses = ?uses,
            "mesh mTLS is configured but there is no workload certificate (pass --cert-dir): these listeners refuse TLS clients and these clusters cannot connect"
        );
    }
}

/// TLS 1.3 first, TLS 1.2 for peers that have nothing newer (Envoy accepts both).
pub(crate) static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

#[cfg(test)]
mod tests {
    #[test]
    fn sni_has_istios_shape() {
        assert_eq!(
            super::outbound_sni(9080, "v1", "reviews.default.svc.cluster.local"),
            "outbound_.9080_.v1_.reviews.default.svc.cluster.local"
        );
        assert_eq!(
            super::outbound_sni(80, "", "a.b.svc.cluster.local"),
            "outbound_.80_._.a.b.svc.cluster.local"
        );
    }
}
