//! Istio's mTLS transport sockets as istiod sends them: SDS secrets `default` and `ROOTCA`
//! (served by the agent's `sds-grpc`; for lateen-proxy its own certificate).

use lateen_xds::pb::envoy::config::core::v3::{TransportSocket, transport_socket};
use lateen_xds::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    SubjectAltNameMatcher, UpstreamTlsContext, common_tls_context, subject_alt_name_matcher,
};
use lateen_xds::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use lateen_xds::pb::google::protobuf::BoolValue;
use lateen_xds::prost::{Message, Name};

use super::pack;

fn common(peer_sans: &[&str], alpn: &[&str]) -> CommonTlsContext {
    let sds = |name: &str| SdsSecretConfig {
        name: name.into(),
        sds_config: None,
    };
    let validation = CertificateValidationContext {
        match_typed_subject_alt_names: peer_sans
            .iter()
            .map(|san| SubjectAltNameMatcher {
                san_type: subject_alt_name_matcher::SanType::Uri as i32,
                matcher: Some(StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::Exact(san.to_string())),
                    ignore_case: false,
                }),
                oid: String::new(),
            })
            .collect(),
        ..Default::default()
    };
    CommonTlsContext {
        alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
        tls_certificate_sds_secret_configs: vec![sds("default")],
        validation_context_type: Some(
            common_tls_context::ValidationContextType::CombinedValidationContext(
                common_tls_context::CombinedCertificateValidationContext {
                    default_validation_context: Some(validation),
                    validation_context_sds_secret_config: Some(sds("ROOTCA")),
                    ..Default::default()
                },
            ),
        ),
        ..Default::default()
    }
}

fn socket<M: Message + Name>(context: &M) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack(context))),
    }
}

/// A cluster's ISTIO_MUTUAL socket: SNI and the server identities it may have.
pub fn istio_mutual_upstream(sni: &str, server_sans: &[&str]) -> TransportSocket {
    socket(&UpstreamTlsContext {
        sni: sni.into(),
        common_tls_context: Some(common(server_sans, &["istio-peer-exchange", "istio"])),
        ..Default::default()
    })
}

/// An inbound chain's mTLS socket (client certificate required).
pub fn istio_mutual_downstream() -> TransportSocket {
    socket(&DownstreamTlsContext {
        require_client_certificate: Some(BoolValue { value: true }),
        common_tls_context: Some(common(&[], &["h2", "http/1.1"])),
        ..Default::default()
    })
}
