//! Istio's inbound chains per port (TLS and plaintext, HTTP and TCP) → one listener with its
//! PeerAuthentication mode.

use lateen_xds::pb::envoy::config::core::v3::{TransportSocket, transport_socket};
use lateen_xds::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch};
use lateen_xds::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
use lateen_xds::pb::google::protobuf::{BoolValue, UInt32Value};

use super::listener;
use super::tests::{pack, tcp_filter, virtual_inbound};
use super::tls_tests::istio_common;
use crate::config::model::{ListenerProtocol, MtlsMode};

/// Istio's inbound DownstreamTlsContext: client certificate required, SDS default/ROOTCA.
fn istio_downstream(require_client_certificate: bool) -> TransportSocket {
    let context = DownstreamTlsContext {
        require_client_certificate: Some(BoolValue {
            value: require_client_certificate,
        }),
        common_tls_context: Some(istio_common(&[], &["h2", "http/1.1"])),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack(&context))),
    }
}

/// A port chain of 9080 like the HTTP one of `virtual_inbound`, on `transport` with `alpn`.
fn chain(
    base: &FilterChain,
    transport: &str,
    alpn: &[&str],
    tls: Option<TransportSocket>,
) -> FilterChain {
    FilterChain {
        filter_chain_match: Some(FilterChainMatch {
            destination_port: Some(UInt32Value { value: 9080 }),
            transport_protocol: transport.into(),
            application_protocols: alpn.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }),
        transport_socket: tls,
        ..base.clone()
    }
}

/// Istio's four chains of a PERMISSIVE port of unknown protocol (or the TLS ones only).
fn inbound(strict: bool) -> lateen_xds::pb::envoy::config::listener::v3::Listener {
    let mut source = virtual_inbound();
    let http = source.filter_chains[0].clone();
    let tcp = FilterChain {
        filters: vec![tcp_filter("inbound|9080||")],
        ..http.clone()
    };
    let mut chains = vec![
        chain(
            &http,
            "tls",
            &["istio-http/1.0", "istio-http/1.1", "istio-h2"],
            Some(istio_downstream(true)),
        ),
        chain(
            &tcp,
            "tls",
            &["istio-peer-exchange", "istio"],
            Some(istio_downstream(true)),
        ),
        // An app's own TLS, passed through: no lateen-proxy equivalent, left out.
        chain(&tcp, "tls", &[], None),
    ];
    if !strict {
        chains.push(chain(&http, "raw_buffer", &["http/1.1", "h2c"], None));
        chains.push(chain(&tcp, "raw_buffer", &[], None));
    }
    source.filter_chains = chains;
    source
}

#[test]
fn permissive_and_strict_ports_become_the_listeners_mode() {
    for (strict, mode) in [(false, MtlsMode::Permissive), (true, MtlsMode::Strict)] {
        let out = listener::translate(&inbound(strict)).expect("accepted");
        let port = out
            .listeners
            .iter()
            .find(|l| l.name == "virtualInbound~9080")
            .expect("port listener");
        assert_eq!(port.mtls, mode);
        // HTTP and TCP chains: detection decides per connection.
        assert_eq!(port.protocol, ListenerProtocol::Auto);
        assert!(port.route_config.is_some());
        assert_eq!(port.tcp_cluster.as_deref(), Some("inbound|9080||"));
    }
    // The plain Istio inbound port (no transport matches) stays DISABLE.
    let out = listener::translate(&virtual_inbound()).expect("accepted");
    assert!(out.listeners.iter().all(|l| l.mtls == MtlsMode::Disable));
}

#[test]
fn inbound_tls_chains_lateen_proxy_cannot_apply_are_nacked_by_field() {
    let mut source = inbound(true);
    source.filter_chains[0].transport_socket = Some(istio_downstream(false));
    let err = listener::translate(&source).expect_err("server-only TLS");
    assert_eq!(
        err.field,
        "filter_chains[0].transport_socket.typed_config.require_client_certificate"
    );

    // The TLS and plaintext HTTP chains of one port must route alike.
    let mut source = inbound(false);
    let other = virtual_inbound();
    let mut different = other.filter_chains[0].clone();
    different.filters = vec![tcp_filter("somewhere-else")];
    source.filter_chains[4] = FilterChain {
        filter_chain_match: source.filter_chains[4].filter_chain_match.clone(),
        ..different
    };
    let err = listener::translate(&source).expect_err("chains disagree");
    assert_eq!(err.field, "filter_chains[4]");
}
