//! Inbound mutual TLS: a sidecar port's filter chains per its PeerAuthentication mode
//! ([`super::peer_authn`]), as istiod builds them.
//!
//! - PERMISSIVE: a `transport_protocol: tls` chain whose ALPN match is Istio's mTLS values
//!   (an Istio client always offers `istio`), terminating with Istio's DownstreamTlsContext,
//!   and the plaintext chain as before under `transport_protocol: raw_buffer`.
//! - STRICT: the TLS chain only, without an ALPN match (any TLS client is asked for a
//!   certificate; plaintext finds no chain and is closed).
//! - DISABLE: the plaintext chain as before.
//!
//! The `envoy.filters.listener.tls_inspector` listener filter sets the transport protocol and
//! ALPN the matches read. The DownstreamTlsContext requires a client certificate and takes the
//! proxy's certificate (`default`) and the mesh roots (`ROOTCA`) over SDS from the `sds-grpc`
//! cluster (the agent's Unix socket, in Istio's bootstrap). Only sidecars that can hold a
//! certificate get any of this (see [`crate::proxy::Proxy::mtls`]).

use lateen_xds::pb::envoy::config::core::v3::{
    ApiConfigSource, ApiVersion, ConfigSource, GrpcService, TransportSocket, api_config_source,
    config_source, grpc_service, transport_socket,
};
use lateen_xds::pb::envoy::config::listener::v3::{
    FilterChain, FilterChainMatch, ListenerFilter, listener_filter,
};
use lateen_xds::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use lateen_xds::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    common_tls_context,
};

use super::Context;
use super::names;
use super::peer_authn::{self, Effective, Mode};

/// Istio's SDS secret names: the workload certificate and the mesh roots.
pub const SDS_DEFAULT: &str = "default";
pub const SDS_ROOTCA: &str = "ROOTCA";
/// The bootstrap cluster through which Envoy reaches the agent's SDS server.
pub const SDS_CLUSTER: &str = "sds-grpc";
pub const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";
pub const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";

/// ALPN values an Istio client offers over mTLS to an HTTP port (plus `istio`).
const MTLS_HTTP_ALPNS: [&str; 3] = ["istio-http/1.0", "istio-http/1.1", "istio-h2"];
/// ALPN values an Istio client offers over mTLS to a TCP port; `istio` is in every offer.
const MTLS_TCP_ALPNS: [&str; 2] = ["istio-peer-exchange", "istio"];

/// The TLS inspector listener filter.
pub fn tls_inspector() -> ListenerFilter {
    ListenerFilter {
        name: TLS_INSPECTOR.to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(names::pack(
            &TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

/// The proxy's resolved PeerAuthentication modes, or `None` when it gets no mTLS at all
/// (gateways, and sidecars that cannot hold a certificate).
pub fn modes(ctx: &Context<'_>) -> Option<Effective> {
    (ctx.proxy.mtls && !ctx.is_router())
        .then(|| peer_authn::effective(ctx.config, &ctx.proxy.namespace, &ctx.proxy.labels))
}

/// The chains of inbound `port` for a proxy with `modes`, from its plaintext chain `plain`.
pub fn chains(
    modes: Option<&Effective>,
    port: u32,
    http: bool,
    plain: FilterChain,
) -> Vec<FilterChain> {
    match modes {
        Some(modes) => port_chains(modes.port(port), http, plain),
        None => vec![plain],
    }
}

/// The chains of one inbound port in `mode`, from its plaintext chain `plain`.
pub fn port_chains(mode: Mode, http: bool, plain: FilterChain) -> Vec<FilterChain> {
    let matching = |transport: &str, alpn: &[&str]| FilterChainMatch {
        transport_protocol: transport.to_string(),
        application_protocols: alpn.iter().map(|p| p.to_string()).collect(),
        ..plain.filter_chain_match.clone().unwrap_or_default()
    };
    let tls = |alpn: &[&str]| FilterChain {
        filter_chain_match: Some(matching("tls", alpn)),
        transport_socket: Some(downstream_socket(http)),
        ..plain.clone()
    };
    let mut any_istio: Vec<&str> = if http {
        MTLS_HTTP_ALPNS.to_vec()
    } else {
        Vec::new()
    };
    any_istio.extend(MTLS_TCP_ALPNS);
    match mode {
        Mode::Disable => vec![plain],
        Mode::Strict => vec![tls(&[])],
        Mode::Permissive => vec![
            tls(&any_istio),
            FilterChain {
                filter_chain_match: Some(matching("raw_buffer", &[])),
                ..plain
            },
        ],
    }
}

/// Istio's inbound DownstreamTlsContext as a transport socket.
fn downstream_socket(http: bool) -> TransportSocket {
    let alpn: &[&str] = if http { &["h2", "http/1.1"] } else { &[] };
    let context = DownstreamTlsContext {
        require_client_certificate: Some(names::boolean(true)),
        common_tls_context: Some(istio_common_context(&[], alpn)),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(names::pack(
            &context,
        ))),
    }
}

/// Istio's CommonTlsContext: `default` and `ROOTCA` over SDS, `validation` as the default
/// validation context (the peer's SANs on the client side), `alpn`.
pub fn istio_common_context(
    validation: &[lateen_xds::pb::envoy::extensions::transport_sockets::tls::v3::SubjectAltNameMatcher],
    alpn: &[&str],
) -> CommonTlsContext {
    CommonTlsContext {
        alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
        tls_certificate_sds_secret_configs: vec![sds_secret(SDS_DEFAULT)],
        validation_context_type: Some(
            common_tls_context::ValidationContextType::CombinedValidationContext(
                common_tls_context::CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext {
                        match_typed_subject_alt_names: validation.to_vec(),
                        ..Default::default()
                    }),
                    validation_context_sds_secret_config: Some(sds_secret(SDS_ROOTCA)),
                    ..Default::default()
                },
            ),
        ),
        ..Default::default()
    }
}

/// An SDS secret from the `sds-grpc` cluster, with Istio's config source.
fn sds_secret(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(ConfigSource {
            resource_api_version: ApiVersion::V3 as i32,
            initial_fetch_timeout: Some(names::duration(std::time::Duration::ZERO)),
            config_source_specifier: Some(config_source::ConfigSourceSpecifier::ApiConfigSource(
                ApiConfigSource {
                    api_type: api_config_source::ApiType::Grpc as i32,
                    transport_api_version: ApiVersion::V3 as i32,
                    set_node_on_first_message_only: true,
                    grpc_services: vec![GrpcService {
                        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                            grpc_service::EnvoyGrpc {
                                cluster_name: SDS_CLUSTER.to_string(),
                                ..Default::default()
                            },
                        )),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
    }
}
